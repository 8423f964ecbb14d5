"""Where tasks run: local worker processes, this process, or a Ray cluster.

Every executor takes `Task`s from the driver (bench.sweep) and gives back one `Outcome` per run
of the task; none of them writes records. `LocalExecutor` keeps N long-lived worker processes
(one for `--jobs 1`), each loading the dataset once, spread over the visible GPUs
(`CUDA_VISIBLE_DEVICES` per worker) or sharing the CPU cores between them. A worker that dies
(kill -9, out of memory, `os._exit`, a poisoned CUDA context) or outlives its task's time limit
(killed then) becomes failed outcomes naming the cause, and is replaced: a run can hang or crash
its process without taking the command with it. `InlineExecutor` runs tasks in this process, for
stepping through a plugin in a debugger, with none of that protection. `RayExecutor` sends each
task to a Ray cluster with per-run resource requests; dense weights travel through Ray's object
store.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import itertools
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing import forkserver
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Protocol

import torch
from tqdm import tqdm

from bench import files
from bench.errors import ExecutorError, counted, first_line
from bench.records import Status
from bench.worker import Outcome, Task, failed_result, perform


class Executor(Protocol):
    """Where tasks run: `slots` tasks at once; `wait` returns finished ones with an Outcome per
    run, a task whose worker died or that ran out of time included (failed, naming the cause)."""

    slots: int
    description: str
    local: bool  # workers share this machine's files (they write run logs live)
    threads: int | None  # torch threads per task

    def submit(self, task: Task) -> int: ...
    def wait(self, timeout: float) -> list[tuple[int, list[Outcome]]]: ...
    def close(self) -> None: ...  # stops what runs; called again, does nothing


def _failed(task: Task, error: str) -> list[Outcome]:
    """Every run of `task` failed with `error` (its worker died, or it ran out of time)."""
    env = {"device": task.device, "device_name": "?", "torch": torch.__version__, "threads": task.threads}
    return [Outcome(failed_result(error), dict(env)) for _ in task.specs]


class InlineExecutor:
    """One task at a time in this process, its log echoed to the console: for debugging a
    plugin (a breakpoint stops in it). A run that hangs, exits the process or crashes it takes
    the command with it, and no time limit applies."""

    slots = 1
    local = True

    def __init__(self, echo: Callable[[str], None], threads: int | None = None):
        self.echo = echo
        self.threads = threads
        self.description = f"in this process, {counted(threads or torch.get_num_threads(), 'thread')}"
        self._pending: list[tuple[int, Task]] = []
        self._tickets = itertools.count()

    def submit(self, task: Task) -> int:
        ticket = next(self._tickets)
        self._pending.append((ticket, task))
        return ticket

    def wait(self, timeout: float) -> list[tuple[int, list[Outcome]]]:
        ticket, task = self._pending.pop(0)
        return [(ticket, perform(task, echo=self.echo))]

    def close(self) -> None:
        pass


# -- local worker processes ---------------------------------------------------------------------


def _die_with_driver() -> None:
    """Kill this worker when the driver dies, so that a killed `bench run` leaves no orphan
    holding a GPU or its console. Linux's parent-death signal does it in the kernel, even for a
    run stuck in a C call that holds the GIL. A worker forked from a fork server is the server's
    child, so the signal comes when the server dies, and the server exits once every copy of its
    "driver alive" pipe is closed: the worker closes the copy it inherited, leaving the driver's
    as the last. A thread waiting on multiprocessing's pipe from the driver backs this up where
    there is no parent-death signal."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    server = forkserver._forkserver  # in a worker the fork server made, what it passed down (private)
    if server._forkserver_alive_fd is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    driver = mp.parent_process()
    if driver is not None:
        threading.Thread(target=lambda: (wait([driver.sentinel]), os.kill(os.getpid(), signal.SIGKILL)),
                         name="die-with-driver", daemon=True).start()


