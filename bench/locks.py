"""File locks that coordinate processes: a claim per run, and a gate per device.

A claim keeps two `bench run` commands on one results folder from executing the same run (or
training the same dense model) twice. A gate lets a run time its model alone on a device that
other runs train on. Both are `fcntl.flock` locks, which the kernel releases when their holder
dies (kill -9, a reboot), so a dead holder never blocks anyone and nothing needs cleaning up.
Neither follows a symbolic link: a link planted where a lock file goes never makes the harness
open, truncate or write a file elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from bench.files import naming_file, read_regular_file

if TYPE_CHECKING:  # a claim needs no torch: `bench leaderboard` takes one, and imports no torch
    import torch


class ClaimError(OSError):
    """A claim's folder or file is not the harness's own (a planted link): refused, untouched."""


class Claim:
    """An exclusive, non-blocking claim on `key` in `folder` (results/<suite>/claims/).

    The lock file holds the claimer's pid for people looking; the lock itself is what counts.
    `release()` removes the file, so a clean exit leaves nothing behind.
    """

    def __init__(self, folder: Path, key: str):
        self.path = Path(folder) / f"{key}.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> bool:
        """True if this process now holds the claim; False if another live process does (with
        `wait`, it waits for that process to let go or die, and is then True).

        The claim truncates and writes its file, so the file must be the harness's own: a claims
        folder that is a symbolic link, or a claim path that is a symbolic link, a hard link or
        no regular file, raises ClaimError naming it (and nothing is opened through it)."""
        folder = self.path.parent
        while True:
            if folder.is_symlink():
                raise ClaimError(f"{folder} is a symbolic link, not the harness's claims folder: remove it")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                if os.path.lexists(folder) and not folder.is_dir():
                    raise  # a file where the folder goes: not ours to remove
                continue  # there at mkdir, gone at pathlib's is_dir check: another command removed it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            except FileNotFoundError:
                continue  # another command, ending, removed the empty claims folder since our mkdir
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ClaimError(f"{self.path} is a symbolic link, not a claim of the harness: "
                                     "remove it") from None
                raise
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                os.close(fd)
                what = "a hard link" if stat.S_ISREG(info.st_mode) else "no regular file"
                raise ClaimError(f"{self.path} is {what}, not a claim of the harness: remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:  # Ctrl-C while waiting
                os.close(fd)
                raise
            # The previous holder may have removed the file between our open and our lock: then
            # we locked a file nobody else sees, and must try again on the path's current file.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    os.ftruncate(fd, 0)
                    with naming_file(self.path):
                        os.write(fd, f"{os.getpid()}\n".encode())
                    self._fd = fd
                    return True
            except FileNotFoundError:
                pass
            os.close(fd)

    def holder(self) -> int | None:
        """The pid its holder wrote in the claim file, for messages; None where there is none to
        read (between another command's lock and its write, or a file that is not a claim's)."""
        try:
            text = read_regular_file(self.path, 64).decode("ascii").strip()
        except (OSError, ValueError):
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no one reuses the old file
        os.close(self._fd)
        self._fd = None


class DeviceGate:
    """Runs that share a device pass the gate before every training step (a shared lock, held
    for an instant); a run that times its model holds it exclusively, so the steps of the
    others wait and its latency is measured alone. One lock file per device on this machine.

    The lock files are shared by every user, so that two users' runs on one device are timed
    alone too: they live in `<temp>/bench-gates/`, a folder every user may write (sticky, like
    /tmp itself), and each is made readable by all whatever the umask, since a lock needs only a
    read-only descriptor. (Once one user had created the old `<temp>/bench-gate-cpu.lock` with
    mode 0644, no other user could open it to write, and bench failed for them.) Any user who can
    run bench can thus hold a gate, as a run does while it times its model. Where that folder is
    no such folder or its lock file no regular file (another user made them so), the gate falls
    back to a folder of this user's own, `<temp>/bench-gates-<uid>/`, and `shared` is False:
    this user's runs still exclude each other, but not other users' runs.

    Each gate holds a descriptor: close it (or use the gate as a context manager)."""

    def __init__(self, device: torch.device):
        self._alone = False
        self._gpu = device if device.type == "cuda" else None
        name = f"bench-gate-{_device_id(device)}.lock"
        try:
            self.path, self.shared = _shared_folder() / name, True
            self._fd: int | None = _open_lock(self.path)
        except OSError:
            self.path, self.shared = _own_folder() / name, False
            self._fd = _open_lock(self.path)

    def pass_through(self) -> None:
        """Wait while another process times its model on the device. Inside this gate's own
        `alone()` it does nothing: taking the shared lock would turn the exclusive one into it,
        and the unlock would end it mid-measurement.

        On a GPU it first waits for the work this process queued since it last passed. Kernel
        launches return at once and a training step reads nothing back (bench.train.fit reads
        the loss once per epoch), so a process's CPU runs steps ahead of its GPU work, up to
        CUDA's launch queue; stopped at the gate, it would leave those steps running beside the
        timing, which the holder cannot wait for (`torch.cuda.synchronize` waits for its own
        process's work only) and a warm-up of a few calls need not outlast (the accuracy
        evaluation that bench.worker.measure_model does first may, by the order of its work). With
        the wait, each other process has at most the one step it launched after passing in flight
        when a timing starts. Its cost: the GPU idles while the CPU launches a step's first kernels."""
        if self._alone:
            return
        if self._gpu is not None:
            import torch

            torch.cuda.synchronize(self._gpu)
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        import torch

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._alone = True
        try:
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # our own queued work, before the clock starts
            yield
        finally:
            self._alone = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DeviceGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shared_folder() -> Path:
    """`<temp>/bench-gates`, made world-writable and sticky; OSError if it is something else."""
    folder = Path(tempfile.gettempdir()) / "bench-gates"
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
        os.chmod(folder, 0o1777)  # mkdir's mode is cut by the umask
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o1777 != 0o1777:
        raise OSError(f"{folder} is no folder that every user may write")
    return folder


def _own_folder() -> Path:
    """`<temp>/bench-gates-<uid>`, this user's; OSError naming it if another user made it."""
    folder = Path(tempfile.gettempdir()) / f"bench-gates-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{folder}, where this user's device gates go, is not a folder of this user: remove it")
    return folder


def _open_lock(path: Path) -> int:
    """A read-only descriptor of the lock file `path`, created readable by every user if it is
    not there; never through a symbolic link, never blocking on a FIFO (OSError for anything but
    a regular file)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            os.fchmod(fd, 0o644)  # the umask may have cut others' read permission
        except FileExistsError:  # another process created it meanwhile
            fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is no regular file")
    return fd


def _device_id(device: torch.device) -> str:
    """A name for the physical device, the same in every process whatever it sees as cuda:0."""
    import torch

    if device.type == "cuda":
        return f"gpu-{torch.cuda.get_device_properties(device).uuid}"
    return "cpu"
