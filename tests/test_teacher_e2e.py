"""End to end on real data: a digits teacher trained with the library's recipe."""
from dfkd import create_model, load_dataset, recipe, train_teacher
from dfkd.evaluate import accuracy


def test_digits_teacher_reaches_95_percent(tmp_path):
    data = load_dataset("digits")
    kw = {"num_classes": 10, "in_channels": 1, "input_size": 32}
    model = create_model("lenet5", **kw)
    metrics = train_teacher(model, data, recipe("digits"), arch="lenet5", arch_kwargs=kw, out_dir=tmp_path,
                            progress=False)
    acc = accuracy(model, data.test_images, data.test_labels, data.info)["accuracy"]
    assert acc == metrics["test_acc"]
    assert acc >= 95.0, acc
    assert (tmp_path / "teacher.pt").exists()
