import gzip
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from dfkd import DfkdError, load_dataset
from dfkd.data import augment_batch, dataset_info, iterate_batches
from dfkd.data.augment import Augmentation
from dfkd.data.idx import read_idx

from conftest import real_data_path

IDX_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_idx_set(folder, n_train=12, n_test=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in zip(IDX_STEMS, arrays):
        data = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader_pads_to_32(tmp_path, gz):
    arrays = write_idx_set(tmp_path / "fashion-mnist", gz=gz)
    data = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert data.train_images.shape == (12, 1, 32, 32) and data.test_images.shape == (5, 1, 32, 32)
    assert torch.equal(data.train_images[:, 0, 2:30, 2:30], torch.from_numpy(arrays[0].astype(np.uint8)))
    assert data.train_images[:, :, :2].sum() == 0  # zero padding
    assert torch.equal(data.test_labels, torch.from_numpy(arrays[3]))
    assert data.info.class_names[0] == "T-shirt/top"


def test_idx_rejects_bad_and_truncated_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DfkdError, match="bad magic"):
        read_idx(tmp_path / "bad")
    good = idx_bytes(np.zeros((4, 28, 28)))
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(DfkdError, match="truncated"):
        read_idx(tmp_path / "short")


def test_missing_dataset_error_names_places(tmp_path, monkeypatch):
    monkeypatch.setenv("DFKD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DfkdError) as err:
        load_dataset("mnist", data_dir=tmp_path / "mine", download=False)
    msg = str(err.value)
    assert "data set 'mnist' not found" in msg and str(tmp_path / "mine") in msg and "DFKD_DATA" in msg
    assert "\n" not in msg


def cifar_batch(n, rng, label_key=b"labels", classes=10):
    return {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), label_key: list(rng.integers(0, classes, n))}


def write_cifar10_pickles(folder, rng):
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch(4, rng) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(3, rng)
    batches["batches.meta"] = {b"label_names": [c.encode() for c in
                                                ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                 "horse", "ship", "truck"]]}
    for name, d in batches.items():
        (folder / name).write_bytes(pickle.dumps(d))
    return batches


@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar10_pickle_release(tmp_path, as_tar):
    rng = np.random.default_rng(1)
    src = tmp_path / "src" / "cifar-10-batches-py"
    batches = write_cifar10_pickles(src, rng)
    root = tmp_path / "root"
    root.mkdir()
    if as_tar:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(src, arcname="cifar-10-batches-py")
    else:
        src.rename(root / "cifar-10-batches-py")
    data = load_dataset("cifar10", data_dir=root, download=False)
    assert data.train_images.shape == (20, 3, 32, 32) and data.test_images.shape == (3, 3, 32, 32)
    expected = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32)
    assert np.array_equal(data.train_images[0].numpy(), expected)
    assert data.test_labels.tolist() == [int(v) for v in batches["test_batch"][b"labels"]]
    assert data.info.class_names[-1] == "truck" and data.info.num_classes == 10


