"""Where tasks run: this process, local worker processes, or a Ray cluster.

Every executor takes `Task`s from the driver (bench.runner) and gives back `Outcome`s; none of
them writes records. `SerialExecutor` is today's behaviour (one run at a time, in this process,
its log on the console). `LocalExecutor` keeps N long-lived worker processes, each loading the
dataset once, spread over the visible GPUs (`CUDA_VISIBLE_DEVICES` per worker) or sharing the CPU
cores between them; a worker that dies (kill -9, out of memory, a poisoned CUDA context) becomes
a failed outcome naming the cause, and is replaced. `RayExecutor` sends each task to a Ray
cluster with per-run resource requests; dense weights travel through Ray's object store.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing as mp
import os
import signal
import sys
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Protocol

import torch

from bench.worker import Outcome, Task, perform


class Executor(Protocol):
    """Where tasks run: `slots` tasks at once; `wait` returns finished ones, a task whose worker
    died included (as a failed Outcome naming the cause)."""

    slots: int
    description: str
    local: bool  # workers share this machine's files (they write run logs live)
    threads: int | None  # torch threads per task

    def submit(self, task: Task) -> int: ...
    def wait(self, timeout: float) -> list[tuple[int, Outcome]]: ...
    def close(self) -> None: ...


class ExecutorError(ValueError):
    """An executor that cannot be set up as asked (a usage error: exit 2)."""


def _failed(task: Task, error: str) -> Outcome:
    return Outcome({"status": "failed", "error": error, "metrics": {}, "figures": {}, "run_time_s": 0.0},
                   {"device": task.device, "device_name": "?", "torch": torch.__version__, "threads": task.threads})


class SerialExecutor:
    """One task at a time in this process, its log echoed to the console."""

    slots = 1
    local = True

    def __init__(self, echo: Callable[[str], None], threads: int | None = None):
        self.echo = echo
        self.threads = threads
        self.description = f"serial, {threads or torch.get_num_threads()} threads"
        self._pending: list[tuple[int, Task]] = []
        self._tickets = itertools.count()

    def submit(self, task: Task) -> int:
        ticket = next(self._tickets)
        self._pending.append((ticket, task))
        return ticket

    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        ticket, task = self._pending.pop(0)
        return [(ticket, perform(task, echo=self.echo))]

    def close(self) -> None:
        pass


# -- local worker processes ---------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the driver dies, so that a killed `bench run` leaves no
    orphan holding a GPU (a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _output_to(path: str | None) -> None:
    """Send this process's stdout and stderr (prints and warnings of plugins and libraries) to a
    run's log file, or nowhere between runs, so that the console stays one line per run."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _worker_main(conn: Connection, env: dict[str, str]) -> None:
    os.environ.update(env)  # before CUDA initializes: the worker sees only its GPU
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _output_to(None)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        _output_to(task.log_path)
        outcome = perform(task)
        _output_to(None)
        conn.send(outcome)
        if task.device == "cuda" and outcome.result["status"] == "failed":
            try:  # a CUDA error can poison the process: then let a fresh worker take over
                torch.cuda.synchronize()
            except Exception:  # noqa: BLE001
                return


class _Worker:
    def __init__(self, ctx: Any, env: dict[str, str]):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, env), daemon=True)
        self.process.start()
        child.close()
        self.ticket: int | None = None
        self.task: Task | None = None


