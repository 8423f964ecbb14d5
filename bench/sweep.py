"""`bench run`'s sweep: the loop that executes the runs the driver (bench.runner) planned.

It is a module of its own so that the driver reads as its plan (what to run, what is finished
before, what to publish once the sweep ends) and this module holds what happens while runs
execute. `Sweep` trains each seed's dense model once as a stage that the seed's method runs wait
for, and hands every piece of work to an executor as a `Task`: in this process, in local worker
processes, or on Ray nodes (bench.executors). Wherever it runs, a task does the same thing
(bench.worker) and returns an `Outcome`; the sweep alone turns it into a record, stamped with
the provenance the driver checked (the commit, the executor, the data source), and writes run
records, their logs and the dense-model cache, so workers need no shared filesystem. Which runs
make a task is `fill_slots`'s rule, which `sweep_seconds` replays on a clock for the dry run's
estimate.

A run that fails is a record with its status and error, and the other runs go on; the runs of a
fused task that lost its worker, or whose fused training met a fault of the code they share, run
again alone, and the time limits and --max-minutes govern every task. It owns a planned run as the
driver tracks it (`Run`), what makes a run finished (`finished`), and the watch on finished
records that something else changes meanwhile (`Watched`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, TypeVar

from tqdm import tqdm

from bench import dense_stage, files, layout, provenance, records, registry
from bench.records import Record, Status
from bench.chain import links
from bench.context import DenseWeights
from bench.dense_stage import Dense
from bench.errors import DenseMismatch, counted, first_line, printable
from bench.executors import LOG_LIMIT, Executor
from bench.locks import Claim
from bench.plan import RunSpec, broken_link, run_key, setting_label
from bench.suite import Suite
from bench.fused import FuseLayout
from bench.worker import Outcome, Task


@dataclass
class Run:
    """A planned run as the driver tracks it."""

    spec: RunSpec
    config: dict[str, Any]
    digest: str
    path: Path
    claim: Claim
    record: dict[str, Any] | None = None  # its latest record (a failed one included)
    label: str = ""
    done: bool = False  # recorded by this command (or found finished by another)
    started_from: DenseWeights | str | None = None  # the dense model it was handed, when it started
    alone: bool = False  # its fused task lost its worker, or its fused training a step: it runs again in a task of its own
    keep_log: bool = False  # its log holds its fused attempt's fault, which the retry's lines follow


MAX_WORKER_DEATHS = 2  # a run that killed its worker this often is not retried without --force


def finished(record: Record | None) -> bool:
    """A run with an ok or skipped record is done, and so is one that killed its worker process
    MAX_WORKER_DEATHS times running (a crash that would recur on every rerun); other failed runs
    are retried on the next command."""
    return record is not None and (record.get("status") in (Status.OK, Status.SKIPPED)
                                   or record.get("worker_deaths", 0) >= MAX_WORKER_DEATHS)


def record_of(path: Path, config: dict[str, Any], problems: list[str] | None = None) -> Record | None:
    """The usable record at `path` (records.read_record) where it is the record of the run of
    `config`, else None (with a line in `problems`). A record copied over another run's file, or
    one of another suite, is left out by every reader (records.named_records); taken as this run's,
    it kept the run from ever running, and its row lost the seed for good."""
    record = records.read_record(path, problems)
    if record is None or run_key(record["config"]) == run_key(config):
        return record
    c = record["config"]
    if broken_link(config["method"]) is not None and (c["suite"], c["method"], c["seed"]) == (
            config["suite"], config["method"], config["seed"]):
        # A plugin that fails to import has no parameters to plan with, so its run is planned as
        # its defaults' and named as their record, whose identity cannot be checked without the
        # plugin: taken for a copy, the finished record was run again, and its failure written over it.
        return record
    if problems is not None:
        problems.append(printable(f"{path}: the record of another run ({c['suite'][:40]} {c['method']} "
                                  f"{setting_label(c['params'])[:80]} seed {c['seed']}), a copy?"))
    return None


class Watched:
    """The finished records of a suite as this command last saw or wrote them (size, change
    time, inode). A plugin is code the user runs: the harness cannot stop it writing into the
    results folder, but one that rewrites or removes a finished record is named in a warning,
    with the runs in flight when it happened (as is another command run with --force)."""

    def __init__(self, paths: set[Path]):
        self.seen = {path: self._stat(path) for path in paths}

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.lstat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns, st.st_ino

    def wrote(self, path: Path, record: Record) -> None:
        """This command wrote `path`: watched from now on if the record is finished."""
        if finished(record):
            self.seen[path] = self._stat(path)
        else:
            self.seen.pop(path, None)

    def changed(self) -> list[Path]:
        """The watched records that changed since the last look (each named once)."""
        out = []
        for path, before in self.seen.items():
            if (now := self._stat(path)) != before:
                out.append(path)
                self.seen[path] = now
        return out


@dataclass
class Sweep:
    """The sweep as it runs. `run` hands tasks to the executor as slots free up, dense models
    first, then the runs whose seed's dense model is ready, up to `fuse` in one task; it records
    each result as it comes back, and names a finished record that something else changed
    meanwhile (`watched`). Results that come back once the code of a checkout in `code` (folder,
    the clean commit the records name) has changed stop the sweep unrecorded: they may have run
    the change. With `here` (--refresh), a cached dense model that another commit or device
    trained is trained again."""

    suite: Suite
    queue: list[Run]  # the runs not started yet, in plan order
    dense: dict[int, Dense]  # per seed
    executor: Executor
    watched: Watched
    log: Callable[[str], None]
    source: str
    data_dir: Path | None
    device: str
    compile: str | None
    fuse: int
    fuse_layout: FuseLayout
    limit: Callable[[RunSpec], float]  # a run's time limit in seconds (bench.runner._time_limits)
    fusion_key: Callable[[RunSpec], tuple[Hashable, Hashable]]  # (class, method): bench.plan.fusion_key
    deadline: float | None  # time.monotonic() after which no task starts (--max-minutes)
    here: provenance.Here | None
    code: list[tuple[Path, str]]
    standard: bool
    stamp: dict[str, Any]
    plugin_commits: dict[str, str | None]

    def __post_init__(self) -> None:
        self.in_flight: dict[int, list[Run] | Dense] = {}  # by ticket: a task's runs, or the dense model it trains
        self.counts = {Status.OK: 0, Status.FAILED: 0, Status.SKIPPED: 0}
        self._kinds: dict[Path, Hashable] = {}  # each queued run's fusion_key, as first asked
        self.bar = tqdm(total=len(self.queue), unit="run", dynamic_ncols=True, disable=None, leave=False)

    def run(self) -> None:
        waited_for: list[str] = []  # what another command held at the last poll, as last said
        while self.queue or self.in_flight:
            held: dict[str, Claim] = {}  # what this command would do next, held by another command
            progressed = self._start_dense(held)
            progressed = self._start_runs(held) or progressed
            if self._out_of_time() and not self.in_flight:
                return
            if not self.in_flight:
                if not progressed:  # every remaining run is claimed by another command: poll
                    if held and sorted(held) != waited_for:
                        waited_for = sorted(held)
                        self.log(_waiting(held))
                    time.sleep(1.0)
                continue
            waited_for = []
            self._collect()

    def _out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _start_dense(self, held: dict[str, Claim]) -> bool:
        """Load or train (once, even across commands) the dense models the queued runs need."""
        progressed = False
        for d in self.dense.values():
            if d.weights is not None or d.busy or not any(r.spec.seed == d.seed for r in self.queue):
                continue
            if d.path.exists():
                d.weights = dense_stage.load(d, self.log, self.here)
                progressed = True
            if d.weights is None and len(self.in_flight) < self.executor.slots and not self._out_of_time():
                if not d.claim.acquire():
                    held[f"dense model, seed {d.seed}"] = d.claim
                    continue
                if d.path.exists():  # another command finished it while we looked
                    d.weights = dense_stage.load(d, self.log, self.here)
                    d.claim.release()
                else:
                    self.log(f"dense model, seed {d.seed}: training ({counted(self.suite.training.epochs, 'epoch')})")
                    ticket = self.executor.submit(self._task("dense", [RunSpec("dense", {}, d.seed)], [d.path], {},
                                                             checkpoint=d.path.with_suffix(".ckpt")))
                    self.in_flight[ticket], d.busy = d, True
                progressed = True
        return progressed

    def _start_runs(self, held: dict[str, Claim]) -> bool:
        """Start the runs whose dense model is ready, in plan order, until every slot has a task
        (`fill_slots`): each alone (a run of a lost fused task too), or up to `fuse` as one task
        of runs alike (`fusion_key`)."""
        queued = len(self.queue)
        fill_slots(self.queue, self.executor.slots - len(self.in_flight), self.fuse,
                   ready=lambda r: self.dense[r.spec.seed].weights is not None,
                   kind=lambda r: None if self.fuse == 1 or r.alone else self._kind(r),
                   take=lambda r: self._take(r, held), submit=self._submit, stop=self._out_of_time)
        return len(self.queue) < queued

    def _kind(self, r: Run) -> Hashable:
        """The run's fusion_key, asked once (it reads the suite's records)."""
        if r.path not in self._kinds:
            self._kinds[r.path] = self.fusion_key(r.spec)
        return self._kinds[r.path]

    def _take(self, r: Run, held: dict[str, Claim]) -> bool:
        """Claim a queued run and take it off the queue to start it; False where another command
        holds it (named in `held`), or ran it meanwhile (its record stands)."""
        if not r.claim.acquire():
            held[r.label] = r.claim  # another command is running it
            return False
        self.queue.remove(r)
        latest = record_of(r.path, r.config)
        if latest is not None and latest != r.record:
            # Another command ran it meanwhile: its record stands, a failed one too (running it
            # again here would do the work twice, and count a second worker death as a first);
            # the next command retries what is not finished.
            r.record, r.done = latest, True
            r.claim.release()
            self.bar.update()
            why = first_line(latest.get("error"))
            self.log(f"{r.label}: finished by another command" if finished(latest) else
                     printable(f"{r.label}: {latest['status']} in another command meanwhile"
                               f"{f' ({why})' if why else ''}; the next command retries it"))
            return False
        self.log(r.label)
        r.started_from = self.dense[r.spec.seed].weights
        return True

    def _submit(self, group: list[Run]) -> None:
        weights = {r.spec.seed: self.dense[r.spec.seed].weights for r in group}
        kept = {r.path for r in group if r.keep_log}
        self.in_flight[self.executor.submit(self._task("runs", [r.spec for r in group], [r.path for r in group],
                                                       weights, kept=kept))] = group

    def _task(self, kind: str, specs: list[RunSpec], made: list[Path], weights: dict[int, DenseWeights | str],
              checkpoint: Path | None = None, kept: set[Path] = frozenset()) -> Task:
        log_paths = [layout.log_path(path) if self.executor.local else None for path in made]
        for path, artifact in zip(log_paths, made):
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                if artifact not in kept:
                    path.unlink(missing_ok=True)  # a rerun's log replaces the last one
        return Task(kind, self.suite, tuple(specs), self.source, str(self.data_dir) if self.data_dir else None,
                    self.device, self.compile, self.executor.threads, tuple(str(p) if p else None for p in log_paths),
                    weights, str(checkpoint) if checkpoint and self.executor.local else None,
                    fuse_layout=self.fuse_layout,
                    timeout_s=sum(self.limit(spec) for spec in specs))

    def _collect(self) -> None:
        """Wait for tasks to come back, and record what they did. The first write that failed (a
        full disk) stops the sweep, once the other results that came back with it (a fused
        group's, other jobs') are written where they still fit."""
        running = [r.label for items in self.in_flight.values() if isinstance(items, list) for r in items]
        unwritten: OSError | None = None
        came_back = self.executor.wait(timeout=1.0)
        if came_back:
            provenance.refuse_changed_code(self.code, sum(len(outcomes) for _, outcomes in came_back))
        for ticket, outcomes in came_back:
            items = self.in_flight.pop(ticket)
            if isinstance(items, Dense):
                try:
                    dense_stage.trained(items, outcomes[0], self.log, self.stamp["git_commit"])
                except OSError as e:
                    unwritten = unwritten or e
                continue
            if _task_lost(outcomes):
                self._again_alone(items, outcomes[0].result["error"])
                continue
            faulted = [(item, o) for item, o in zip(items, outcomes) if o.fused_fault is not None]
            if faulted:
                try:
                    self._unfused(faulted)
                except OSError as e:
                    unwritten = unwritten or e
            for item, outcome in zip(items, outcomes):
                if outcome.fused_fault is not None:
                    continue
                record = self._record(item, outcome)
                try:
                    record = _write(item.path, record)
                    self.watched.wrote(item.path, record)
                    if outcome.log is not None:
                        earlier = _read_log(item.path, self.log) if item.keep_log else ""
                        files.write_text_atomic(layout.log_path(item.path), earlier + outcome.log + "\n")
                    _log_error(layout.log_path(item.path), record, self.log)
                except OSError as e:
                    unwritten = unwritten or e
                    continue
                self._recorded(item, record)
        if unwritten is not None:
            raise unwritten
        for path in self.watched.changed():
            self.log(f"warning: the finished record {path} was {'changed' if path.exists() else 'removed'} during "
                     f"this command, not by it, while {', '.join(running) or 'no method run'} ran: a plugin writing "
                     "into the results folder, or another command with --force or --refresh")

    def _again_alone(self, runs: list[Run], error: str) -> None:
        """The runs of a fused task whose worker died or ran out of time go back to the front of
        the queue, each to run in a task of its own: one run that ended the process (os._exit, a
        crash) or hung took the others with it, and, fused again on the retry, failed them twice
        and so for good, while the run to blame was never named."""
        self.log(f"{counted(len(runs), 'run')} trained as one task lost their worker ({first_line(error)}): each "
                 "runs again alone, so that only the run that caused it fails")
        self._requeue_alone(runs)

    def _requeue_alone(self, runs: list[Run]) -> None:
        """`runs` back at the front of the queue, in order, each to run in a task of its own."""
        for r in runs:
            r.alone = True
            r.claim.release()  # taken again as it starts, as every run's claim is
        self.queue[:0] = runs

    def _unfused(self, faulted: list[tuple[Run, Outcome]]) -> None:
        """Runs whose fused training met a fault of the code the runs share (bench.fused.
        FusedStepError) go back to the front of the queue, each to run alone in a task of its own,
        its log keeping the fault's traceback; and this command fuses no more runs. The fault may be
        fusion's own on this device (a kernel that refuses the stacked pass), which every fused
        group would meet after spending its training up to it; the time limits and --max-minutes
        govern each retry, and a retry not started is left for the next command, as any run is."""
        if self.fuse > 1:
            self.log(f"{first_line(faulted[0][1].fused_fault)}; this command fuses no more runs (the next "
                     "command fuses again)")
            self.fuse = 1
        for r, outcome in faulted:
            self.log(f"{r.label}: its fused training failed in code the runs share: it runs again alone "
                     f"(log: {layout.log_path(r.path)})")
            if outcome.log is not None:  # the executor returned the log rather than writing it
                files.write_text_atomic(layout.log_path(r.path), outcome.log + "\n")
            r.keep_log = True
        self._requeue_alone([r for r, _ in faulted])

    def _record(self, run: Run, outcome: Outcome) -> Record:
        """A run's record: its identity, what the worker reported, the method's family and
        description (so that a table needs no plugin source), and the provenance the driver
        stamps (an editable plugin's commit in `method_commit`). A run whose worker process died a
        second time running says so (`worker_deaths`), and is then no longer retried (see `finished`)."""
        origins = {link: registry.SOURCES[link].origin for link in links(run.spec.method) if link in registry.SOURCES}
        commits = {link: self.plugin_commits[link] for link in links(run.spec.method) if self.plugin_commits.get(link)}
        classes = [registry.METHODS[link] for link in links(run.spec.method) if link in registry.METHODS]
        info = ({"family": classes[0].family if len(links(run.spec.method)) == 1 else "combined",
                 "description": "; ".join(c.description() for c in classes)} if classes else {})
        record = {"schema": records.SCHEMA_VERSION, "config": run.config, "config_hash": run.digest, "method_info": info,
                  "standard_budget": self.standard, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "env": {**outcome.env, "data_source": self.source, "compile": self.compile or False,
                          "executor": self.executor.description, "method_origin": origins, **self.stamp,
                          **({"method_commit": commits} if commits else {}),
                          **({"fuse_layout": self.fuse_layout} if self.fuse_layout != "model"
                             and (outcome.result.get("metrics") or {}).get("fused_with", 1) > 1 else {})},
                  **outcome.result}
        if (record["error"] or "").startswith("WorkerDied"):
            deaths = (run.record or {}).get("worker_deaths", 0) + 1
            record["worker_deaths"] = deaths
            if deaths >= MAX_WORKER_DEATHS:
                record["error"] += (f" ({deaths} times running: not retried any more; --force retries it)")
        return record

    def _recorded(self, run: Run, record: Record) -> None:
        """Count and show a run whose record is written; drop a dense model it found unfit."""
        run.claim.release()
        run.record, run.done = record, True
        self.counts[record["status"] if record["status"] in self.counts else Status.FAILED] += 1
        self.bar.set_postfix(self.counts, refresh=False)
        self.bar.update()
        self.log(f"{run.label}{_summary(record)}")
        d = self.dense[run.spec.seed]
        # (only the model it was handed goes: with --jobs 2, a late run that started from
        # the bad file returns after the retrained model replaced it)
        if (record["error"] or "").startswith(DenseMismatch.__name__) and isinstance(d.weights, DenseWeights) \
                and d.weights is run.started_from:
            self.log(f"dense model, seed {d.seed}: the cache file {d.path} does not fit the suite's model: removed, "
                     "to be trained again (the runs that failed on it are retried by the next command)")
            d.path.unlink(missing_ok=True)
            d.weights = None


_Run = TypeVar("_Run")  # a Run to the sweep, an index into its runs to sweep_seconds


def fill_slots(queue: list[_Run], free: int, fuse: int, ready: Callable[[_Run], bool],
               kind: Callable[[_Run], tuple[Hashable, Hashable] | None], take: Callable[[_Run], bool],
               submit: Callable[[list[_Run]], None], stop: Callable[[], bool] = lambda: False) -> None:
    """Hand the `ready` runs of `queue` (in plan order) to `free` slots as tasks: `Sweep`'s
    scheduling, and the dry run's model of it (`sweep_seconds`). A run whose `kind` is None runs
    alone; others join a group of their class (`kind`: (class, method), bench.plan.fusion_key) of
    up to `fuse`: a group opens with the first run in the queue, the runs of its method join it,
    from any seed whose dense model is ready, and then, where it is not full, other runs of its
    class, so that a fused task's runs train together rather than one after another. An open
    group holds a slot. `take` claims a run and takes it off the queue (False: another command
    holds it); `stop` (out of time) starts nothing more."""
    groups: dict[Hashable, list[_Run]] = {}  # open, by class: each takes a slot once submitted
    opened_by: dict[Hashable, Hashable] = {}  # each open group's first run's kind
    for top_up in (False, True) if fuse > 1 else (False,):
        for r in list(queue):
            if not groups and free <= 0 or stop():
                break
            if not ready(r):
                continue  # waiting for its dense model
            k = kind(r)
            if k is not None and k[0] in groups:
                if not top_up and k != opened_by[k[0]]:
                    continue  # its method's runs first
            elif free - len(groups) <= 0:
                continue  # no group to join, and no free slot for one
            if not take(r):
                continue
            if k is None:
                submit([r])
                free -= 1
                continue
            opened_by.setdefault(k[0], k)
            group = groups.setdefault(k[0], [])
            group.append(r)
            if len(group) == fuse:
                submit(groups.pop(k[0]))
                del opened_by[k[0]]
                free -= 1
    for group in groups.values():
        submit(group)


def sweep_seconds(stage: dict[int, float], runs: list[tuple[int, float, tuple[Hashable, Hashable]]],
                  slots: int, fuse: int) -> float:
    """The wall time of a sweep, scheduled as `Sweep` schedules it (`fill_slots`), each task
    taking the time given: `stage` holds the seconds of each seed's dense model to train (in the
    order the sweep starts them), which start first as slots free; then the runs (seed, seconds,
    fusion_key), in plan order, once their seed's dense model is done. A task takes the sum of
    its runs' seconds: a fused run's record holds its share of its group's time, so the shares
    add up to the group's. The dry run's estimate (bench.runner), so that a plan with --jobs or
    --fuse is priced as it will run, not as one job's sum."""
    now, training, queue = 0.0, list(stage), list(range(len(runs)))
    ends: list[tuple[float, list[int] | int]] = []  # (when, the task's runs or the seed whose dense model it trains)
    waiting = list(stage)  # dense models not started

    def take(i: int) -> bool:  # no other command holds a run here
        queue.remove(i)
        return True

    while queue or ends:
        while waiting and len(ends) < slots:
            ends.append((now + stage[waiting[0]], waiting.pop(0)))
        fill_slots(queue, slots - len(ends), fuse, ready=lambda i: runs[i][0] not in training,
                   kind=lambda i: runs[i][2] if fuse > 1 else None, take=take,
                   submit=lambda task: ends.append((now + sum(runs[i][1] for i in task), task)))
        now = min(when for when, _ in ends)
        for end in [e for e in ends if e[0] == now]:
            ends.remove(end)
            if isinstance(end[1], int):
                training.remove(end[1])
    return now