def test_cifar100_pickle_release(tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "cifar100" / "cifar-100-python"
    src.mkdir(parents=True)
    (src / "train").write_bytes(pickle.dumps(cifar_batch(6, rng, b"fine_labels", 100)))
    (src / "test").write_bytes(pickle.dumps(cifar_batch(2, rng, b"fine_labels", 100)))
    (src / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    data = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert data.info.num_classes == 100 and data.info.class_names[5] == "c5"
    assert data.train_images.shape == (6, 3, 32, 32)


def write_svhn_mat(path, labels, seed=0):
    from scipy.io import savemat

    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, len(labels))).astype(np.uint8)
    savemat(path, {"X": x, "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def test_svhn_mat_release(tmp_path):
    x_train = write_svhn_mat(tmp_path / "train_32x32.mat", [1, 10, 3, 10, 9])
    write_svhn_mat(tmp_path / "test_32x32.mat", [10, 2], seed=1)
    data = load_dataset("svhn", data_dir=tmp_path, download=False)
    assert data.train_images.shape == (5, 3, 32, 32) and data.test_images.shape == (2, 3, 32, 32)
    assert data.train_labels.tolist() == [1, 0, 3, 0, 9] and data.test_labels.tolist() == [0, 2]  # 10 is digit 0
    assert np.array_equal(data.train_images[1].numpy(), x_train[:, :, :, 1].transpose(2, 0, 1))
    assert data.info == dataset_info("svhn") and data.info.class_names[0] == "0"


def test_svhn_bad_files(tmp_path):
    write_svhn_mat(tmp_path / "train_32x32.mat", [1, 11])
    write_svhn_mat(tmp_path / "test_32x32.mat", [1])
    with pytest.raises(DfkdError, match="labels must be 1..10"):
        load_dataset("svhn", data_dir=tmp_path, download=False)
    (tmp_path / "train_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DfkdError, match="not an SVHN .mat file"):
        load_dataset("svhn", data_dir=tmp_path, download=False)


def write_tiny_imagenet(root):
    """A cut-down release: 2 classes (wnids.txt out of order), 2 train + 1 val image each, one greyscale."""
    rng = np.random.default_rng(4)
    (root / "val" / "images").mkdir(parents=True)
    (root / "test" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("n02\nn01\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn03\tother\n")
    for wnid in ("n01", "n02"):
        (root / "train" / wnid / "images").mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(2):
            grey = wnid == "n02" and i == 1
            arr = rng.integers(0, 256, (64, 64) if grey else (64, 64, 3)).astype(np.uint8)
            Image.fromarray(arr).save(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
    annotations = []
    for i, wnid in enumerate(("n02", "n01")):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(root / "test" / "images" / "test_0.JPEG")


@pytest.mark.parametrize("as_zip", [False, True])
def test_tiny_imagenet_release(tmp_path, as_zip):
    import zipfile

    release = tmp_path / "src" / "tiny-imagenet-200"
    write_tiny_imagenet(release)
    root = tmp_path / "data"
    root.mkdir()
    if as_zip:
        with zipfile.ZipFile(root / "tiny-imagenet-200.zip", "w") as zf:
            for p in sorted(release.rglob("*")):
                zf.write(p, p.relative_to(release.parent).as_posix())
    else:
        release.rename(root / "tiny-imagenet-200")
        release = root / "tiny-imagenet-200"
    data = load_dataset("tiny-imagenet", data_dir=root, download=False)
    assert data.info.class_names == ("goldfish", "tabby") and data.info.input_shape == (3, 64, 64)
    assert data.train_images.shape == (4, 3, 64, 64) and data.train_labels.tolist() == [0, 0, 1, 1]
    assert data.test_images.shape == (2, 3, 64, 64) and data.test_labels.tolist() == [1, 0]  # from val annotations
    src = release if not as_zip else tmp_path / "src" / "tiny-imagenet-200"
    grey = np.asarray(Image.open(src / "train" / "n02" / "images" / "n02_1.JPEG").convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(data.train_images[3].numpy(), grey)


def test_tiny_imagenet_incomplete_release(tmp_path):
    release = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(release)
    (release / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DfkdError, match="val_annotations.txt is missing"):
        load_dataset("tiny-imagenet", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_download_verifies_the_published_checksum(tmp_path, algorithm):
    import hashlib

    from dfkd.data.locate import RemoteFile, download

    served = tmp_path / "server" / "file.bin"
    served.parent.mkdir()
    served.write_bytes(b"official bytes")
    digest = hashlib.new(algorithm, b"official bytes").hexdigest()
    good = RemoteFile("file.bin", served.as_uri(), **{algorithm: digest})
    dest = download([good], tmp_path / "dest", progress=None)
    assert (dest / "file.bin").read_bytes() == b"official bytes"
    bad = RemoteFile("other.bin", served.as_uri(), **{algorithm: "0" * len(digest)})
    with pytest.raises(DfkdError, match=f"checksum mismatch .* expected {algorithm}"):
        download([bad], tmp_path / "dest", progress=None)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["file.bin"]  # nothing half-written left


def write_tree(root, classes=("cat", "dog"), per_class=3, size=(8, 8), mode="RGB"):
    rng = np.random.default_rng(3)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(root / split / c / f"{i}.png")


@pytest.mark.parametrize("archive", [None, "tar", "tar.gz"])
def test_imagefolder_tree(tmp_path, archive):
    tree = tmp_path / "tree"
    write_tree(tree)
    path = tree
    if archive:
        path = tmp_path / f"tree.{archive}"
        with tarfile.open(path, "w:gz" if archive == "tar.gz" else "w") as tar:
            tar.add(tree, arcname="mydata")
    data = load_dataset(f"imagefolder:{path}")
    assert data.info.class_names == ("cat", "dog")
    assert data.train_images.shape == (6, 3, 8, 8) and data.test_images.shape == (6, 3, 8, 8)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(tree / "train" / "cat" / "0.png")).transpose(2, 0, 1)
    assert np.array_equal(data.train_images[0].numpy(), first)
    assert len(data.info.mean) == 3 and all(s > 0 for s in data.info.std)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DfkdError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DfkdError, match="not an image-folder tree"):
        load_dataset(f"imagefolder:{tmp_path / 'flat'}")


def test_decoded_arrays_are_cached(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "mnist")
    first = load_dataset("mnist", data_dir=tmp_path, download=False)
    calls = []
    monkeypatch.setattr("dfkd.data.idx.read_idx", lambda p: calls.append(p) or pytest.fail("decoded again"))
    second = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert torch.equal(first.train_images, second.train_images) and not calls
    # Changing the source changes its checksum, so the stale cache is not used.
    write_idx_set(tmp_path / "mnist", seed=5)
    monkeypatch.undo()
    third = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert not torch.equal(first.train_images, third.train_images)


def test_digits_split_and_stats():
    data = load_dataset("digits")
    assert data.train_images.shape == (1438, 1, 32, 32) and data.test_images.shape == (359, 1, 32, 32)
    counts = torch.bincount(data.test_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    x = data.train_images.float() / 255
    assert x.mean().item() == pytest.approx(data.info.mean[0], abs=1e-3)
    assert x.std().item() == pytest.approx(data.info.std[0], abs=1e-3)
    assert dataset_info("digits") == data.info


def test_augmentation_crop_and_flip():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    assert torch.equal(augment_batch(x, Augmentation()), x)
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, Augmentation(crop_padding=2, hflip=True), g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    # Every output row is a (possibly shifted/flipped) piece of the input or zero padding.
    assert set(y.unique().tolist()) <= set(x.unique().tolist()) | {0}
    flipped = augment_batch(x, Augmentation(hflip=True), torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))


def test_iterate_batches_covers_everything():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, shuffle=True, generator=torch.Generator())])
    assert sorted(seen.tolist()) == list(range(10))
    assert sum(1 for _ in iterate_batches(x, y, 3, drop_last=True)) == 3


def test_real_fashion_mnist():
    root = real_data_path("fashion-mnist")
    data = load_dataset("fashion-mnist", data_dir=root.parent, download=False)
    assert data.train_images.shape == (60000, 1, 32, 32) and data.test_images.shape == (10000, 1, 32, 32)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    x = data.train_images[:, :, 2:30, 2:30].float() / 255
    assert x.mean().item() == pytest.approx(0.2860, abs=1e-3)


@pytest.mark.slow  # decodes all 60,000 JPEGs (about 22 s on 2 cores)
def test_real_cifar10_jpeg_tree():
    real_data_path("cifar10-jpeg.tar.gz")
    data = load_dataset("cifar10", download=False)  # found through $DFKD_DATA
    assert data.train_images.shape == (50000, 3, 32, 32) and data.test_images.shape == (10000, 3, 32, 32)
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    assert data.info.class_names[0] == "airplane" and data.info.class_names[9] == "truck"
    means = (data.train_images.float() / 255).mean(dim=(0, 2, 3))
    assert means.tolist() == pytest.approx([0.4913, 0.4821, 0.4465], abs=2e-3)