def _output_to(path: str | None) -> None:
    """Send this process's stdout and stderr (prints and warnings of plugins and libraries) to a
    run's log file, or nowhere between runs, so that the console stays one line per run. Not
    through a link planted at the log's path, nor into a FIFO: nowhere then (the run's _Log
    returns its lines, saying why)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        fd = files.open_regular(path, files.APPEND) if path else os.open(os.devnull, os.O_WRONLY)
    except files.RefusedFile:
        fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


LOG_LIMIT = 10 * 2**20  # bytes a run's log keeps: a log is KBs of epoch lines; a plugin printing per step, MBs

READY = "ready"  # a worker's first message: it started (multiprocessing imported what it needs)


def _worker_main(conn: Connection, env: dict[str, str]) -> None:
    os.setpgid(0, 0)  # its own process group, which the driver kills whole: a plugin's subprocesses too
    try:
        conn.send(READY)
    except OSError:  # the driver let go of it as it started (Ctrl-C while the fork server imported)
        return
    # The driver's environment as it is now, not as the fork server found it (multiprocessing
    # passes the import path and folder itself); before CUDA initializes: the worker sees only
    # its GPU.
    os.environ.clear()
    os.environ.update(env)
    _die_with_driver()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    # tqdm guards its bars with a multiprocessing lock, a named semaphore, made at the first bar
    # (a plugin's, or the one torch.fx makes when a model is deployed). A worker killed in a run
    # leaves it to the resource tracker, which then warned of "leaked semaphore objects" after
    # every Ctrl-C. A worker's bars go to its own log: a thread lock is all they need.
    tqdm.set_lock(threading.RLock())
    _output_to(None)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        _output_to(task.log_paths[0])  # a fused group's prints go to its first run's log
        outcomes = perform(task)
        _output_to(None)
        conn.send(outcomes)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment with `env` set, for the processes it starts meanwhile."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _deaf_to_ctrl_c() -> Iterator[None]:
    """SIGINT ignored in this process meanwhile, so that a process it starts inherits it ignored
    through exec: a terminal's Ctrl-C reaches the whole foreground group, and the fork server (or
    a spawned worker) imports torch for seconds before it ignores SIGINT itself; hit then, it
    printed a KeyboardInterrupt traceback under the driver's one-line message. Held around the
    start alone (a fork and exec, milliseconds): a Ctrl-C then is lost. Only the main thread may set
    handlers; elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


class _Worker:
    def __init__(self, ctx: Any, env: dict[str, str]):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, {**os.environ, **env}), daemon=True)
        # A spawned worker starts with the environment it is given here: before _worker_main sets
        # it, the worker imports bench.executors, and with it torch.utils.benchmark, which asks
        # torch.cuda.is_available() as it loads; CUDA then reads CUDA_VISIBLE_DEVICES once, for
        # good, and every worker would see every GPU and train on the first.
        with _environment(env):
            if ctx.get_start_method() == "forkserver":
                with _deaf_to_ctrl_c():
                    forkserver.ensure_running()  # starts the server: it imports once started
                self.process.start()  # waits for those imports, deaf to no Ctrl-C
            else:
                with _deaf_to_ctrl_c():
                    self.process.start()
        child.close()
        self.started = False  # READY received
        self.ticket: int | None = None
        self.task: Task | None = None
        self.deadline = float("inf")
        self.shown: dict[str, int] = {}  # log path -> bytes echoed so far
        self.capped: dict[str, int] = {}  # log path -> its size once cut (LOG_LIMIT and the note)

    def stop(self, grace: float = 0.0) -> None:
        """Ask the process to end, and kill it if it does not within seconds (a plugin stuck in
        a C call ignores SIGTERM). An idle worker whose pipe is closed ends by itself within
        `grace` seconds, running multiprocessing's finalizers: a worker terminated instead leaves
        the semaphores its libraries made (OpenVINO's, ONNX Runtime's) to the resource tracker,
        which warns about them when the command exits."""
        self.process.join(timeout=grace)
        self._signal_group(signal.SIGTERM)
        self.process.join(timeout=3)
        self._signal_group(signal.SIGKILL)  # what is left of it: the worker, if deaf, and the group's others
        self.process.join()

    def _signal_group(self, sig: signal.Signals) -> None:
        """`sig` to the worker's process group (its own, once started: see _worker_main), else to
        the worker alone."""
        if not self.started and self.process.exitcode is not None:
            return  # ended before it led a group of its own: its pid may be another process's now
        try:
            os.killpg(self.process.pid, sig) if self.started else os.kill(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):  # gone already
            pass

    def cap_logs(self) -> None:
        """Cut its task's logs back to LOG_LIMIT bytes and a note saying so: a plugin that prints
        without end (its stdout is the log) fills no disk. Called at every poll (about once a
        second) and after the task ends, so a log passes the limit by at most one second's
        writing, and ends within it."""
        for path in self.task.log_paths if self.task else ():
            keep = self.capped.get(path, LOG_LIMIT)
            with contextlib.suppress(OSError):
                if path is None or os.path.getsize(path) <= keep:
                    continue
                fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)  # the worker appends: writes go on at the new end
                try:
                    os.ftruncate(fd, keep)
                    if path not in self.capped:
                        note = (f"\n[bench: this log reached its limit of {LOG_LIMIT / 2**20:g} MiB here; what the run "
                                "wrote after that is left out]\n").encode()
                        os.pwrite(fd, note, keep)
                        self.capped[path] = keep + len(note)
                finally:
                    os.close(fd)
                # the console may have shown lines past `keep`: it shows the note next, whole
                self.shown[path] = min(self.shown.get(path, 0), keep)

    def echo_logs(self, echo: Callable[[str], None]) -> None:
        """Show the lines its task's runs have written to their logs since the last call."""
        for path in self.task.log_paths if self.task else ():
            # a regular file only, which cap_logs keeps near LOG_LIMIT: not a link planted there (one to
            # /dev/zero, read to its end, filled the driver's memory), nor a FIFO (waited on for ever)
            with contextlib.suppress(OSError, files.RefusedFile), os.fdopen(files.open_regular(path, os.O_RDONLY),
                                                                            "rb") as f:
                f.seek(self.shown.get(path, 0))
                text = f.read()
                complete = text[:text.rfind(b"\n") + 1]
                self.shown[path] = self.shown.get(path, 0) + len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    echo(line)


