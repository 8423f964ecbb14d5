import re

import pytest
import torch
from PIL import Image

from bench.data import Preprocess, load_dataset
from bench.suite import DataSpec

SPEC = DataSpec(dataset="MNIST", mean=[0.1307], std=[0.3081])


def test_mnist_from_the_torchvision_layout(data_dir):
    data = load_dataset(SPEC, data_dir)
    assert data.source == "torchvision:MNIST" and data.num_classes == 10
    assert data.train.x.shape == (60000, 1, 28, 28) and data.train.x.dtype == torch.uint8
    assert len(data.test) == 10000
    x = Preprocess(SPEC, torch.device("cpu")).normalize(data.train.x)
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3  # published statistics


def test_image_folder_copy_is_used_when_torchvision_layout_is_absent(tmp_path):
    spec = DataSpec(dataset="CIFAR10", mean=[0.5] * 3, std=[0.25] * 3, image_folder="copy")
    for split in ("train", "test"):
        for k, label in enumerate(("airplane", "bird", "cat")):
            folder = tmp_path / "copy" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                value = 40 * i + 60 * k
                Image.new("RGB", (32, 32), (value, value, value)).save(folder / f"{i}.png")
    data = load_dataset(spec, tmp_path, cache_dir=tmp_path / "cache")
    assert data.source == "image-folder:copy" and data.num_classes == 3
    assert data.train.x.shape == (6, 3, 32, 32) and data.train.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.train.x[3, 0, 0, 0].item() == 100  # bird, second image
    again = load_dataset(spec, tmp_path, cache_dir=tmp_path / "cache")  # from the tensor cache
    assert torch.equal(again.train.x, data.train.x) and len(list((tmp_path / "cache").iterdir())) == 2

    # A limited load is the same draw, from the cache or, without it, decoding only its images;
    # the number of classes is the whole split's: the one-image draws hold neither the third
    # class nor, both together, more than two.
    for cache in (tmp_path / "cache", tmp_path / "empty"):
        small = load_dataset(spec, tmp_path, cache_dir=cache, limit_train=1, limit_test=1)
        assert torch.equal(small.train.x, data.train.subset(1).x) and torch.equal(small.test.y, data.test.subset(1).y)
        assert small.num_classes == 3 and max(small.train.y.tolist() + small.test.y.tolist()) < 2
    assert not (tmp_path / "empty").exists()  # a part of a split is not cached

    # A folder unpacked again is decoded again, and its older cache file goes, as does a file of
    # the naming before folders were told apart (split and one hash).
    old = set((tmp_path / "cache").iterdir())
    (tmp_path / "cache" / "imagefolder-test-0123456789ab.pt").write_bytes(b"an older bench's cache")
    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "copy" / "test" / "cat" / "new.png")
    grown = load_dataset(spec, tmp_path, cache_dir=tmp_path / "cache")
    assert len(grown.test) == 7 and grown.test.y.tolist() == [0, 0, 1, 1, 2, 2, 2]
    files = set((tmp_path / "cache").iterdir())
    assert len(files) == 2 and len(files & old) == 1  # train's file kept, test's replaced


def test_augmentation_crops_and_flips_per_image():
    spec = DataSpec(dataset="CIFAR10", mean=[0.0], std=[1 / 255], crop_padding=2, flip=True)
    pre = Preprocess(spec, torch.device("cpu"))
    x = torch.arange(8 * 8, dtype=torch.float).view(1, 1, 8, 8).repeat(64, 1, 1, 1)
    out = pre.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 10  # different crops and flips per image
    padded = torch.nn.functional.pad(x[:1], (2, 2, 2, 2), mode="reflect")[0]
    candidates = [c for dy in range(5) for dx in range(5)
                  for c in (padded[:, dy:dy + 8, dx:dx + 8], padded[:, dy:dy + 8, dx:dx + 8].flip(2))]
    assert all(any(torch.equal(o, c) for c in candidates) for o in out)  # each is a crop (+ flip)
    assert any(torch.equal(o, c) for o in out for c in candidates[1::2]) # some are flipped


