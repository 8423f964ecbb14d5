"""Datasets as in-memory uint8 tensors on the run's device, batched by index slices.

The suites' datasets are small (MNIST 47 MB, CIFAR-10 150 MB as uint8), so they live whole on the
device; normalization and augmentation are batched tensor operations there. There is no
DataLoader and no per-sample Python work on the training path.

Where the images come from, in order (`root` is --data-dir, $BENCH_DATA_DIR, or a user cache):
1. the torchvision layout under `root` (e.g. root/MNIST/raw, root/cifar-10-batches-py);
2. the suite's offline ImageFolder copy, root/<image_folder>/{train,test};
3. the official download by torchvision into `root`.
The source used is recorded with every run, so leaderboards never mix sources.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import math
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from bench.bounds import brief
from bench.errors import DataError
from bench.files import atomic_write, load_tensors
from bench.suite import DataSpec


@dataclass
class Split:
    x: torch.Tensor  # uint8, N x C x H x W
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def subset(self, n: int | None) -> Split:
        """n samples (all if n is None) for quick runs with --limit-train/--limit-test: the draw
        `draw` makes."""
        keep = draw(len(self), n)
        return self if keep is None else Split(self.x[keep], self.y[keep])


def draw(total: int, n: int | None) -> torch.Tensor | None:
    """Which n of `total` samples a limited run keeps (None: all of them): a fixed random draw, the
    same for every run, so that a subset of a source stored class by class (an ImageFolder) still
    holds every class; in stored order."""
    if n is None or n >= total:
        return None
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values


@dataclass
class Dataset:
    train: Split
    test: Split
    source: str  # e.g. "torchvision:MNIST" or "image-folder:cifar10-jpeg"
    num_classes: int

    def to(self, device: torch.device) -> Dataset:
        return Dataset(self.train.to(device), self.test.to(device), self.source, self.num_classes)

    def copy(self) -> Dataset:
        """A run's own copy of the images and labels: a method that edits them in place (the test
        labels, say) changes its own run alone, never another's data or the measurement's."""
        return Dataset(Split(self.train.x.clone(), self.train.y.clone()), Split(self.test.x.clone(), self.test.y.clone()),
                       self.source, self.num_classes)


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bench"


def default_data_dir() -> Path:
    return _cache_home() / "data"


def _root(root: Path | str | None) -> Path:
    """The data folder a caller names (--data-dir, $BENCH_DATA_DIR), else the user's cache."""
    return Path(root) if root is not None else default_data_dir()


def default_tensor_cache() -> Path:
    """Where decoded image folders are kept as tensors (shared by every results folder)."""
    return _cache_home() / "tensors"


def _torchvision_split(cls: type, root: Path, train: bool, download: bool):
    params = inspect.signature(cls).parameters
    if "train" in params:
        return cls(str(root), train=train, download=download)
    return cls(str(root), split="train" if train else "test", download=download)  # dataset_class checked it


def _to_split(ds) -> Split:
    """A torchvision dataset as tensors, from its in-memory arrays when it has them."""
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", getattr(ds, "labels", None))
    if data is not None and targets is not None:
        x = torch.as_tensor(data)
        if x.ndim == 3:
            x = x.unsqueeze(1)
        elif x.ndim == 4 and x.shape[-1] in (1, 3):
            x = x.permute(0, 3, 1, 2)
        return Split(x.contiguous().to(torch.uint8), torch.as_tensor(targets, dtype=torch.long))
    to_tensor = torchvision.transforms.PILToTensor()
    xs, ys = zip(*((to_tensor(img), label) for img, label in ds))
    return Split(torch.stack(xs), torch.tensor(ys))


