"""``dfkd plot``'s grouping of runs into curves: one per method, split by student when the runs have several."""
import json

import yaml

from dfkd.plots import curve_groups, load_run, plot_runs


def fake_run(d, method, student, seed, accs):
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"method": method, "student_arch": student, "config": {"seed": seed}}))
    rows = [{"kind": "eval", "iteration": 10 * (i + 1), "test_acc": a, "wall_seconds": 5.0 * (i + 1)}
            for i, a in enumerate(accs)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_runs_of_one_method_split_by_student_only_when_students_differ(tmp_path):
    a0 = fake_run(tmp_path / "a0", "fast", "lenet5-half", 0, [10, 20])
    a1 = fake_run(tmp_path / "a1", "fast", "lenet5-half", 1, [12, 22])
    b0 = fake_run(tmp_path / "b0", "fast", "cnn-bn-quarter", 0, [30, 40])
    c0 = fake_run(tmp_path / "c0", "pre-dfkd+", "lenet5-half", 0, [5, 6])
    same = curve_groups([load_run(d) for d in (a0, a1, c0)])
    assert {k: len(v) for k, v in same.items()} == {"fast": 2, "pre-dfkd+": 1}  # seeds of one method: one curve
    mixed = curve_groups([load_run(d) for d in (a0, a1, b0, c0)])
    assert {k: len(v) for k, v in mixed.items()} == {"fast, lenet5-half": 2, "fast, cnn-bn-quarter": 1,
                                                     "pre-dfkd+, lenet5-half": 1}
    figures = plot_runs([a0, a1, b0], tmp_path / "out")
    assert {f.name for f in figures} >= {"accuracy.png", "accuracy-time.png"}
    assert all(f.stat().st_size > 1000 for f in figures)