class LocalExecutor:
    """`jobs` worker processes on this machine. With GPUs, worker i uses GPU i mod G; on the CPU
    the cores are divided between the workers (`threads` each) so none is oversubscribed."""

    local = True

    def __init__(self, jobs: int, gpus: list[str] | None, threads: int | None = None):
        self.slots = jobs
        self.gpus = gpus
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        per_gpu = -(-jobs // len(gpus)) if gpus else jobs
        self.threads = threads or max(1, cores // jobs)
        where = f"{len(gpus)} GPUs, up to {per_gpu} per GPU" if gpus else "the CPU"
        self.description = f"{jobs} local worker processes on {where}, {self.threads} threads each"
        self._ctx = mp.get_context("spawn")  # fork would copy the driver's CUDA and thread state
        self._workers: list[_Worker | None] = [None] * jobs
        self._tickets = itertools.count()

    def _env(self, slot: int) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    def submit(self, task: Task) -> int:
        slot = next(i for i, w in enumerate(self._workers) if w is None or w.ticket is None)
        worker = self._workers[slot]
        if worker is None or not worker.process.is_alive():
            worker = self._workers[slot] = _Worker(self._ctx, self._env(slot))
        worker.ticket, worker.task = next(self._tickets), task
        worker.conn.send(task)
        return worker.ticket

    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        busy = [w for w in self._workers if w is not None and w.ticket is not None]
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
        done = []
        for w in busy:
            if w.conn in ready:
                try:
                    outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is not None:
                    done.append((w.ticket, outcome))
                    w.ticket = w.task = None
                    continue
            if w.conn in ready or w.process.sentinel in ready:
                w.process.join()
                done.append((w.ticket, _failed(w.task, _death(w.process.exitcode))))
                self._workers[self._workers.index(w)] = None
        return done

    def close(self) -> None:
        for w in self._workers:
            if w is not None:
                w.conn.close()
                w.process.terminate()
                w.process.join(timeout=10)


def _death(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the system may have run out of memory, or someone killed it)" if name == "SIGKILL" else ""
        return f"WorkerDied: the worker process running this task was killed by {name}{hint}"
    return f"WorkerDied: the worker process running this task exited with code {exitcode}"


# -- Ray ----------------------------------------------------------------------------------------


def _ray_perform(task: Task, dense: Any) -> Outcome:
    """A task on a Ray worker: dense weights arrive as a separate argument (Ray resolves the
    object reference, so every node gets them from the object store, not from a path)."""
    from dataclasses import replace

    return perform(replace(task, dense=dense))


class RayExecutor:
    """Each task a Ray task on a cluster: `address` "auto" or HOST:PORT joins a running one,
    None starts a one-machine cluster. Ray retries a task whose node was lost."""

    local = False

    def __init__(self, address: str | None, gpus_per_run: float, cpus_per_run: float,
                 runtime_env: dict[str, Any] | None = None):
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        resources = ray.cluster_resources()
        if gpus_per_run > 0:
            if resources.get("GPU", 0) < gpus_per_run:
                raise ExecutorError(f"--gpus-per-run {gpus_per_run}: the Ray cluster has "
                                    f"{resources.get('GPU', 0):g} GPUs")
            self.slots = max(1, int(resources["GPU"] / gpus_per_run))
        else:
            self.slots = max(1, int(resources.get("CPU", 1) / cpus_per_run))
        self.threads = max(1, int(cpus_per_run))
        nodes = sum(1 for n in ray.nodes() if n["Alive"])
        self.description = (f"ray, {nodes} nodes, {gpus_per_run:g} GPUs and {cpus_per_run:g} CPUs per run")
        self._remote = ray.remote(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=2)(_ray_perform)
        self._dense_refs: dict[int, Any] = {}  # id(weights) -> object reference, one put per model
        self._refs: dict[Any, tuple[int, Task]] = {}
        self._tickets = itertools.count()

    def submit(self, task: Task) -> int:
        from dataclasses import replace

        dense = task.dense
        if dense is not None and not isinstance(dense, str):
            if id(dense) not in self._dense_refs:
                self._dense_refs[id(dense)] = self._ray.put(dense)
            dense = self._dense_refs[id(dense)]
        ticket = next(self._tickets)
        self._refs[self._remote.remote(replace(task, dense=None), dense)] = (ticket, task)
        return ticket

    def wait(self, timeout: float) -> list[tuple[int, Outcome]]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        done = []
        for ref in ready:
            ticket, task = self._refs.pop(ref)
            try:
                done.append((ticket, self._ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - a crashed worker or lost node, after retries
                done.append((ticket, _failed(task, f"{type(e).__name__}: {str(e).splitlines()[0]}")))
        return done

    def close(self) -> None:
        self._ray.shutdown()
