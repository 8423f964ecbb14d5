"""`bench run`'s driver: plan -> dense stage -> tasks -> records.

`run_suite` plans the runs, trains each seed's dense model once as a stage that the seed's method
runs wait for, and hands every piece of work to an executor as a `Task`: in this process, in local
worker processes, or on Ray nodes (bench.executors). Wherever it runs, a task does the same thing
(bench.worker) and returns an `Outcome`; the driver alone stamps provenance (the commit it
checked, the executor, the data source) and writes run records and the dense-model cache, so
workers need no shared filesystem. The leaderboard is the caller's to publish (bench.cli_run).

A run that fails is a record with its status and error, and the other runs go on. Finished
records are skipped on a rerun unless forced, so an interrupted sweep resumes where it stopped.
A claim per run keeps two commands on one results folder from executing the same run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from bench import dense_stage, files, layout, provenance, records, registry
from bench.records import Record, Status
from bench.chain import links
from bench.context import DenseWeights
from bench.dense_stage import Dense
from bench.data import default_data_dir, fetch, is_here
from bench.errors import DenseMismatch, ResultsFolderError, counted, duration, first_line, printable
from bench.executors import Executor
from bench.locks import Claim
from bench.plan import (Order, RunSpec, broken_link, dense_epochs, expected_epochs, plan, run_key, setting_label,
                        with_recorded)
from bench.suite import Suite
from bench.fused import FuseLayout
from bench.worker import Outcome, Task


@dataclass
class _Run:
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


def _by_identity(existing: list[Record]) -> dict[str, str]:
    """The `config_hash` (the name) of the suite's records by the hash of their identity
    (bench.plan.identity), for runs whose record has another name: one written before a
    defaulted parameter or budget field was added, or before identities left defaults out,
    whose name hashes every value it had then. A record keeps its name when it is run again."""
    return {run_key(record["config"]): record["config_hash"] for record in existing
            if re.fullmatch(r"[0-9a-f]{16}", str(record.get("config_hash")))}  # a name, never a path


def _device_name(device: str) -> str | None:
    """The exact model of the device runs go to (provenance.device_name), what records made here
    name; None for a GPU sweep planned (--dry-run) where torch sees no GPU."""
    return provenance.device_name(torch.device(device)) if device != "cuda" or torch.cuda.is_available() else None


def finished(record: Record | None) -> bool:
    """A run with an ok or skipped record is done, and so is one that killed its worker process
    MAX_WORKER_DEATHS times running (a crash that would recur on every rerun); other failed runs
    are retried on the next command."""
    return record is not None and (record.get("status") in (Status.OK, Status.SKIPPED)
                                   or record.get("worker_deaths", 0) >= MAX_WORKER_DEATHS)


def _other_provider(record: Record) -> str | None:
    """Why a finished record's method is another's now: a link of it that the record says came
    from one provider (`built in`, or a distribution) and another registers today. A plugin that
    $BENCH_ALLOW_SHADOWING lets replace a built-in met the built-in's records of its settings,
    ran none of them, and its rows were the built-in's. (Another version of one distribution is
    the same provider: its records stand, as a commit's do, until --refresh or --force.) Only the
    origins of the record's own links count, and an origin is quoted cut short: the record is a
    file anyone can edit, and its text reaches the console."""
    def provider(origin: str) -> str:
        return origin if origin == "built in" else origin.split(" ")[0]  # a distribution: `name version`

    for link in links(record["config"]["method"]):
        origin, now = record["env"].get("method_origin", {}).get(link), registry.SOURCES.get(link)
        if origin is not None and now is not None and provider(origin) != provider(now.origin):
            return f"its record's {link} came from {origin[:80]}, and {now.origin} registers {link} now"
    return None


def run_suite(suite: Suite, names: list[str], *, seeds: list[int], results_dir: Path,
              data_dir: Path | None, device: str, overrides: dict[str, dict[str, Any]],
              executor: Executor, budget_overrides: dict[str, Any] | None = None,
              force: bool = False, compile: str | None = None, order: Order = "depth",
              max_minutes: float | None = None, dry_run: bool = False, allow_dirty: bool = False,
              refresh: provenance.Refresh | None = None, recorded: bool = False, fuse: int = 1,
              fuse_layout: FuseLayout = "model", run_timeout: float | None = None, publish: Callable[[], Any] | None = None,
              log: Callable[[str], None] = tqdm.write) -> list[Record]:
    """Plan, train the dense stage, run and record; returns the records of this command's runs
    (those finished before included). `publish()` is called once the sweep has started and ended,
    also when it was interrupted, so the caller's tables show every finished run (bench.cli_run
    rebuilds the leaderboard there).

    `budget_overrides` (epochs, finetune_epochs, limit_train, limit_test, precision) make the runs
    non-standard: recorded, but kept out of the standard leaderboard. `max_minutes`: no run
    starts after that much wall time; the runs in flight finish. `dry_run` prints the plan and
    its expected cost, and trains and writes nothing. Standard-budget records are refused from a
    checkout with uncommitted changes (every leaderboard row must name the code that made it)
    unless `allow_dirty`, which the records then say. `refresh` ("commit") reruns finished runs
    whose record another commit or another device made ("device": another device, or code no
    checkout vouched for; see provenance.Here): regenerating a leaderboard from one commit on one
    machine takes many commands, and unlike `force` it resumes where the last one stopped.
    `recorded` adds every setting of the methods that the suite's records at this budget hold
    (rows made with `--set`), so that a refresh reruns every record, not only the sweep.
    `fuse` hands up to that many runs to a worker as one task, whose compatible training calls
    train as one model (bench.fused); 1 trains every run alone; `fuse_layout` "nchw" stacks their
    weights and images NCHW rather than in the models' layout. `run_timeout` (minutes) is each
    run's time limit; None derives one from the suite's records on this device (`time_limit`).
    """
    standard_budget = suite.training
    suite = suite.with_budget(**(budget_overrides or {}))
    standard = suite.training == standard_budget
    specs = plan(suite, names, overrides, seeds, order)
    named = records.named_records(results_dir, suite.name)
    existing = [record for _, record in named]
    if recorded:
        specs = with_recorded(specs, existing, suite, names, seeds, order)
    source = fetch(suite.data, data_dir, download=not dry_run)
    suite_dir, claims = layout.suite_dir(results_dir, suite.name), layout.claims_dir(results_dir, suite.name)
    layout.refuse_links(layout.written_by_a_run(results_dir, suite.name))
    runs = _tracked(specs, suite, results_dir, source, existing, log)
    commit = provenance.git_commit()
    plugin_commits = provenance.plugin_commits(names)
    here = provenance.Here(commit, _device_name(device), refresh, plugin_commits) if refresh else None
    replaced = {r.path: why for r in runs if finished(r.record) and (why := _other_provider(r.record))}
    for r in runs:
        if r.path in replaced:
            log(printable(f"{r.label}: {replaced[r.path]}: to run again"))
    todo = [r for r in runs if force or not finished(r.record) or r.path in replaced
            or (here and not here.made(r.record["env"]))]
    dense = _dense_models(todo, existing, suite, results_dir, source)
    refusal = provenance.uncommitted(commit, plugin_commits) if standard and todo and not allow_dirty else None
    if dry_run:
        _print_plan(suite, runs, todo, dense, source, data_dir, device, existing, here,
                    layout.runs_dir(results_dir, suite.name), log)
        if refusal:  # the plan's cost means nothing if the command itself stops at once
            log(f"note: without --dry-run this command is refused: {refusal}")
        return []
    if refusal:
        raise provenance.ProvenanceError(refusal)
    log(f"suite {suite.name}: {counted(len(runs), 'run')} ({', '.join(names)}; seeds {seeds}), "
        f"{len(todo)} to run, {len(runs) - len(todo)} finished before; data {source}; {executor.description}")
    _check_writable(suite_dir)
    deadline = time.monotonic() + 60 * max_minutes if max_minutes is not None else None
    limit = _time_limits(suite, device, existing, run_timeout)
    code = [] if allow_dirty else provenance.watched_code(commit, plugin_commits)
    failure: BaseException | None = None
    try:
        watched = _Watched({layout.runs_dir(results_dir, suite.name) / f"{stem}.json" for stem, r in named if finished(r)})
        _Sweep(suite, list(todo), dense, executor, watched, log, source=source, data_dir=data_dir, device=device,
               compile=compile, fuse=fuse, fuse_layout=fuse_layout, limit=limit, deadline=deadline, here=here, code=code, standard=standard,
               stamp={"git_commit": commit, **({"allow_dirty": True} if allow_dirty else {}),
                      **({"commit_from_env": True} if os.environ.get(provenance.COMMIT_VARIABLE) else {})},
               plugin_commits=plugin_commits).run()
    except BaseException as e:
        failure = e
        # Ctrl-C or an error: the runs in flight stop before their claims go, or another command
        # could start them while these workers still run them (for the leaderboard's rebuild)
        try:
            executor.close()
        except Exception as unclosed:  # noqa: BLE001 - what stopped the sweep is the error to report, not this
            log(f"the executor could not be closed ({type(unclosed).__name__}: {first_line(str(unclosed))}): "
                "runs in flight may still be running")
        raise
    finally:  # also when interrupted: the tables show every finished run
        for r in todo:
            r.claim.release()
        for d in dense.values():
            d.claim.release()
        with contextlib.suppress(OSError):
            claims.rmdir()  # only when empty: other commands may hold claims
        with contextlib.suppress(OSError):  # housekeeping: a file no reader opens
            for tmp in files.remove_stale_temporaries(suite_dir):
                log(f"removed {tmp}, left by a command killed while writing")
        try:
            if publish is not None:
                publish()
        except Exception as e:
            if failure is None:
                raise
            # the error that stopped the sweep (a full disk) is the one to report, not this echo of it
            log(f"the leaderboard was not rebuilt ({type(e).__name__}: {e}); `bench leaderboard` rebuilds it")
    left = [r for r in todo if not r.done]
    if left:
        log(f"--max-minutes {max_minutes} reached: {len(left)} run{' remains' if len(left) == 1 else 's remain'}; "
            "rerun the same command to continue")
    return [r.record for r in runs if r.record is not None]  # in plan order


def _tracked(specs: list[RunSpec], suite: Suite, results_dir: Path, source: str, existing: list[Record],
             log: Callable[[str], None]) -> list[_Run]:
    """Each planned run with its configuration, its record's path, its claim and the record
    there, if usable (one that is not is named, and its run runs again). A run keeps the name an
    earlier record of it was given among the suite's `existing` records (_by_identity)."""
    claims = layout.claims_dir(results_dir, suite.name)
    runs, unusable = [], []
    earlier = _by_identity(existing)
    for i, spec in enumerate(specs, 1):
        config = records.run_config(suite, spec.method, spec.params, spec.seed, source)
        digest = run_key(config)
        path = layout.record_path(results_dir, suite.name, spec.method, spec.seed, digest)
        if not path.exists():  # a record of this run under the name it was given then, if any
            digest = earlier.get(digest, digest)
            path = layout.record_path(results_dir, suite.name, spec.method, spec.seed, digest)
        label = f"[{i}/{len(specs)}] {spec.method} {setting_label(spec.params)} seed={spec.seed}"
        runs.append(_Run(spec, config, digest, path, Claim(claims, path.stem), _record_of(path, config, unusable),
                         label))
    for problem in unusable:
        log(f"unusable record, to run again: {problem}")
    return runs