def test_limited_subsets_are_fixed_random_draws_that_keep_every_class():
    from bench.data import Split

    y = torch.arange(10).repeat_interleave(100)  # stored class by class, like an ImageFolder
    split = Split(torch.arange(1000, dtype=torch.uint8).view(1000, 1, 1, 1), y)
    small = split.subset(50)
    assert len(small) == 50 and set(small.y.tolist()) == set(range(10))
    assert torch.equal(small.x, split.subset(50).x)  # the same draw every time
    assert split.subset(None) is split and split.subset(5000) is split


def test_a_failed_download_leaves_the_data_folder_as_it_was(tmp_path, monkeypatch):
    """Offline, torchvision makes root/MNIST/raw before its download fails: the command's error
    names the folder on one line (torchvision's error has a line per mirror tried), and the empty
    folders go (a folder that held something stays as it was)."""
    from pathlib import Path

    import pytest

    from bench import data
    from bench.errors import DataError

    def offline(cls, root, train, download):
        if download:
            (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a.example/, got:\n"
                               "<urlopen error [Errno -2] Name or service not known>\n")  # as torchvision's reads
        raise RuntimeError("Dataset not found. You can use download=True to download it")

    monkeypatch.setattr(data, "_torchvision_split", offline)
    spec = DataSpec(dataset="MNIST", mean=[0.1307], std=[0.3081])
    fresh = tmp_path / "fresh"
    assert not data.is_here(spec, fresh)
    with pytest.raises(DataError) as failed:
        data.fetch(spec, fresh)
    assert str(failed.value) == (  # one line, as every refusal (README: Errors and faults)
        f"MNIST not found in {fresh} (torchvision layout), and the download failed: Error downloading "
        "train-images-idx3-ubyte.gz: Tried https://a.example/, got: <urlopen error [Errno -2] Name or service not "
        "known>. Pass --data-dir (or set BENCH_DATA_DIR) to a folder that holds it.")
    assert not fresh.exists()
    kept = tmp_path / "kept"
    (kept / "mine").mkdir(parents=True)
    (kept / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DataError):
        data.fetch(spec, kept)
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*")) == ["mine", "mine/notes.txt"]
    # a relative path (BENCH_DATA_DIR=../shared/data read from another folder than the checkout's)
    # is named as the folder it reaches, and the folders the download made above it go too
    monkeypatch.chdir(kept / "mine")
    with pytest.raises(DataError, match=f"not found in ../shared/data \\(torchvision layout; relative to the "
                                        f"current folder: {kept}/shared/data\\)"):
        data.fetch(spec, Path("../shared/data"))
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*")) == ["mine", "mine/notes.txt"]


def test_a_dry_run_says_when_the_data_is_not_there_yet_and_creates_nothing(tmp_path, bench):
    empty = tmp_path / "data"
    ran = bench(["run", "--suite", "mlp", "--methods", "dense", "--seeds", "0", "--data-dir", empty,
                 "--results-dir", tmp_path / "results", "--dry-run"])
    assert ran.returncode == 0, ran.stderr
    assert f"data torchvision:MNIST (not under {empty} yet: a run downloads it there):" in ran.stdout
    assert not empty.exists() and not (tmp_path / "results").exists()


def test_a_data_folder_given_a_level_too_deep_names_the_folder_to_pass(tmp_path, data_dir, bench):
    """`--data-dir data/MNIST` (the dataset's own folder, or its raw/) read as "MNIST not found"
    after a failed download offline, and online downloaded a second copy into data/MNIST/MNIST:
    it is refused before any download, naming the folder that holds it, in a dry run too."""
    from bench import data
    from bench.errors import DataError

    spec = DataSpec(dataset="MNIST", mean=[0.1307], std=[0.3081])
    for deep in (data_dir / "MNIST", data_dir / "MNIST" / "raw"):
        with pytest.raises(DataError, match=f"but in {re.escape(str(data_dir.absolute()))}: .* pass --data-dir "):
            data.fetch(spec, deep)
    assert sorted(p.name for p in (data_dir / "MNIST").iterdir()) == ["raw"]  # nothing downloaded into it
    ran = bench(["run", "--suite", "mlp", "--methods", "dense", "--seeds", "0", "--data-dir", data_dir / "MNIST",
                 "--results-dir", tmp_path / "results", "--dry-run"])
    assert ran.returncode == 2 and f"pass --data-dir {data_dir.absolute()} " in ran.stderr, ran.stderr
    for beside in (data_dir / "mnist-copy", data_dir / "nothere" / "raw"):  # a folder of one's own beside it: no
        assert data._holder_above(spec, data.dataset_class("MNIST"), beside) is None
    copy = _image_folder(tmp_path)  # an ImageFolder copy's own folder, or its train/
    for deep in (tmp_path / "copy", tmp_path / "copy" / "train"):
        with pytest.raises(DataError, match=f"but in {re.escape(str(tmp_path))}: "):
            data.fetch(copy, deep)