def _start_method(gpus: list[str] | None) -> Any:
    """How workers start. Never by fork: it would copy the driver's CUDA and thread state. On the
    CPU, forked from a fork server that has imported the libraries every worker needs (torch,
    torchvision; Dynamo, which torch's optimizers import when first built): a worker then starts
    in under a second rather than after seconds of imports (5-6 s, measured in development at
    e91fcf3), which a sweep pays again for each worker that dies. The harness itself is not
    preloaded: the server imports from its own import path (its working folder first), and the
    worker must run the driver's `bench`, which it imports from the driver's path in 0.3 s. The
    worker gets the driver's environment as it is at the worker's start, but a variable that a
    library reads when it loads (OMP_*, MKL_*) keeps the value it had when the server started:
    the first worker of a process. With GPUs, spawned afresh, so that nothing can have touched
    CUDA before the worker picks its device."""
    if gpus or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch._dynamo", "torchvision"])
    return ctx


def cores() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` narrows),
    what local workers divide between them (os.process_cpu_count from Python 3.13)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    """`jobs` worker processes on this machine. With GPUs, worker i uses GPU i mod G; on the CPU
    the cores are divided between the workers (`threads` each) so none is oversubscribed. A task
    with a time limit that it outlives is killed with its process and reported failed
    (TimedOut). With one job and `echo`, the running task's log is shown as it is written."""

    local = True

    def __init__(self, jobs: int, gpus: list[str] | None, threads: int | None = None,
                 echo: Callable[[str], None] | None = None):
        self.slots = jobs
        self.gpus = gpus
        per_gpu = -(-jobs // len(gpus)) if gpus else jobs
        self.threads = threads or max(1, cores() // jobs)
        where = f"{counted(len(gpus), 'GPU')}, up to {per_gpu} per GPU" if gpus else "the CPU"
        self.description = (f"{jobs} local worker process{'es' if jobs > 1 else ''} on {where}, "
                            f"{counted(self.threads, 'thread')} each")
        self.echo = echo if jobs == 1 else None
        self._ctx = _start_method(gpus)
        self._workers: list[_Worker | None] = [None] * jobs
        self._tickets = itertools.count()

    def _env(self, slot: int) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        return env

    def _start_worker(self, slot: int) -> _Worker:
        """A new worker for `slot`. A fork server that has just died (its workers' pipes closed)
        may not be reaped yet, and multiprocessing then takes it for alive and is refused by it
        (or the server dies during the handshake): retried for a few seconds, after which
        multiprocessing starts a new server."""
        for _ in range(50):
            try:
                return _Worker(self._ctx, self._env(slot))
            except (ConnectionError, EOFError):  # refused, or the server died during the handshake
                time.sleep(0.1)
        raise ExecutorError("cannot start a worker process: its fork server refuses connections")

    def submit(self, task: Task) -> int:
        slot = next(i for i, w in enumerate(self._workers) if w is None or w.ticket is None)
        worker = self._workers[slot]
        if worker is None or not worker.process.is_alive():
            worker = self._workers[slot] = self._start_worker(slot)
        worker.ticket, worker.task, worker.shown, worker.capped = next(self._tickets), task, {}, {}
        worker.deadline = time.monotonic() + task.timeout_s if task.timeout_s else float("inf")
        worker.conn.send(task)
        return worker.ticket

    def wait(self, timeout: float) -> list[tuple[int, list[Outcome]]]:
        end = time.monotonic() + timeout
        while True:  # a worker's READY wakes the wait, but is no task done
            done = self._wait_once(max(0.0, end - time.monotonic()))
            if done or time.monotonic() >= end:
                return done

    def _wait_once(self, timeout: float) -> list[tuple[int, list[Outcome]]]:
        busy = [w for w in self._workers if w is not None and w.ticket is not None]
        soonest = min((w.deadline for w in busy), default=float("inf"))
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                     max(0.0, min(timeout, soonest - time.monotonic())))
        done, unstarted = [], None
        for w in busy:
            w.cap_logs()  # a task's output ends before it reports, or with its process: the last cut is final
            if self.echo:
                w.echo_logs(self.echo)
            if w.conn in ready:
                try:
                    outcomes = w.conn.recv()
                    if outcomes == READY:
                        w.started = True
                        if not w.conn.poll():
                            continue  # its task's outcomes come later
                        outcomes = w.conn.recv()
                except (EOFError, OSError):
                    outcomes = None
                if outcomes is not None:
                    done.append((w.ticket, outcomes))
                    w.ticket = w.task = None
                    if self.gpus and any(o.result["status"] == Status.FAILED for o in outcomes):
                        self._retire(w)
                    continue
            if w.conn in ready or w.process.sentinel in ready:
                w.process.join()
                forked = self._ctx.get_start_method() == "forkserver"
                if not w.started and w.process.exitcode == 1:  # Python raised while it started, not a kill
                    unstarted = ExecutorError(
                        f"a worker process ended as it started (exit code {w.process.exitcode}), before it could "
                        "run anything; its error is above. A script "
                        "that calls bench.run must do so under `if __name__ == \"__main__\":`, since each worker "
                        "imports the script that started it")
                    continue  # it stays busy: the next wait raises, once what came back here is returned
                done.append((w.ticket, _failed(w.task, _death(w.process.exitcode, forked))))
                self._workers[self._workers.index(w)] = None
            elif time.monotonic() > w.deadline:
                w.stop()
                done.append((w.ticket, _failed(w.task, f"TimedOut: the run took longer than its limit of "
                                                       f"{w.task.timeout_s:.0f} s (--run-timeout); its worker "
                                                       "process was killed")))
                self._workers[self._workers.index(w)] = None
        if unstarted is not None and not done:
            raise unstarted
        return done

    def _retire(self, w: _Worker) -> None:
        """End an idle worker, so that its slot's next task starts a fresh one: after a failed run
        on a GPU, whose CUDA error (a device-side assert, an illegal access) may have broken the
        process's context for good. The worker checked that itself and ended after reporting, but
        the driver, handed the outcomes, had given it the next task by then, which was lost with it
        (`WorkerDied ... exited with code 0`). A fresh worker costs seconds; failed runs are few."""
        w.conn.close()  # an idle worker's cue to end
        w.stop(grace=5.0)
        self._workers[self._workers.index(w)] = None

    def close(self) -> None:
        """Stop every worker; a second call does nothing (the sweep closes its executor when it
        is interrupted, the command again as it ends)."""
        workers = [w for w in self._workers if w is not None]
        self._workers = [None] * self.slots  # (a stopped worker's pid may be another process's by then)
        for w in workers:
            w.conn.close()  # an idle worker's cue to end
        for w in workers:
            w.stop(grace=0.0 if w.ticket is not None else 5.0)  # a busy one is interrupted


