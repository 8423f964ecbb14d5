"""Safe file I/O for results folders and caches: files written whole or not at all, and files
read back without trusting them.

A killed run must leave the old file or the whole new one (a record, a leaderboard, a cached
model, a page of the site), so every write goes through atomic_write; a results folder may be
shared or tampered with, so a reader opens only a regular file of bounded size, and a torch file
only through the weights-only unpickler. Apart from bench.records because the data cache,
training checkpoints, locks, plots and the site use it too: it imports nothing of the harness, so
that any module may import it without making a circle.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator


@contextlib.contextmanager
def naming_file(path: Path | str) -> Iterator[None]:
    """Make an OSError raised inside name `path` when it names no file: a failed write (a full
    disk) says only "No space left on device", and the user needs to know where."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file so that readers see the old file or the whole new one, never a part.

    The bytes go to a temporary file beside `path`, are flushed to disk, and the file is renamed
    into place with the user's normal permissions (umask), so results folders can be shared. On
    any failure (a full disk, an interrupt) the temporary file is removed and the error raised,
    naming `path` when the error names no file (a failed write names none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer()}.", suffix=".tmp")
    try:
        with naming_file(path), os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writer() -> str:
    """Who writes a temporary file, as part of its name: this host and process."""
    return f"{socket.gethostname()}.{os.getpid()}"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files under `folder` that a writer on this host left when it was
    killed mid-write (kill -9 runs no clean-up); a live writer's are kept. Returns those removed."""
    host, removed = socket.gethostname(), []
    for tmp in Path(folder).rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<host>, <pid>, <random>, tmp
        if len(parts) < 4 or not parts[0].endswith(f".{host}") or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, data: dict[str, Any], limit: int | None = None) -> None:
    """Write `data` as strict JSON: a NaN or an infinity raises ValueError here, at write time,
    rather than making a file that strict JSON readers (and record_problem's metrics) refuse;
    so does JSON of more than `limit` bytes (a record its own readers would refuse as too large)."""
    text = (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    if limit is not None and len(text) > limit:
        raise ValueError(f"{len(text):,} bytes of JSON, more than the {limit:,} its readers accept")
    atomic_write(path, lambda f: f.write(text))


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


class RefusedFile(ValueError):
    """A file of a results folder that is not read: not a regular file, or larger than its cap."""


_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a folder",
          stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


def check_regular(path: Path) -> None:
    """RefusedFile unless `path` is a regular file (not followed if a link): what a reader that
    opens the path itself (safetensors, torch.load) checks first, so that a FIFO planted in a
    results folder is not waited on forever, past Ctrl-C and SIGTERM."""
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise RefusedFile(f"{_KINDS.get(stat.S_IFMT(mode), 'a special file')}, not a regular file")


def open_regular(path: Path | str, flags: int, mode: int = 0o666) -> int:
    """A descriptor of `path` opened with `flags` (os.O_RDONLY; APPEND to write a log, creating
    it), which must be a regular file: RefusedFile naming what it is otherwise, FileNotFoundError
    where there is nothing (and no O_CREAT). A symbolic link is not followed (a log planted as
    `-> ~/.bashrc` would have a run's prints appended there, one to /dev/zero filled the memory of
    its reader), a FIFO not waited on (opened to write it blocks until someone reads it), a device
    not opened."""
    with contextlib.suppress(FileNotFoundError):  # (O_CREAT makes it)
        check_regular(path)
    try:  # O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO since lstat is not followed or waited on
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a link, a FIFO no one reads, a folder
            check_regular(path)  # names it
        raise
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise RefusedFile(f"{_KINDS.get(kind, 'a special file')}, not a regular file")
    os.set_blocking(fd, True)
    return fd


APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT  # open_regular's flags for a log: written at its end, made if absent


def read_regular_file(path: Path, limit: int, *, cut: bool = False) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes (with `cut`, of any size: its
    first `limit` bytes); RefusedFile naming why for anything else, FileNotFoundError where there
    is nothing. A results folder may be tampered with: a symbolic link (to /dev/zero, to
    /etc/passwd) is not followed, a FIFO not waited on, a device not opened, and a huge file not
    read into memory."""
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit and not cut:
        raise RefusedFile(f"larger than {limit:,} bytes")
    return data[:limit]


class UnreadableFile(ValueError):
    """A JSON file of a results folder that read_json cannot use, with why on one line: "refused:"
    and RefusedFile's reason, "unreadable (" an OSError or a ValueError of the parser ")", or
    "nested too deeply". One type for them all, because every reader of such a file (a record,
    the site's checks, a kept bench) treats them alike: it names the file and why, and goes on
    without it (or exits), so it catches this and FileNotFoundError and nothing else. Not a
    RefusedFile, which says the file was not opened, where this is also a file read and found
    unusable; a ValueError as RefusedFile is: the file is there, what it is or holds is wrong."""


def read_json(path: Path, limit: int) -> Any:
    """The JSON held in `path`, read by read_regular_file (a regular file of at most `limit`
    bytes); FileNotFoundError where there is no file, UnreadableFile naming why for anything else.
    ValueError covers bad JSON, bad UTF-8 and an integer of more digits than Python converts;
    RecursionError, JSON nested deeper than Python's parser goes."""
    try:
        return json.loads(read_regular_file(path, limit))
    except FileNotFoundError:
        raise
    except RefusedFile as e:
        raise UnreadableFile(f"refused: {e}") from None
    except OSError as e:
        raise UnreadableFile(f"unreadable ({type(e).__name__}: {e.strerror or e})") from None
    except ValueError as e:
        raise UnreadableFile(f"unreadable ({type(e).__name__}: {e})") from None
    except RecursionError:
        raise UnreadableFile("nested too deeply") from None


def load_tensors(path: Path, map_location: Any = "cpu") -> Any:
    """What torch.save wrote to `path` (a training checkpoint, decoded images), read by torch's
    weights-only unpickler: tensors, numbers, strings and containers of them load, and a planted
    pickle that would run code is refused. Every torch.save file the harness reads back from a
    results folder or a cache is loaded here (the dense-model cache is safetensors, which needs no
    unpickler: bench.context.DenseWeights.load). A refusal raises
    pickle.UnpicklingError with its reason on one line: torch's own message spans a screen and
    suggests loading the file unsafely."""
    import pickle

    import torch

    check_regular(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        _, found, detail = str(e).partition("WeightsUnpickler error:")
        reason = detail.strip().split("\n", 1)[0].split(". ")[0] if found else str(e).split("\n", 1)[0]
        raise pickle.UnpicklingError(f"refused by torch's weights-only unpickler: {reason}") from None