def _image_folder(root, classes=("a", "b"), splits=("train", "test")):
    """A tiny ImageFolder copy under root/copy: two 32x32 PNGs per class and split."""
    for split in splits:
        for k, label in enumerate(classes):
            folder = root / "copy" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (60 * k + 40 * i,) * 3).save(folder / f"{i}.png")
    return DataSpec(dataset="CIFAR10", mean=[0.5] * 3, std=[0.25] * 3, image_folder="copy")


def test_image_entries_that_are_no_regular_files_are_refused_before_any_is_opened(tmp_path):
    """A FIFO named as an image blocks the decoding of every run until its time limit, a link to
    /dev/zero never ends: `fetch`, which the driver calls before any run, refuses them by a stat,
    naming the file. A link to a real image is one."""
    import os

    import pytest

    from bench import data
    from bench.errors import DataError

    spec = _image_folder(tmp_path)
    train_a = tmp_path / "copy" / "train" / "a"
    (train_a / "link.png").symlink_to(tmp_path / "copy" / "test" / "b" / "0.png")
    assert data.fetch(spec, tmp_path) == "image-folder:copy"
    assert load_dataset(spec, tmp_path).train.y.tolist() == [0, 0, 0, 1, 1]

    for make, kind in ((lambda p: os.mkfifo(p), "a FIFO"), (lambda p: p.symlink_to("/dev/zero"), "a character device"),
                       (lambda p: p.mkdir(), "a folder"), (lambda p: p.symlink_to(tmp_path / "gone.png"), "cannot be read")):
        bad = train_a / "bad.png"
        make(bad)
        with pytest.raises(DataError, match=f"^{re.escape(str(bad))}: (is )?{kind}"):
            data.fetch(spec, tmp_path)
        if kind == "a folder":
            bad.rmdir()
        else:
            bad.unlink()


def test_splits_with_different_class_folders_or_an_empty_one_are_refused(tmp_path, bench):
    """A label is the index of its class folder's name in sorted order: an extra test/0first
    shifts every test label by one, and the run used to finish at chance accuracy. The command
    refuses it before any run (and its --dry-run too), naming the classes; an empty class folder
    likewise (torchvision refused it in each run on its own)."""
    import pytest

    from bench import data
    from bench.errors import DataError

    spec = _image_folder(tmp_path)
    (tmp_path / "copy" / "test" / "0first").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "copy" / "test" / "0first" / "0.png")
    suite = tmp_path / "suite.yaml"
    suite.write_text("version: 1\nname: imgf\ndescription: t\n"
                     "data: {dataset: CIFAR10, image_folder: copy, mean: [0.5,0.5,0.5], std: [0.25,0.25,0.25]}\n"
                     "model: {name: lenet300, kwargs: {image_size: 32}}\n"
                     "training: {lr: 0.05, batch_size: 4, epochs: 1, finetune_epochs: 1, finetune_lr: 0.01}\n"
                     "seeds: [0]\nsparsities: [0.5]\nlatency_batches: [1]\nruntimes: [torch]\n")
    for plan in (["--dry-run"], []):  # the plan checks the copy as the run does
        ran = bench(["run", "--suite", suite, "--data-dir", tmp_path, "--methods", "dense", "--allow-dirty",
                     "--results-dir", tmp_path / "results", *plan])
        assert ran.returncode == 2, ran.stdout
        assert ran.stderr.strip() == (f"bench: error: {tmp_path / 'copy'}: train/ and test/ have different class "
                                      "folders (only in train/: none; only in test/: 0first): labels number the sorted "
                                      "class names, so both splits need the same ones")
        assert not (tmp_path / "results").exists()

    (tmp_path / "copy" / "test" / "0first" / "0.png").unlink()
    (tmp_path / "copy" / "train" / "0first").mkdir()
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'copy' / 'train' / '0first'))}: a class folder without images"):
        data.fetch(spec, tmp_path)