def _waiting(held: dict[str, Claim]) -> str:
    """What this command waits for, and who holds it: a sweep whose remaining work another
    command holds (training a dense model can take hours) says why it seems to do nothing."""
    pids = sorted({str(p) for p in (c.holder() for c in held.values()) if p is not None})
    who = f"another command (pid {', '.join(pids)})" if pids else "another command"
    names = list(held)
    shown = "; ".join(names[:3]) + (f"; and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"waiting for {who} on this results folder, which holds what this command would do next: {shown} "
            "(it goes on when that command finishes or stops)")


def _write(path: Path, record: Record) -> Record:
    """Write a run's record; the record written. A result that JSON cannot hold, or one larger
    than readers accept, fails its run, not the sweep: the harness's own fields are written,
    with the reason, and whatever the result held is left out."""
    try:
        files.write_json_atomic(path, record, limit=records.MAX_RECORD_BYTES)
    except (TypeError, ValueError) as e:
        record = {k: record[k] for k in (*records.REQUIRED_KEYS, "config_hash", "finished_at", "run_time_s")
                  if k in record}
        record.update(status=Status.FAILED, metrics={}, figures={},
                      error=f"the run's result cannot be written as JSON: {type(e).__name__}: {e}")
        files.write_json_atomic(path, record)
    return record


