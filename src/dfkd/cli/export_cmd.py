"""``dfkd export``: a distilled student (or any dfkd checkpoint) as ONNX, .pt2, state_dict or safetensors."""
from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..export import FORMATS

    p = sub.add_parser("export", help="export a checkpoint for deployment (ONNX, torch.export, state_dict, "
                                      "safetensors), checked against the PyTorch model",
                       description="Writes OUT and OUT.json (architecture, classes, input shape and "
                                   "normalisation, parity check). ONNX and .pt2 graphs take float32 pixels in [0, 1] "
                                   "with the data set's normaliser inside (unless --no-normalize).")
    p.add_argument("checkpoint", help="a dfkd checkpoint (student.pt / teacher.pt), or a state_dict with --arch "
                                      "and --dataset")
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--no-normalize", action="store_true",
                   help="onnx/pt2: leave the normaliser out (the graph then takes normalised images)")
    p.add_argument("--arch", help="architecture, only for a plain state_dict file")
    p.add_argument("--dataset", help="data set of a plain state_dict file (for its metadata)")
    p.add_argument("--data-dir", metavar="DIR", help="where the data set files are (only to read a data set's "
                                                     "metadata that is not built in)")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..data import dataset_info
    from ..export import export

    info = dataset_info(args.dataset, args.data_dir) if args.dataset else None
    meta = export(args.checkpoint, args.out, args.format, info=info, arch=args.arch,
                  normalize=not args.no_normalize, force=args.force)
    p = meta["parity"]
    feed = (f"; input {'x'.join(str(d) for d in meta['input']['shape'])} {meta['input']['feed'].split(';')[0]}"
            if meta["input"]["name"] else "")
    print(f"wrote {args.out} ({args.format}, {meta['arch']['name']} for {meta['dataset']['name']}{feed}) and "
          f"{args.out}.json; parity: max |diff| {p['max_abs_diff']:.2g} <= {p['tolerance']:.2g} ({p['checked_with']})")
    return 0


__all__ = ["add_parsers"]
