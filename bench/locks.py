"""File locks that coordinate processes: a claim per run, and a gate per device.

A claim keeps two `bench run` commands on one results folder from executing the same run (or
training the same dense model) twice. A gate lets a run time its model alone on a device that
other runs train on. Both are `fcntl.flock` locks, which the kernel releases when their holder
dies (kill -9, a reboot), so a dead holder never blocks anyone and nothing needs cleaning up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

import torch

from bench.records import naming_file


class Claim:
    """An exclusive, non-blocking claim on `key` in `folder` (results/<suite>/claims/).

    The lock file holds the claimer's pid for people looking; the lock itself is what counts.
    `release()` removes the file, so a clean exit leaves nothing behind.
    """

    def __init__(self, folder: Path, key: str):
        self.path = Path(folder) / f"{key}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True if this process now holds the claim; False if another live process does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
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

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no one reuses the old file
        os.close(self._fd)
        self._fd = None


class DeviceGate:
    """Runs that share a device pass the gate before every training step (a shared lock, held
    for an instant); a run that times its model holds it exclusively, so the steps of the
    others wait and its latency is measured alone. One lock file per device on this host."""

    def __init__(self, device: torch.device):
        self.path = Path(tempfile.gettempdir()) / f"bench-gate-{_device_id(device)}.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)

    def pass_through(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # our own queued work, before the clock starts
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _device_id(device: torch.device) -> str:
    """A name for the physical device, the same in every process whatever it sees as cuda:0."""
    if device.type == "cuda":
        return f"gpu-{torch.cuda.get_device_properties(device).uuid}"
    return "cpu"