def _read_log(artifact: Path, warn: Callable[[str], None]) -> str:
    """The text of a run's log so far (none: ""), which a returned log is to follow. Read as a
    regular file, its first LOG_LIMIT bytes (what a log keeps: a log the executor capped holds
    them and its note, and was refused whole, losing the fused fault's traceback kept for it): one
    swapped for a link to /dev/zero filled the driver's memory, one to a private file was copied
    into the results folder. Anything else is left out, with a warning and a line saying so in
    its place."""
    path = layout.log_path(artifact)
    try:
        data = files.read_regular_file(path, LOG_LIMIT + 1, cut=True)
        text = data[:LOG_LIMIT].decode(errors="replace")
        return text if len(data) <= LOG_LIMIT else (
            text + f"\n[bench: the log of this run's earlier attempt is cut at {LOG_LIMIT / 2**20:g} MiB here]\n")
    except FileNotFoundError:
        return ""
    except files.RefusedFile as e:
        warn(f"warning: {path}: refused: {e}; the run's log replaces it, without its earlier attempt's lines")
        return f"[bench: the log of this run's earlier attempt is left out: refused: {e}]\n"


def _task_lost(outcomes: list[Outcome]) -> bool:
    """Whether a task of several runs came back as its worker's death or time limit: one failure
    for every run, which may be one run's doing (bench.executors' WorkerDied and TimedOut)."""
    return len(outcomes) > 1 and all((o.result["error"] or "").startswith(("WorkerDied", "TimedOut"))
                                     for o in outcomes)