def _death(exitcode: int | None, forked: bool) -> str:
    """Why a worker process ended, in words. A worker forked from a fork server reports its exit
    status through the server: 255 is what multiprocessing gives when the server died first (and
    took its workers with it)."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the system may have run out of memory, or someone killed it)" if name == "SIGKILL" else ""
        return f"WorkerDied: the worker process running this task was killed by {name}{hint}"
    if forked and exitcode == 255:
        return ("WorkerDied: the worker process running this task ended with the fork server that started it "
                "(someone may have killed the server, or the system ran out of memory), or exited with code 255")
    return f"WorkerDied: the worker process running this task exited with code {exitcode}"


# -- Ray ----------------------------------------------------------------------------------------


def _ray_perform(task: Task, seeds: list[int], *dense: Any) -> list[Outcome]:
    """A task on a Ray worker: each seed's dense weights arrive as a separate argument (Ray
    resolves object references passed as arguments, so every node gets them from the object
    store, not from a path). Ctrl-C is the driver's, as in a local worker: with SIGINT ignored
    meanwhile, a KeyboardInterrupt raised here is the plugin's own, its run's failure (under
    Ray's default handler it was taken for Ctrl-C and the task ended as a cancellation)."""
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # (Ray runs a task in its main thread)
    try:
        return perform(dataclasses.replace(task, dense=dict(zip(seeds, dense))))
    finally:
        signal.signal(signal.SIGINT, handler)


RAY_CANCEL_WAIT_S = 10.0  # how long closing waits for its cancelled tasks to end (on a reachable node: ms)


class RayExecutor:
    """Each task a Ray task on a cluster: `address` "auto" or HOST:PORT joins a running one,
    None starts a one-machine cluster. Ray retries a task whose process or node was lost, and
    reports it failed as a local worker's death (WorkerDied) once the retries are spent; one that
    outlives its time limit is cancelled (its process killed) and reported failed (TimedOut)."""

    local = False

    def __init__(self, address: str | None, gpus_per_run: float, cpus_per_run: float):
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
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
        # id(weights) -> (weights, object reference): one put per model; the weights are held, so
        # that their id cannot pass to another model while this executor lives
        self._dense_refs: dict[int, tuple[Any, Any]] = {}
        self._refs: dict[Any, tuple[int, Task, float]] = {}  # -> ticket, task, deadline
        self._tickets = itertools.count()

    def submit(self, task: Task) -> int:
        seeds, refs = [], []
        for seed, dense in task.dense.items():
            if not isinstance(dense, str) and id(dense) not in self._dense_refs:
                self._dense_refs[id(dense)] = (dense, self._ray.put(dense))
            seeds.append(seed)
            refs.append(dense if isinstance(dense, str) else self._dense_refs[id(dense)][1])
        ticket = next(self._tickets)
        deadline = time.monotonic() + task.timeout_s if task.timeout_s else float("inf")
        self._refs[self._remote.remote(dataclasses.replace(task, dense={}), seeds, *refs)] = (ticket, task, deadline)
        return ticket

    def wait(self, timeout: float) -> list[tuple[int, list[Outcome]]]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        done = []
        for ref in ready:
            ticket, task, _ = self._refs.pop(ref)
            try:
                done.append((ticket, self._ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - a crashed worker or lost node, after retries
                error = f"{type(e).__name__}: {first_line(str(e))}"
                if isinstance(e, self._lost()):  # as a local worker's death: counted, and a fused task's runs split
                    error = f"WorkerDied: Ray lost the task's process, after its retries ({error})"
                done.append((ticket, _failed(task, error)))
        for ref, (ticket, task, deadline) in list(self._refs.items()):
            if time.monotonic() > deadline:
                self._ray.cancel(ref, force=True)
                del self._refs[ref]
                done.append((ticket, _failed(task, f"TimedOut: the run took longer than its limit of "
                                                   f"{task.timeout_s:.0f} s (--run-timeout); Ray killed its task")))
        return done

    def _lost(self) -> tuple[type[BaseException], ...]:
        """Ray's errors for a task whose process died (a crash, os._exit, the OOM killer) or whose
        node did: what a local worker's death is (bench.sweep counts it in `worker_deaths`, and
        runs a fused task's runs again alone). Those this Ray version has."""
        names = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError")
        return tuple(getattr(self._ray.exceptions, n) for n in names if hasattr(self._ray.exceptions, n))

    def close(self) -> None:
        """Cancel the tasks in flight, then leave the cluster; a second call does nothing (the
        sweep closes its executor when it is interrupted, the command again as it ends). Leaving a
        joined cluster does not end this driver's tasks there: Ray ends them once it notices the
        driver gone, after shutdown returned. So each is force-cancelled (its worker process
        killed, as for a run out of time) and awaited, and none still runs, writing its log or
        holding its GPU, once the sweep releases its claim. One whose node cannot be reached is
        left to Ray after RAY_CANCEL_WAIT_S."""
        refs, self._refs = list(self._refs), {}
        if not self._ray.is_initialized():  # shut down already, its tasks with it; a Ray call would start a new Ray
            return
        cancelled = []
        for ref in refs:
            try:
                self._ray.cancel(ref, force=True)
            except TypeError:  # Ray's refusal of any cancel, e.g. a task of an earlier session of this process (ended)
                continue
            cancelled.append(ref)
        if cancelled:
            self._ray.wait(cancelled, num_returns=len(cancelled), timeout=RAY_CANCEL_WAIT_S)
        self._ray.shutdown()
