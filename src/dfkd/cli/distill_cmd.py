"""``dfkd distill``: data-free distillation of a teacher checkpoint into a student."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import parse_set_options, read_yaml
from ..data import load_dataset
from ..device import resolve_device
from .common import add_data_dir, add_device, check_compatible, positive_int, prepare_out_dir


def add_distill_options(p: argparse.ArgumentParser) -> None:
    """The flags every distillation command accepts."""
    p.add_argument("--iterations", type=positive_int, help="budget: number of iterations")
    p.add_argument("--eval-every", type=positive_int, help="evaluate on the real test set every K iterations")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--config", metavar="FILE.yaml", help="config keys from a YAML file (a run's config.yaml works)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key (repeatable)")


def config_overrides(args: argparse.Namespace) -> dict:
    """Method defaults < --config file < --set < explicit flags."""
    overrides: dict = {}
    if args.config:
        data = read_yaml(args.config)
        overrides.update(data["config"] if isinstance(data.get("config"), dict) else data)
    overrides.update(parse_set_options(args.set))
    for flag, key in (("iterations", "iterations"), ("eval_every", "eval_every"), ("seed", "seed")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    return overrides


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..methods import list_methods

    p = sub.add_parser("distill", help="distil a teacher into a student without its training data",
                       description="Data-free distillation. The real test set (--eval-dataset) is used only to "
                                   "report accuracy during the run; the saved student is the final one.")
    p.add_argument("--teacher", required=True, help="teacher checkpoint (teacher.pt)")
    p.add_argument("--student", required=True, help="student architecture (see 'dfkd list models')")
    p.add_argument("--method", default="pre-dfkd" if "pre-dfkd" in list_methods() else "dfad",
                   help=f"one of: {', '.join(list_methods())}")
    p.add_argument("--eval-dataset", help="real data set for reporting test accuracy (optional)")
    p.add_argument("--out", help="output directory (default: runs/<method>-<student>-s<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same settings); start it if there is none")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write metrics and sample grids for TensorBoard to OUT/tb (pip install 'dfkd[tensorboard]')")
    add_distill_options(p)
    add_device(p)
    add_data_dir(p)
    p.set_defaults(run=run_distill)

    p = sub.add_parser("resume", help="continue an interrupted distillation run",
                       description="Continue the run in RUN_DIR from its last full-state checkpoint (state.pt), with "
                                   "the settings in its config.yaml. The finished run is identical to one that was "
                                   "never interrupted.")
    p.add_argument("run_dir", help="the run's output directory")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard events to RUN_DIR/tb")
    add_device(p)
    add_data_dir(p)
    p.set_defaults(run=run_resume)


def run_distill(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..engine import distill
    from ..engine.loop import resolve_config
    from ..methods import get_method

    method_cls = get_method(args.method)
    cfg = resolve_config(method_cls, config_overrides(args))  # validate before touching any file
    resolve_device(args.device)  # an unavailable device fails before any file is touched
    teacher, info, _ = load_model(args.teacher)
    data = None
    if args.eval_dataset:
        data = load_dataset(args.eval_dataset, args.data_dir, download=not args.no_download)
        check_compatible(info, data.info, f"teacher '{args.teacher}'")
    out = prepare_out_dir(args.out or Path("runs") / f"{args.method}-{args.student}-s{cfg.seed}", "config.yaml",
                          args.overwrite or args.resume, resumable=True)
    result = distill(teacher, args.student, args.method, cfg, info=info, eval_data=data, out_dir=out,
                     progress=not args.quiet, extra_config={"teacher": str(args.teacher),
                                                           "eval_dataset": args.eval_dataset},
                     overwrite=args.overwrite, resume=args.resume, device=args.device, tensorboard=args.tensorboard)
    _report(args.method, result.summary, out)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..config import read_yaml
    from ..engine import distill
    from ..errors import DfkdError

    out = Path(args.run_dir)
    resolve_device(args.device)
    if not (out / "config.yaml").exists():
        raise DfkdError(f"'{out}' holds no run (no config.yaml); start one with 'dfkd distill ... --out {out}'")
    saved = read_yaml(out / "config.yaml")
    missing = [k for k in ("method", "teacher", "student_arch", "config") if not saved.get(k)]
    if missing:
        raise DfkdError(f"'{out / 'config.yaml'}' lacks {', '.join(missing)} (a run made through the Python API "
                        "with custom modules): resume it with distill(..., resume=True)")
    teacher, info, _ = load_model(saved["teacher"])
    data = None
    if saved.get("eval_dataset"):
        data = load_dataset(saved["eval_dataset"], args.data_dir, download=not args.no_download)
        check_compatible(info, data.info, f"teacher '{saved['teacher']}'")
    extra = {k: v for k, v in saved.items() if k not in ("method", "teacher", "student_arch", "dataset", "config")}
    result = distill(teacher, saved["student_arch"], saved["method"], saved["config"], info=info, eval_data=data,
                     out_dir=out, progress=not args.quiet, extra_config={"teacher": saved["teacher"], **extra},
                     resume=True, device=args.device, tensorboard=args.tensorboard)
    _report(saved["method"], result.summary, out)
    return 0


def _report(method: str, s: dict, out: Path) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return
    if s["evaluations"]:
        print(f"{method}: final {s['final']:.2f}%  mu {s['mu']:.2f}  sigma2 {s['sigma2']:.2f}  peak {s['peak']:.2f}  "
              f"max_drop {s['max_drop']:.2f}  (teacher {s['teacher_acc']:.2f}%)  {s['wall_seconds']:.0f} s on "
              f"{s['device']} ({s['precision']})")
    else:
        print(f"{method}: {s['iterations']} iterations in {s['wall_seconds']:.0f} s on {s['device']} ({s['precision']}; "
              "no --eval-dataset)")
    if s.get("mode_collapse"):
        print(f"warning: generator mode collapse for {s['collapse_iterations']} iterations (from iteration "
              f"{s['collapse_first_iteration']}); see metrics.jsonl")
    from ..plots import describe_statistics

    for name, stats in s.get("samples", {}).items():  # the final samples as the teacher sees them
        print(f"{name} samples: " + describe_statistics(stats).replace("\n", "; "))
    print(f"saved {out / 'student.pt'}, {out / 'metrics.jsonl'}, {out / 'summary.json'}")


__all__ = ["add_parsers", "add_distill_options", "config_overrides"]