def test_an_image_that_cannot_be_decoded_is_named_first_in_the_error(tmp_path, monkeypatch):
    """A file that is no image, or a decompression bomb, fails the decoding with PIL's error;
    its message is cut to 100 characters in the run's summary, so the file comes first."""
    import pytest
    from PIL import Image as PILImage

    from bench.errors import DataError

    spec = _image_folder(tmp_path)
    bad = tmp_path / "copy" / "test" / "b" / "bad.png"
    bad.write_bytes(b"no image at all")
    with pytest.raises(DataError, match=f"^{re.escape(str(bad))}: cannot be read as an image \\(UnidentifiedImageError"):
        load_dataset(spec, tmp_path)
    bad.unlink()
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 32 x 32 is a bomb beyond twice this
    with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / 'copy' / 'train' / 'a' / '0.png'))}: cannot be read as an "
                                        "image \\(DecompressionBombError"):
        load_dataset(spec, tmp_path)


def test_images_of_another_size_are_named_and_a_grayscale_one_is_taken_as_rgb(tmp_path):
    """torchvision's loader converts every image to RGB, so a grayscale file among colour ones
    loads; one of another size would fail the stack with an error naming no file."""
    import pytest

    from bench.errors import DataError

    spec = _image_folder(tmp_path)
    Image.new("L", (32, 32), 90).save(tmp_path / "copy" / "test" / "b" / "1.png")
    assert load_dataset(spec, tmp_path).test.x.shape == (4, 3, 32, 32)
    odd = tmp_path / "copy" / "test" / "b" / "2.png"
    Image.new("RGB", (28, 28)).save(odd)
    first = tmp_path / "copy" / "test" / "a" / "0.png"
    with pytest.raises(DataError, match=f"^{re.escape(str(odd))}: its size \\(channels x height x width\\) "
                                        f"\\(3, 28, 28\\) is not the \\(3, 32, 32\\) of {re.escape(str(first))}"):
        load_dataset(spec, tmp_path)


def _mnist_copy(root, data_dir):
    """root/MNIST/raw holding links to the real MNIST files, to be replaced one by one."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in (data_dir / "MNIST" / "raw").glob("*-ubyte"):
        (raw / file.name).symlink_to(file)
    return raw


def test_mnist_images_and_labels_that_differ_in_number_are_refused(tmp_path, data_dir):
    """The test split's labels in place of the training split's: torchvision paired 10,000 of
    the 60,000 images with them, and the run finished at 11% accuracy."""
    import shutil

    import pytest

    from bench import data
    from bench.errors import DataError

    raw = _mnist_copy(tmp_path, data_dir)
    (raw / "train-labels-idx1-ubyte").unlink()
    shutil.copy(raw / "t10k-labels-idx1-ubyte", raw / "train-labels-idx1-ubyte")
    with pytest.raises(DataError) as refused:
        data.fetch(SPEC, tmp_path)
    assert str(refused.value).startswith(f"{raw / 'train-images-idx3-ubyte'} holds 60,000 images but "
                                         f"{raw / 'train-labels-idx1-ubyte'} holds 10,000 labels")


def test_a_truncated_mnist_file_is_named_not_reported_missing(tmp_path, data_dir):
    """A cut download: torchvision failed on an invalid shape naming no file, and `fetch` said
    MNIST was not found; the file is there, truncated, and the error says so."""
    import pytest

    from bench import data
    from bench.errors import DataError

    raw = _mnist_copy(tmp_path, data_dir)
    images = raw / "train-images-idx3-ubyte"
    head = images.read_bytes()[:1_000_000]
    images.unlink()
    images.write_bytes(head)
    with pytest.raises(DataError) as refused:
        data.fetch(SPEC, tmp_path)
    assert str(refused.value).startswith(f"{images}: is truncated or damaged: its header announces 60000 x 28 x 28 "
                                         "bytes of data (47,040,016 bytes in all) but the file holds 1,000,000")
    assert "not found" not in str(refused.value)
    images.write_bytes(b"\x00\x00\x08")  # not even a header
    with pytest.raises(DataError, match=f"^{re.escape(str(images))}: no MNIST IDX file"):
        data.fetch(SPEC, tmp_path)
