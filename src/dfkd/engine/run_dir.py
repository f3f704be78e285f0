"""The run directory: a fresh run's files, or a checkpointed run checked and restored for ``resume``.

Layout: config.yaml (the resolved settings), metrics.jsonl (one JSON object per row), state.pt (the
full-state checkpoint, ``run_state``), and at the end student.pt, summary.json, samples.pt.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..config import read_yaml, write_yaml
from ..errors import DfkdError
from ..io_utils import atomic_write_text
from ..rng import set_rng_state
from .run_state import STATE_FILE, LoopState, load_run_state

RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "student.pt", "samples.pt")
TB_DIR = "tb"  # --tensorboard event files


def metric_lines(path: Path, rows: int, state_path: Path, done: int, unit: str = "iteration") -> list[str]:
    """The first ``rows`` lines of a run's metrics.jsonl, each checked to be one JSON object.

    Lines after them (written after the checkpoint, possibly torn by a crash) are dropped: the resumed run
    writes them again, so the log ends with no duplicated or missing rows.
    """
    fix = ("restore the file, or start the run over with --overwrite")
    if not path.exists():
        raise DfkdError(f"'{path}' is missing but checkpoint '{state_path}' ({unit} {done}) expects {rows} rows; "
                        f"{fix}")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) < rows:
        raise DfkdError(f"'{path}' has {len(lines)} rows but checkpoint '{state_path}' ({unit} {done}) expects "
                        f"{rows}; the log was truncated or edited; {fix}")
    for i, line in enumerate(lines[:rows], 1):
        try:
            ok = isinstance(json.loads(line), dict) and line.endswith("\n")
        except ValueError:
            ok = False
        if not ok:
            raise DfkdError(f"'{path}' line {i} is corrupt (not one JSON object); {fix}")
    return lines[:rows]


def config_differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(saved) | set(wanted)):
        a, b = saved.get(k), wanted.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} in the run, {b!r} now")
    return out


def _with_defaults(saved: dict[str, Any], config_defaults: dict[str, Any] | None) -> dict[str, Any]:
    """A run written by a dfkd that did not yet have a config key ran with that key's default."""
    if not config_defaults or not isinstance(saved.get("config"), dict):
        return saved
    return {**saved, "config": {**config_defaults, **saved["config"]}}


def open_run_dir(out: Path, resolved: dict[str, Any], overwrite: bool, resume: bool,
                 config_defaults: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Prepare ``out`` for a fresh run (returns None), or check the run checkpointed there and return its
    checkpoint (``resume``), with ``metrics.jsonl`` cut back to the rows the checkpoint accounts for.
    ``config_defaults`` (the method's config defaults) fill keys the saved run predates."""
    state_path, config_path = out / STATE_FILE, out / "config.yaml"
    if resume and not overwrite and (state_path.exists() or config_path.exists()):
        saved = read_yaml(config_path) if config_path.exists() else None
        payload = load_run_state(state_path) if state_path.exists() else None
        diffs = config_differences(_with_defaults(payload["resolved"] if payload else saved or {}, config_defaults),
                                    resolved)
        if diffs:
            raise DfkdError(f"'{out}' holds a run with other settings ({'; '.join(diffs[:3])}); resume it with the "
                            "same settings (dfkd resume DIR), or use --overwrite to start over")
        if payload is not None:
            loop = payload["loop"]
            lines = metric_lines(out / "metrics.jsonl", loop["rows"], state_path, loop["done"])
            atomic_write_text(out / "metrics.jsonl", "".join(lines))
            return payload
        if (out / "summary.json").exists():
            raise DfkdError(f"'{out}' holds a finished run without a checkpoint (state.pt); there is nothing to "
                            "resume: use --overwrite to run it again")
        # killed before its first checkpoint: nothing to keep, start it again below
    elif config_path.exists() and not overwrite:
        raise DfkdError(f"'{out}' already holds a run (config.yaml); pass resume=True (--resume) to continue it, "
                        "overwrite=True (--overwrite) to replace it, or choose another output directory")
    out.mkdir(parents=True, exist_ok=True)
    for name in (*RUN_FILES, STATE_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / TB_DIR, ignore_errors=True)  # TensorBoard events of a replaced run
    write_yaml(resolved, config_path)
    return None


def restore_run(method, payload: dict[str, Any], rank: int, world_size: int) -> LoopState:
    """Load a checkpoint into ``method`` and this process's RNGs; the loop state to continue from."""
    saved_world = payload.get("world_size", 1)
    if saved_world != world_size:
        raise DfkdError(f"the checkpoint was written by {saved_world} process(es) and this run has {world_size}: "
                        f"resume with the same number (torchrun --nproc_per_node/--nnodes), or --overwrite")
    method.load_state_dict(payload["method_state"])
    set_rng_state(payload["rng"][rank])
    return LoopState.from_dict(payload["loop"])


__all__ = ["RUN_FILES", "config_differences", "metric_lines", "open_run_dir", "restore_run"]