def _record_of(path: Path, config: dict[str, Any], problems: list[str] | None = None) -> Record | None:
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


def _dense_models(todo: list[_Run], existing: list[Record], suite: Suite, results_dir: Path,
                  source: str) -> dict[int, Dense]:
    """The dense model each seed of the runs to do starts from: its cache file, its claim, and
    what the suite's records say it was (bench.dense_stage)."""
    started = dense_stage.started_from(existing) if todo else {}
    dense = {}
    for seed in dict.fromkeys(r.spec.seed for r in todo):
        key = records.config_hash(records.dense_config(suite, seed, source))
        path = layout.dense_path(results_dir, suite.name, seed, key)
        dense[seed] = Dense(seed, path, Claim(layout.claims_dir(results_dir, suite.name), path.stem),
                            recorded=started.get(key, {}))
    return dense


class _Watched:
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
class _Sweep:
    """The sweep as it runs. `run` hands tasks to the executor as slots free up, dense models
    first, then the runs whose seed's dense model is ready, up to `fuse` in one task; it records
    each result as it comes back, and names a finished record that something else changed
    meanwhile (`watched`). Results that come back once the code of a checkout in `code` (folder,
    the clean commit the records name) has changed stop the sweep unrecorded: they may have run
    the change. With `here` (--refresh), a cached dense model that another commit or device
    trained is trained again."""

    suite: Suite
    queue: list[_Run]  # the runs not started yet, in plan order
    dense: dict[int, Dense]  # per seed
    executor: Executor
    watched: _Watched
    log: Callable[[str], None]
    source: str
    data_dir: Path | None
    device: str
    compile: str | None
    fuse: int
    fuse_layout: FuseLayout
    limit: Callable[[RunSpec], float]  # a run's time limit in seconds (_time_limits)
    deadline: float | None  # time.monotonic() after which no task starts (--max-minutes)
    here: provenance.Here | None
    code: list[tuple[Path, str]]
    standard: bool
    stamp: dict[str, Any]
    plugin_commits: dict[str, str | None]

    def __post_init__(self) -> None:
        self.in_flight: dict[int, list[_Run] | Dense] = {}  # by ticket: a task's runs, or the dense model it trains
        self.counts = {Status.OK: 0, Status.FAILED: 0, Status.SKIPPED: 0}
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
        """Start the runs whose dense model is ready, in plan order, up to `fuse` as one task, until
        every slot has a task."""
        group: list[_Run] = []
        progressed = False
        for r in list(self.queue):
            if len(self.in_flight) >= self.executor.slots or self._out_of_time():
                break
            if self.dense[r.spec.seed].weights is None:
                continue  # waiting for its dense model
            if not r.claim.acquire():
                held[r.label] = r.claim  # another command is running it
                continue
            self.queue.remove(r)
            progressed = True
            latest = _record_of(r.path, r.config)
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
                continue
            self.log(r.label)
            r.started_from = self.dense[r.spec.seed].weights
            if r.alone:
                self._submit([r])
                continue
            group.append(r)
            if len(group) == self.fuse:
                self._submit(group)
                group = []
        if group:
            self._submit(group)
        return progressed

    def _submit(self, group: list[_Run]) -> None:
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
                    weights, str(checkpoint) if checkpoint and self.executor.local else None, fuse=len(specs) > 1,
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
                        earlier = _read_log(item.path) if item.keep_log else ""
                        files.write_text_atomic(layout.log_path(item.path), earlier + outcome.log + "\n")
                    _log_error(layout.log_path(item.path), record)
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

    def _again_alone(self, runs: list[_Run], error: str) -> None:
        """The runs of a fused task whose worker died or ran out of time go back to the front of
        the queue, each to run in a task of its own: one run that ended the process (os._exit, a
        crash) or hung took the others with it, and, fused again on the retry, failed them twice
        and so for good, while the run to blame was never named."""
        self.log(f"{counted(len(runs), 'run')} trained as one task lost their worker ({first_line(error)}): each "
                 "runs again alone, so that only the run that caused it fails")
        for r in runs:
            r.alone = True
            r.claim.release()  # taken again as it starts, as every run's claim is
        self.queue[:0] = runs

    def _unfused(self, faulted: list[tuple[_Run, Outcome]]) -> None:
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
            r.alone = r.keep_log = True
            r.claim.release()  # taken again as it starts, as every run's claim is
        self.queue[:0] = [r for r, _ in faulted]

    def _record(self, run: _Run, outcome: Outcome) -> Record:
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

    def _recorded(self, run: _Run, record: Record) -> None:
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


