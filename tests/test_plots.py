"""``dfkd plot``'s grouping of runs into curves: one per method, split by student when the runs have several and by
each setting in which a method's runs differ (the seed and bookkeeping aside)."""
import json

import torch
import yaml

from dfkd.plots import curve_groups, figure_names, load_run, plot_runs


def fake_run(d, method, student, seed, accs, **settings):
    d.mkdir(parents=True)
    config = {"seed": seed, **settings}
    (d / "config.yaml").write_text(yaml.safe_dump({"method": method, "student_arch": student, "config": config}))
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


def test_runs_of_one_method_with_different_settings_are_separate_curves(tmp_path):
    """An ablation (``--set w_info_entropy=5`` against the default) is two curves labelled by what differs, never one
    average; the seed and bookkeeping keys (``log_every``) do not split a curve, and a method whose runs agree keeps
    its bare name."""
    runs = [fake_run(tmp_path / f"base{s}", "dfad", "lenet5-half", s, [10 + s, 20], w_info_entropy=0.0,
                     generator_options={"output": "sigmoid"}, log_every=10 * (s + 1)) for s in (0, 1)]
    runs += [fake_run(tmp_path / f"prior{s}", "dfad", "lenet5-half", s, [30 + s, 40], w_info_entropy=5.0,
                      generator_options={"output": "sigmoid"}, log_every=10) for s in (0, 1)]
    runs.append(fake_run(tmp_path / "p0", "pre-dfkd+", "lenet5-half", 0, [5, 6], w_info_entropy=5.0))
    groups = curve_groups([load_run(d) for d in runs])
    assert {k: sorted(r["dir"].name for r in v) for k, v in groups.items()} == {
        "dfad, w_info_entropy=0.0": ["base0", "base1"], "dfad, w_info_entropy=5.0": ["prior0", "prior1"],
        "pre-dfkd+": ["p0"]}
    opts = [fake_run(tmp_path / f"o{i}", "pre-dfkd", "lenet5-half", 0, [1, 2], generator_options=o)
            for i, o in enumerate(({"output": "sigmoid"}, {"output": "sigmoid", "border": 2}))]
    assert set(curve_groups([load_run(d) for d in opts])) == {
        "pre-dfkd, generator_options={output: sigmoid}", "pre-dfkd, generator_options={border: 2, output: sigmoid}"}
    close = [fake_run(tmp_path / f"lr{i}", "dfad", "lenet5-half", 0, [1, 2], lr_generator=v)
             for i, v in enumerate((1e-3, 1.0000001e-3))]  # equal to 6 significant digits: still two settings
    assert len(curve_groups([load_run(d) for d in close])) == 2


def test_sample_figures_of_runs_with_one_name_do_not_overwrite_each_other(tmp_path):
    """``dfkd bench`` names a run ``METHOD-sSEED`` under each output directory: two screens' ``dfad-s0`` each keep a
    sample figure, named with their parent directory."""
    dirs = [fake_run(tmp_path / screen / "dfad-s0", "dfad", "lenet5-half", 0, [10, 20], w_info_entropy=w)
            for screen, w in (("base", 0.0), ("prior", 5.0))]
    for d, value in zip(dirs, (0, 255)):
        torch.save({"novel": torch.full((4, 1, 8, 8), value, dtype=torch.uint8)}, d / "samples.pt")
    figures = plot_runs(dirs, tmp_path / "out")
    assert {f.name for f in figures} == {"accuracy.png", "accuracy-time.png", "samples-base-dfad-s0.png",
                                         "samples-prior-dfad-s0.png"}


def test_sample_figure_names_go_up_as_far_as_it_takes(tmp_path):
    """Runs of one name under parents of one name (``a/screen/dfad-s0``, ``b/screen/dfad-s0``) still get a figure
    each; a unique run keeps its bare name."""
    dirs = [tmp_path / "a" / "screen" / "dfad-s0", tmp_path / "b" / "screen" / "dfad-s0", tmp_path / "a" / "pre-s0"]
    assert figure_names(dirs) == ["a-screen-dfad-s0", "b-screen-dfad-s0", "pre-s0"]
    assert figure_names([tmp_path / "x", tmp_path / "x"]) == ["x", "x"]


def test_a_setting_missing_from_an_older_run_counts_as_its_default(tmp_path):
    """A run made before an option existed (no ``student_ema`` in its config) is a seed of the same curve as a run
    that records the option at its default, and a separate curve from one that sets it."""
    old = fake_run(tmp_path / "old", "pre-dfkd+", "lenet5-half", 0, [10, 20])
    new = fake_run(tmp_path / "new", "pre-dfkd+", "lenet5-half", 1, [12, 22], student_ema=0.0)
    ema = fake_run(tmp_path / "ema", "pre-dfkd+", "lenet5-half", 2, [14, 24], student_ema=0.99)
    groups = curve_groups([load_run(d) for d in (old, new, ema)])
    assert {k: sorted(r["dir"].name for r in v) for k, v in groups.items()} == {
        "pre-dfkd+, student_ema=0.0": ["new", "old"], "pre-dfkd+, student_ema=0.99": ["ema"]}
    # the method's own default, not DistillConfig's: PRE-DFKD's one-hot weight is 1 (DistillConfig's is 0)
    old_pre = fake_run(tmp_path / "old-pre", "pre-dfkd", "lenet5-half", 0, [10, 20])
    new_pre = fake_run(tmp_path / "new-pre", "pre-dfkd", "lenet5-half", 1, [12, 22], w_one_hot=1.0)
    assert list(curve_groups([load_run(d) for d in (old_pre, new_pre)])) == ["pre-dfkd"]