def _image_folder_split(folder: Path, cache_dir: Path | None, limit: int | None = None) -> tuple[Split, int]:
    """An ImageFolder split, or the `draw` of `limit` images from it, and the whole split's number
    of classes (a small draw may miss one; the model's outputs must not depend on it).

    The whole split is decoded once and cached as a tensor file (60,000 JPEGs take a minute or
    two); a limited run on a machine without that file decodes only its own images, so a quick
    first try is quick. The file is named by the folder's path and its folders' timestamps: a
    split whose images are added, removed or renamed (or unpacked again) is decoded again, and its
    older file is removed rather than left to pile up. (An image edited in place changes no
    folder's timestamp: unpack again, or delete the cache, after editing images.)"""
    folders = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    stamp = hashlib.sha256(repr([(p.name, p.stat().st_mtime_ns) for p in folders]).encode()).hexdigest()[:8]
    where = f"imagefolder-{folder.name}-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]}"
    cached = cache_dir / f"{where}-{stamp}.pt" if cache_dir is not None else None
    if cached is not None and cached.exists():
        try:
            x, y = load_tensors(cached)  # a file planted in the cache runs no code
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
                why = "it holds no pair of tensors"
            elif (x.dtype != torch.uint8 or x.dim() != 4 or y.dtype != torch.long or y.dim() != 1
                  or len(x) != len(y) or len(y) == 0 or int(y.min()) < 0):
                why = (f"its images ({x.dtype}, {tuple(x.shape)}) and labels ({y.dtype}, {tuple(y.shape)}) are no "
                       "split: uint8 images N x C x H x W, N labels >= 0")
            else:
                return Split(x, y).subset(limit), int(y.max()) + 1
        except Exception as e:  # noqa: BLE001 - an unusable cache file is decoded again
            why = f"{type(e).__name__}: {e}"
        print(f"bench: warning: the tensor cache {cached} is unusable ({why}); decoding {folder} again",
              file=sys.stderr)
        cached.unlink(missing_ok=True)
    images = torchvision.datasets.ImageFolder(str(folder), transform=torchvision.transforms.PILToTensor())
    keep = draw(len(images), limit)
    indices = range(len(images)) if keep is None else keep.tolist()
    decoded = [_decode(images, i) for i in indices]
    for i, x in zip(indices, decoded):  # (images of another size would fail the stack naming no file)
        if x.shape != decoded[0].shape:
            raise DataError(f"{images.samples[i][0]}: its size (channels x height x width) {tuple(x.shape)} is not "
                            f"the {tuple(decoded[0].shape)} of {images.samples[indices[0]][0]}: a split's images "
                            "must all have one size")
    split = Split(torch.stack(decoded), torch.tensor(images.targets)[list(indices)])
    if keep is not None:  # a part of the split: not cached
        return split, max(images.targets) + 1
    if cached is not None:
        atomic_write(cached, lambda f: torch.save((split.x, split.y), f))
        # its older files, and any of the naming before folders were told apart (split, one hash)
        for older in [*cache_dir.glob(f"{where}-*.pt"), *cache_dir.glob(f"imagefolder-{folder.name}-{'?' * 12}.pt")]:
            if older != cached:
                older.unlink(missing_ok=True)
    return split, int(split.y.max()) + 1


def _decode(images: torchvision.datasets.ImageFolder, i: int) -> torch.Tensor:
    """Image `i` of an ImageFolder as a tensor; DataError naming its file first if it cannot be
    decoded (not an image, a decompression bomb, unreadable), so that a message cut to one short
    line still says which file to remove."""
    try:
        return images[i][0]
    except Exception as e:  # noqa: BLE001 - whatever PIL raises, the file is at fault
        raise DataError(f"{images.samples[i][0]}: cannot be read as an image ({type(e).__name__}: {e})") from None