DEFAULT_EPOCH_S = 60.0  # seconds an epoch may take where no record of the suite on this device says
MIN_LIMIT_S = 15 * 60.0


def _time_limits(suite: Suite, device: str, history: list[dict[str, Any]],
                 minutes: float | None) -> Callable[[RunSpec], float]:
    """Each run's time limit in seconds: `minutes` when given (--run-timeout), else ten times
    what its epochs should take at the median seconds per epoch of the suite's finished records
    on this device (DEFAULT_EPOCH_S where there are none), and at least MIN_LIMIT_S: a run that
    hangs is stopped, one that is merely slow is not."""
    if minutes is not None:
        return lambda spec: 60.0 * minutes
    name = _device_name(device)
    rates = [rate for r in history if r["env"].get("device_name") == name and (rate := _epoch_seconds(r)) is not None]
    per_epoch = statistics.median(rates) if rates else DEFAULT_EPOCH_S

    def limit(spec: RunSpec) -> float:
        # "dense" (the dense stage, and the row that measures its model) gets the dense budget's
        epochs = suite.training.epochs if spec.method == "dense" else expected_epochs(spec, suite, history)
        return max(MIN_LIMIT_S, 10 * per_epoch * max(epochs, 1))

    return limit


def _read_log(artifact: Path) -> str:
    """The text of a run's log so far (none: ""), which a returned log is to follow."""
    try:
        return layout.log_path(artifact).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _task_lost(outcomes: list[Outcome]) -> bool:
    """Whether a task of several runs came back as its worker's death or time limit: one failure
    for every run, which may be one run's doing (bench.executors' WorkerDied and TimedOut)."""
    return len(outcomes) > 1 and all((o.result["error"] or "").startswith(("WorkerDied", "TimedOut"))
                                     for o in outcomes)