def _log_error(path: Path, record: Record, warn: Callable[[str], None]) -> None:
    """End the log of a run that did not finish (failed, diverged, invalid) with its error and
    traceback. The console shows the error's first line and names this log, which otherwise
    holds only what the run printed: the traceback a plugin's author needs was in the record's
    JSON alone, and the log named for it was empty."""
    if record["status"] in (Status.OK, Status.SKIPPED) or not record.get("error"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"{layout.LOG_ERROR_MARK} {record['status']}]\n{printable(str(record['error'])).rstrip()}\n"
    try:  # not through a link planted in its place, nor into a FIFO no one reads
        fd = files.open_regular(path, files.APPEND)
    except files.RefusedFile as e:
        warn(f"warning: {path}: refused: {e}; the run's error is in its record only")
        return
    with files.naming_file(path), os.fdopen(fd, "w", encoding="utf-8") as log:
        log.write(text)


def _summary(record: dict[str, Any]) -> str:
    """A finished run in one line: what it scored and how small it got. Latency is left to the
    leaderboard, beside its spread: one run's figure on a busy machine is no headline."""
    if record["status"] != Status.OK:
        return f" -> {record['status'].upper()}: {first_line(record['error'])}"
    m = record["metrics"]
    c = m["compression"]
    ratio = ("the dense model's size" if c == 1 else f"{c:.1f}x smaller" if c > 1
             else f"{1 / c:.1f}x larger")  # "1.0x smaller" read as a bug on the dense row
    asked = record["config"]["params"].get("sparsity")
    # No committed method's record measures under half the sparsity it was given: a plugin's that
    # does has most likely let fine-tuning regrow the weights it pruned. The whole model's sparsity
    # or that of the layers it may prune: under a suite's dense_layers the first is rightly far
    # lower, and a model whose channels were removed has no zeros among its weights.
    reached = max(m["sparsity"], m.get("weight_sparsity") or 0.0)
    regrown = (f"  (asked for sparsity {100 * asked:g}%: did its pruned weights grow back? ctx.finetune(model, "
               "hold_zeros=True) keeps them at zero)"
               if isinstance(asked, (int, float)) and reached < asked / 2 else "")
    return (f" -> accuracy {100 * m['accuracy']:.2f}%  sparsity {100 * m['sparsity']:.1f}%  "
            f"size {m['size_bytes'] / 1024:.1f} KiB ({ratio})  epochs {m['train_epochs']}  "
            f"({record['run_time_s']:.1f}s){regrown}")
