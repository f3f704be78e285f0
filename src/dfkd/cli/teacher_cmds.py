"""``dfkd train-teacher``, ``dfkd eval`` and ``dfkd import-teacher``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checkpoint import load_model, save_checkpoint
from ..config import parse_set_options, to_plain, write_yaml
from ..data import dataset_info, load_dataset
from ..errors import DfkdError
from ..evaluate import accuracy
from ..models import count_parameters
from ..teacher import STATE_FILE, new_teacher_model, recipe, train_teacher
from ..device import device_name, resolve_device
from .common import add_data_dir, add_device, check_compatible, non_negative_float, positive_int, prepare_out_dir


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-teacher", help="train a teacher classifier on a real data set",
                       description="Train a teacher with the data set's recipe (override with the flags or --set).")
    p.add_argument("--dataset", required=True,
                   help="digits, mnist, fashion-mnist, cifar10, cifar100, svhn, tiny-imagenet, imagefolder:PATH")
    p.add_argument("--arch", required=True, help="model name (see 'dfkd list models') or module:function")
    p.add_argument("--out", help="output directory (default: runs/<dataset>-<arch>)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=non_negative_float)
    p.add_argument("--seed", type=int)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast + channels_last (default: on for CIFAR, off for small data sets)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any teacher config key (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing teacher.pt in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its last finished epoch (same settings)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_device(p)
    add_data_dir(p)
    p.set_defaults(run=run_train_teacher)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a data set's test split",
                       description="Print the test accuracy of a teacher or student checkpoint.")
    p.add_argument("checkpoint", help="a dfkd checkpoint (teacher.pt / student.pt), or a state_dict with --arch")
    p.add_argument("--dataset", help="data set to evaluate on (default: the one recorded in the checkpoint)")
    p.add_argument("--arch", help="architecture, only for a plain state_dict file")
    p.add_argument("--per-class", action="store_true", help="also print per-class accuracy")
    p.add_argument("--confusion", action="store_true",
                   help="also print the confusion matrix (rows: true class, columns: predicted class, image counts)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--batch-size", type=positive_int, default=1000)
    add_device(p)
    add_data_dir(p)
    p.set_defaults(run=run_eval)

    p = sub.add_parser("import-teacher", help="wrap your own trained weights into a dfkd teacher checkpoint",
                       description="Turn a plain state_dict (torch.save(model.state_dict(), F)) of a zoo model or of "
                                   "your own architecture (--arch mypkg.models:build_net) into a teacher.pt that "
                                   "carries its architecture and data set metadata.")
    p.add_argument("weights", help="state_dict file: a torch .pt of tensors, or .safetensors")
    p.add_argument("--arch", required=True, help="zoo name or module:function (called with num_classes, "
                   "in_channels, input_size)")
    p.add_argument("--dataset", required=True, help="the data set the weights were trained on (for its metadata)")
    p.add_argument("--out", required=True, help="output checkpoint file")
    p.add_argument("--no-eval", action="store_true", help="do not evaluate on the test split")
    add_data_dir(p)
    p.set_defaults(run=run_import_teacher)


def run_train_teacher(args: argparse.Namespace) -> int:
    overrides = parse_set_options(args.set)
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.bf16 is not None:
        overrides.update(bf16=args.bf16, channels_last=args.bf16)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    cfg = recipe(data.info.name if not args.dataset.startswith("imagefolder:") else "imagefolder", **overrides)
    info = data.info
    model, arch_kwargs = new_teacher_model(args.arch, info, cfg.seed)
    out = prepare_out_dir(args.out or Path("runs") / f"{args.dataset.replace(':', '-').replace('/', '_')}-{args.arch}",
                          "teacher.pt", args.overwrite)
    resume = args.resume and not args.overwrite and (out / STATE_FILE).exists()
    if not resume and (out / STATE_FILE).exists() and not args.overwrite:
        raise DfkdError(f"'{out}' holds an interrupted teacher run ({STATE_FILE}); use --resume to continue it or "
                        "--overwrite to start over")
    if not resume:
        (out / STATE_FILE).unlink(missing_ok=True)
        write_yaml({"dataset": args.dataset, "arch": args.arch, **to_plain(cfg)}, out / "config.yaml")
    print(f"{'resuming' if resume else 'training'} {args.arch} ({count_parameters(model):,} parameters) on {info.name}: "
          f"{len(data.train_labels):,} train / {len(data.test_labels):,} test images, {cfg.epochs} epochs, on "
          f"{device_name(device)}")
    metrics = train_teacher(model, data, cfg, arch=args.arch, arch_kwargs=arch_kwargs, out_dir=out,
                            progress=not args.quiet, resume=resume, device=device)
    print(f"test accuracy {metrics['test_acc']:.2f}% after {metrics['epoch']} epochs "
          f"({metrics['wall_seconds']:.0f} s); saved {out / 'teacher.pt'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    arch_info = dataset_info(args.dataset, args.data_dir) if (args.arch and args.dataset) else None
    model, info, payload = load_model(args.checkpoint, arch=args.arch, info=arch_info)
    name = args.dataset or info.name
    data = load_dataset(name, args.data_dir, download=not args.no_download)
    check_compatible(info, data.info, f"checkpoint '{args.checkpoint}'")
    # Feed the model in the space it was trained in: the checkpoint's normalisation, not the data set's.
    device = resolve_device(args.device)
    result = accuracy(model.to(device), data.test_images, data.test_labels, info, args.batch_size,
                      per_class=args.per_class, device=device, confusion=args.confusion)
    result.update(checkpoint=str(args.checkpoint), dataset=name, arch=payload["arch"]["name"])
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.checkpoint}: {payload['arch']['name']} on {name} test ({result['n']:,} images): "
          f"accuracy {result['accuracy']:.2f}%")
    if args.per_class:
        for cls, acc in result["per_class"].items():
            print(f"  {cls:>16s}  {acc:6.2f}%" if acc is not None else f"  {cls:>16s}     n/a")
    if args.confusion:
        print("  confusion (rows: true class, columns: predicted class " + ", ".join(
            f"{c} = {n}" for c, n in enumerate(info.class_names)) + ")")
        for c, row in enumerate(result["confusion"]):
            print(f"  {info.class_names[c]:>16s} " + " ".join(f"{v:5d}" for v in row))
    return 0


def run_import_teacher(args: argparse.Namespace) -> int:
    if Path(args.out).exists():
        raise DfkdError(f"'{args.out}' already exists; choose another --out")
    data = None if args.no_eval else load_dataset(args.dataset, args.data_dir, download=not args.no_download)
    info = data.info if data else dataset_info(args.dataset, args.data_dir)
    model, info, payload = load_model(args.weights, arch=args.arch, info=info)
    if data is not None:
        payload["metrics"] = {"test_acc": accuracy(model, data.test_images, data.test_labels, info)["accuracy"]}
    save_checkpoint(payload, args.out)
    acc = f", test accuracy {payload['metrics']['test_acc']:.2f}%" if data is not None else ""
    print(f"wrote {args.out} ({args.arch} for {info.name}{acc})")
    return 0