def _epoch_seconds(record: Record) -> float | None:
    """An ok record's training seconds per epoch, what the time limits and the plan's estimates
    scale by; None where it does not say."""
    m = record["metrics"]
    if record["status"] != Status.OK or not m.get("train_epochs") or m.get("train_time_s") is None:
        return None
    return m["train_time_s"] / m["train_epochs"]


def _log_error(path: Path, record: Record) -> None:
    """End the log of a run that did not finish (failed, diverged, invalid) with its error and
    traceback. The console shows the error's first line and names this log, which otherwise
    holds only what the run printed: the traceback a plugin's author needs was in the record's
    JSON alone, and the log named for it was empty."""
    if record["status"] in (Status.OK, Status.SKIPPED) or not record.get("error"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"{layout.LOG_ERROR_MARK} {record['status']}]\n{printable(str(record['error'])).rstrip()}\n"
    with files.naming_file(path):  # not through a link planted in its place
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as log:
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


MIN_FREE_BYTES = 64 * 2**20  # records and logs are small; dense models and checkpoints are not


def _check_writable(folder: Path) -> None:
    """Fail at once, naming the folder, if records could not be written there: a path that is
    no folder, one we may not write, or a disk with less than MIN_FREE_BYTES free. A disk that
    fills up later still stops the sweep with the path and the cause, losing no finished record."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    if not existing.is_dir():
        raise ResultsFolderError(f"cannot write run records under {folder}: {existing} is not a folder")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise ResultsFolderError(f"cannot write run records under {folder}: only {free / 2**20:.1f} MiB free "
                                 f"on its disk, and a sweep needs at least {MIN_FREE_BYTES // 2**20} MiB")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.write_text_atomic(folder / ".write-check", "ok\n")
        (folder / ".write-check").unlink()
    except OSError as e:
        raise ResultsFolderError(f"cannot write run records under {folder}: {e.strerror or e}") from None


def _print_plan(suite: Suite, runs: list[_Run], todo: list[_Run], dense: dict[int, Dense],
                source: str, data_dir: Path | None, device: str, history: list[Record],
                refreshing: provenance.Here | None, runs_dir: Path, log: Callable[[str], None]) -> None:
    """The plan and its expected cost, counted as it will be spent: the dense stage once per seed
    it trains, then each run's own epochs (a post-training run's record counts the dense epochs
    too, which the stage already trained). Times come only from finished records of the same
    budget and machine: a run's from those of its method and parameters; where there are none,
    from the suite's dense seconds per epoch, marked as extrapolated. On a machine without dense
    records of the budget (a first plan on a new machine), from other machines of its device type,
    named; else unknown. It names the
    folder the records would go to (`runs_dir`), which the default picks by budget: a suite file
    of one's own at its own budget writes into ./results, beside the committed suites."""
    from tabulate import tabulate

    device_name = _device_name(device)
    if device_name is None:  # planning a GPU sweep from elsewhere
        device_name, same_kind = "any GPU", (lambda env: env.get("device") == "cuda")
    else:
        same_kind = (lambda env: env.get("device_name") == device_name)
    budget = dataclasses.asdict(suite.training)

    def timed(kind: Callable[[dict[str, Any]], bool]) -> list[Record]:
        return [r for r in history if kind(r["env"]) and r["config"]["budget"] == budget and _epoch_seconds(r) is not None]

    def dense_of(recs: list[Record]) -> list[Record]:
        return [r for r in recs if r["config"]["method"] == "dense"]

    here, elsewhere = timed(same_kind), ""
    if not dense_of(here):  # a first plan on a new machine: the other machines' times, named as theirs
        others = timed(lambda env: env.get("device", "").split(":")[0] == device.split(":")[0])
        if dense_of(others):
            here = others
            elsewhere = ", ".join(sorted({printable(r["env"].get("device_name", "?"))[:80] for r in dense_of(others)}))
    dense_rates = [_epoch_seconds(r) for r in dense_of(here)]
    per_epoch = statistics.median(dense_rates) if dense_rates else None  # the suite's dense epoch time
    # Every run is measured after it trains (on a CPU, an mlp run's latency in four runtimes: 5 s
    # of a quick run's 7), so a run without records of its own costs its epochs and a measurement
    measured = [h["measure_time_s"] for h in here if isinstance(h.get("measure_time_s"), (int, float))]
    measure_s = statistics.median(measured) if measured else 0.0
    why = {d.seed: dense_stage.unusable(d, refreshing)[1] for d in dense.values()}
    to_train = [d for d in dense.values() if why[d.seed]]
    stage_epochs = suite.training.epochs * len(to_train)
    rows, total_epochs, total_s, guessed = [], float(stage_epochs), 0.0, 0
    for r in todo:
        epochs = expected_epochs(r.spec, suite, history) - dense_epochs(r.spec, suite)
        same = [h["run_time_s"] for h in here if h["config"]["method"] == r.spec.method
                and h["config"]["params"] == r.spec.params and "run_time_s" in h]
        if same:
            seconds, shown = statistics.median(same), f"{statistics.median(same):.0f}"
        elif per_epoch is not None:
            seconds = epochs * per_epoch + measure_s
            shown, guessed = f"~{seconds:.0f}", guessed + 1
        else:
            seconds, shown = 0.0, "unknown"
        total_epochs += epochs
        total_s += seconds
        rows.append([r.spec.method, setting_label(r.spec.params), r.spec.seed, f"{epochs:g}", shown])
    here_note = "" if is_here(suite.data, data_dir) else \
        f" (not under {data_dir or default_data_dir()} yet: a run downloads it there)"
    log(f"plan for suite {suite.name} on {device} ({device_name}), data {source}{here_note}:")
    log(f"  records go to {runs_dir}")
    log(f"  {counted(len(runs), 'run')}: {len(todo)} to run, {len(runs) - len(todo)} finished before")
    if not todo:  # (no dense model to price, no time to guess)
        log(f"  nothing to run: every run has its record ({'' if refreshing else '--refresh or '}--force runs them again)")
        return
    log(f"  dense models to train: {', '.join(f'seed {d.seed}' for d in to_train) or 'none'}"
        f" ({suite.training.epochs} epochs each); cached: {len(dense) - len(to_train)}")
    for d in to_train:
        if d.path.exists():  # a cache file the run would not use: why
            log(printable(f"  dense model, seed {d.seed}: {why[d.seed]}"))
    if rows:
        log(tabulate(rows, headers=["method", "setting", "seed", "own epochs", "est. seconds"]))
    if per_epoch is None:
        log(f"  expected: {total_epochs:g} epochs; time unknown: no dense record of this suite at this budget "
            f"on {device_name} or any other {device.split(':')[0].upper()}")
        return
    total_s += per_epoch * stage_epochs
    notes = [f"dense stage from {len(dense_rates)} dense records at {per_epoch:.2f} s per epoch"]
    if elsewhere:
        notes.append(f"timed on {elsewhere}, not on this machine, which may be several times faster or slower")
    if guessed:
        notes.append(f"{counted(guessed, 'run')} (~) without a record of their own: unknown, extrapolated at that rate"
                     + (f" plus a measurement ({measure_s:.1f} s, the records' median)" if measure_s else ""))
    log(f"  expected: {total_epochs:g} epochs, {duration(total_s)} in one job ({'; '.join(notes)})")