def _file_kind(mode: int) -> str:
    """What a file that is no regular file is, for messages."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "no regular file"


def _check_image_folder(folder: Path) -> None:
    """Refuse, naming the file or folders, an ImageFolder copy that would hang or mislabel every
    run, before any image is opened: cheap (a listing and a stat per image, under a second for
    CIFAR-10's 60,000), so it runs once up front rather than failing each run on its own.

    - train/ and test/ must have the same class folders: a label is the index of its folder's
      name in sorted order, so an extra class in one split shifts the other's labels silently.
    - every entry torchvision would read as an image (by its extension) must be a regular file,
      after following links: opening a FIFO blocks forever, a device such as /dev/zero never
      ends; a folder named like an image is a mistake too.
    - every class folder must hold an image (torchvision refuses an empty one, but in each run)."""
    classes = {}
    for split in ("train", "test"):
        try:
            classes[split] = torchvision.datasets.folder.find_classes(str(folder / split))[0]
        except FileNotFoundError as e:  # no class folder: "Couldn't find any class folder in <folder>."
            raise DataError(str(e)) from None
    if classes["train"] != classes["test"]:
        train, test = set(classes["train"]), set(classes["test"])
        raise DataError(f"{folder}: train/ and test/ have different class folders (only in train/: "
                        f"{', '.join(sorted(train - test)) or 'none'}; only in test/: {', '.join(sorted(test - train)) or 'none'}): "
                        "labels number the sorted class names, so both splits need the same ones")
    extensions = torchvision.datasets.folder.IMG_EXTENSIONS
    for split, names in classes.items():
        for name in names:
            found = 0
            for where, folders, files in os.walk(folder / split / name, followlinks=True):  # as torchvision's make_dataset
                for entry in [*folders, *files]:
                    if not torchvision.datasets.folder.has_file_allowed_extension(entry, extensions):
                        continue
                    path = Path(where) / entry
                    try:
                        mode = path.stat().st_mode  # follows links: a link to a real image is one
                    except OSError as e:
                        raise DataError(f"{path}: cannot be read ({e.strerror}): remove it from the image folder") from None
                    if not stat.S_ISREG(mode):
                        raise DataError(f"{path}: is {_file_kind(mode)}, not an image file: remove it from the image folder")
                    found += 1
            if not found:
                raise DataError(f"{folder / split / name}: a class folder without images "
                                f"(expected files ending in {', '.join(extensions)}): add its images or remove it")


def _idx_count(path: Path, dims: int) -> int:
    """How many items (images or labels) an MNIST IDX file of uint8 data with `dims` dimensions
    holds, from its header; DataError naming the file if the header or the file's size is wrong.
    torchvision reads such a file whole and reports a short one as an invalid shape, naming no
    file, and `fetch` took that for a dataset not found."""
    with path.open("rb") as f:
        header = f.read(4 + 4 * dims)
    magic, shape = header[:4], [int.from_bytes(header[i:i + 4], "big") for i in range(4, len(header), 4)]
    if magic != bytes([0, 0, 8, dims]) or len(shape) != dims:
        raise DataError(f"{path}: no MNIST IDX file of {dims}-dimensional uint8 data (its header is {header.hex()}): "
                        f"replace it, or delete {path.parent} to download it again")
    expected, size = len(header) + math.prod(shape), path.stat().st_size
    if size != expected:
        raise DataError(f"{path}: is truncated or damaged: its header announces {' x '.join(map(str, shape))} bytes of "
                        f"data ({expected:,} bytes in all) but the file holds {size:,}: replace it, or delete "
                        f"{path.parent} to download it again")
    return shape[0]


def _check_mnist_files(cls: type, root: Path) -> None:
    """For MNIST and the datasets that read its files as it does (FashionMNIST, KMNIST): refuse,
    naming the files, raw files that are there but truncated, or whose images and labels differ
    in number (the runs paired them up silently, mislabelled). Reads
    the headers only; files that are not there are torchvision's to report or download."""
    if not (issubclass(cls, torchvision.datasets.MNIST) and cls._load_data is torchvision.datasets.MNIST._load_data):
        return
    raw = root / cls.__name__ / "raw"
    for split in ("train", "t10k"):
        images, labels = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
        if images.is_file() and labels.is_file():
            n_images, n_labels = _idx_count(images, 3), _idx_count(labels, 1)
            if n_images != n_labels:
                raise DataError(f"{images} holds {n_images:,} images but {labels} holds {n_labels:,} labels: "
                                f"the two files must come from the same split; replace them, or delete {raw} "
                                "to download them again")


def _has_torchvision_layout(cls: type, root: Path) -> bool:
    _check_mnist_files(cls, root)
    try:
        _torchvision_split(cls, root, True, download=False)
        return True
    except RuntimeError:
        return False


def dataset_class(name: str) -> type:
    """The torchvision dataset class `name`, one with a train or split argument (the suites'
    datasets come as a training and a test split); DataError naming what was expected if not."""
    cls = getattr(torchvision.datasets, name, None)
    if not isinstance(cls, type):
        raise DataError(f"torchvision.datasets has no dataset class {brief(name)} (expected one such as MNIST, "
                        "FashionMNIST, CIFAR10, SVHN)")
    if not {"train", "split"} & set(inspect.signature(cls).parameters):
        raise DataError(f"torchvision.datasets.{name} has neither a train nor a split argument, so it has "
                        "no standard test split")
    return cls


def find_source(spec: DataSpec, root: Path | None) -> str:
    """Which source `load_dataset` reads, without decoding or downloading: the torchvision
    layout under `root` (or its download, the same official data), else the suite's ImageFolder
    copy. Records are keyed by it, so a plan (and `--dry-run`) knows its runs' identities."""
    root = _root(root)
    cls = dataset_class(spec.dataset)
    folder = root / spec.image_folder if spec.image_folder else None
    if (not _has_torchvision_layout(cls, root) and folder is not None
            and (folder / "train").is_dir() and (folder / "test").is_dir()):
        return f"image-folder:{spec.image_folder}"
    return f"torchvision:{spec.dataset}"


def is_here(spec: DataSpec, root: Path | None) -> bool:
    """Whether `find_source`'s source is already under `root` (else `fetch` downloads it)."""
    root = _root(root)
    return find_source(spec, root).startswith("image-folder:") or _has_torchvision_layout(dataset_class(spec.dataset), root)


def fetch(spec: DataSpec, root: Path | None, download: bool = True) -> str:
    """Make sure the dataset is readable under `root` (downloading the official files when no
    copy is there, if `download`) and return its source; DataError, naming where it looked, if it
    cannot be. A plan (--dry-run) passes download=False: it checks the copy that is there, as a
    run would, and fetches nothing."""
    root = _root(root)
    source = find_source(spec, root)
    cls = dataset_class(spec.dataset)
    missing = source.startswith("torchvision:") and not _has_torchvision_layout(cls, root)
    if missing and (holder := _holder_above(spec, cls, root)) is not None:
        # --data-dir data/MNIST (or .../MNIST/raw, .../cifar10-jpeg): the dataset's own folder.
        # Offline that read as "not found" with a failed download; online it downloaded a copy
        # into data/MNIST/MNIST
        raise DataError(f"{spec.dataset} is not in {root}, but in {holder}: the data folder is the one that holds "
                        f"the datasets' folders, not a dataset's own folder; pass --data-dir {holder} "
                        "(or set BENCH_DATA_DIR to it)")
    if download and missing:
        before = set(root.iterdir()) if root.is_dir() else None
        above = [p for p in root.parents if not p.exists()]  # the download makes them too (closest first)
        try:
            for train in (True, False):
                _torchvision_split(cls, root, train, download=True)
        except Exception as e:  # noqa: BLE001 - any download failure gets the same advice
            _remove_empty_folders(root, before)
            for folder in above:
                with contextlib.suppress(OSError):  # not empty: it holds something, which stays
                    folder.rmdir()
            # BENCH_DATA_DIR=../shared/data, exported in the checkout and read from one of its
            # folders, names another folder: say which
            relative = "" if root.is_absolute() else f"; relative to the current folder: {os.path.abspath(root)}"
            looked = f"{root} (torchvision layout{relative})"
            if spec.image_folder:
                looked += f" and {root / spec.image_folder}/train, /test (ImageFolder layout)"
            raise DataError(  # on one line: torchvision's error has one per mirror tried, and ended the line before "."
                f"{spec.dataset} not found in {looked}, and the download failed: {' '.join(str(e).split())}. "
                "Pass --data-dir (or set BENCH_DATA_DIR) to a folder that holds it."
            ) from None
    if source.startswith("image-folder:"):
        _check_image_folder(root / spec.image_folder)
    return source


def _holder_above(spec: DataSpec, cls: type, root: Path) -> Path | None:
    """The parent or grandparent of `root` that holds the dataset (the torchvision layout or the
    suite's ImageFolder copy) where `root` does not: a data folder given one or two levels too
    deep (root/MNIST, root/MNIST/raw, root/cifar10-jpeg). None where neither holds it, or where
    `root` is not within the dataset's own folder there: a folder beside it (one's own, for a
    download of its own; a sibling's name mistyped) is no dataset's folder given a level too deep."""
    root = root.absolute()
    own = {cls.__name__, getattr(cls, "base_folder", None), spec.image_folder} - {None}
    for above in list(root.parents)[:2]:
        if root.relative_to(above).parts[0] not in own:
            continue
        if (_has_torchvision_layout(cls, above) or spec.image_folder is not None
                and all((above / spec.image_folder / split).is_dir() for split in ("train", "test"))):
            return above
    return None


def _remove_empty_folders(root: Path, before: set[Path] | None) -> None:
    """Take away the empty folders a failed download left (root/MNIST/raw), so that a failed
    command leaves the data folder as it found it; files and folders that were there stay."""
    if before is None:
        made = [root]
    else:
        made = [p for p in root.iterdir() if p not in before] if root.is_dir() else []
    for top in made:
        for folder in sorted((p for p in [top, *top.rglob("*")] if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: it holds something, which stays
                folder.rmdir()


def load_dataset(spec: DataSpec, root: Path | None, cache_dir: Path | None = None,
                 limit_train: int | None = None, limit_test: int | None = None) -> Dataset:
    """Load a suite's dataset into CPU tensors from the source that `fetch` finds or downloads:
    the whole splits, or the `draw` of --limit-train/--limit-test samples from each."""
    root = _root(root)
    source = fetch(spec, root)
    if source.startswith("image-folder:"):
        folder = root / spec.image_folder
        (train, train_classes), (test, test_classes) = (_image_folder_split(folder / "train", cache_dir, limit_train),
                                                        _image_folder_split(folder / "test", cache_dir, limit_test))
    else:
        cls = dataset_class(spec.dataset)
        train, test = (_to_split(_torchvision_split(cls, root, split, download=False)) for split in (True, False))
        train_classes, test_classes = int(train.y.max()) + 1, int(test.y.max()) + 1
        train, test = train.subset(limit_train), test.subset(limit_test)
    return Dataset(train, test, source, max(train_classes, test_classes))


class Preprocess:
    """Batched normalization and augmentation on the device: uint8 NCHW in, float NCHW out,
    channels-last in memory like the models (see Context)."""

    def __init__(self, spec: DataSpec, device: torch.device):
        shape = (1, len(spec.mean), 1, 1)
        self.mean = torch.tensor(spec.mean, device=device).view(shape) * 255
        self.std = torch.tensor(spec.std, device=device).view(shape) * 255
        self.pad = spec.crop_padding
        self.flip = spec.flip

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32, copy=True).sub_(self.mean).div_(self.std)  # in place on a fresh copy
        return x.contiguous(memory_format=torch.channels_last)

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop with reflect padding and random horizontal flip, one draw per image."""
        n, _, h, w = x.shape
        if self.pad:
            p = self.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
            dy = torch.randint(0, 2 * p + 1, (n, 1, 1), device=x.device, generator=generator)
            dx = torch.randint(0, 2 * p + 1, (n, 1, 1), device=x.device, generator=generator)
            rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)
            cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(n, h, w)
            batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
            x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = torch.rand(n, device=x.device, generator=generator) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        return x.contiguous(memory_format=torch.channels_last)
