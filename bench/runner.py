"""`bench run`'s driver: plan -> dense stage -> tasks -> records.

`run_suite` plans the runs (each one's configuration, its record's path and claim, the dense
model each seed's runs start from; --dry-run prints that plan and its expected cost), finds those
finished before, and hands the rest to the sweep (bench.sweep), which trains the dense stage,
runs the tasks on an executor and writes their records. Before anything runs, the driver checks
the commit the records will name (a standard-budget sweep needs a clean checkout) and that the
results folder can take them. The leaderboard is the caller's to publish (bench.cli_run):
`run_suite` calls `publish` once the sweep has ended, also when it was interrupted.

Finished records are skipped on a rerun unless forced, so an interrupted sweep resumes where it
stopped. A claim per run keeps two commands on one results folder from executing the same run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from bench import dense_stage, files, layout, provenance, records, registry
from bench.records import Record, Status
from bench.chain import links
from bench.dense_stage import Dense
from bench.data import default_data_dir, fetch, is_here
from bench.errors import ResultsFolderError, counted, duration, first_line, printable
from bench.executors import Executor, cores
from bench.locks import Claim
from bench.plan import (Order, RunSpec, dense_epochs, expected_epochs, fusion_key, plan, run_key, setting_label,
                        with_recorded)
from bench.suite import Suite
from bench.fused import FuseLayout
from bench.sweep import Run, Sweep, Watched, finished, record_of, sweep_seconds


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
              jobs: int | None = 1, log: Callable[[str], None] = tqdm.write) -> list[Record]:
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
    `jobs` is how many tasks the executor runs at once, for the dry run's estimate (None: not
    known before it starts, a Ray cluster's).
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
    if why := layout.folder_too_deep(results_dir, "--results-dir "):  # a dry run too: it names where records go
        raise ResultsFolderError(why)
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
                    layout.runs_dir(results_dir, suite.name), jobs, fuse, log)
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
        watched = Watched({layout.runs_dir(results_dir, suite.name) / f"{stem}.json" for stem, r in named if finished(r)})
        Sweep(suite, list(todo), dense, executor, watched, log, source=source, data_dir=data_dir, device=device,
               compile=compile, fuse=fuse, fuse_layout=fuse_layout, limit=limit,
               fusion_key=lambda spec: fusion_key(spec, suite, existing), deadline=deadline, here=here, code=code, standard=standard,
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
             log: Callable[[str], None]) -> list[Run]:
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
        runs.append(Run(spec, config, digest, path, Claim(claims, path.stem), record_of(path, config, unusable),
                         label))
    for problem in unusable:
        log(f"unusable record, to run again: {problem}")
    return runs


def _dense_models(todo: list[Run], existing: list[Record], suite: Suite, results_dir: Path,
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


def _epoch_seconds(record: Record) -> float | None:
    """An ok record's training seconds per epoch, what the time limits and the plan's estimates
    scale by; None where it does not say."""
    m = record["metrics"]
    if record["status"] != Status.OK or not m.get("train_epochs") or m.get("train_time_s") is None:
        return None
    return m["train_time_s"] / m["train_epochs"]


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


def _print_plan(suite: Suite, runs: list[Run], todo: list[Run], dense: dict[int, Dense],
                source: str, data_dir: Path | None, device: str, history: list[Record],
                refreshing: provenance.Here | None, runs_dir: Path, jobs: int | None, fuse: int,
                log: Callable[[str], None]) -> None:
    """The plan and its expected cost, counted as it will be spent: the dense stage once per seed
    it trains, then each run's own epochs (a post-training run's record counts the dense epochs
    too, which the stage already trained). Times come only from finished records of the same
    budget and machine: a run's from those of its method and parameters; where there are none,
    from the suite's dense seconds per epoch, marked as extrapolated. On a machine without dense
    records of the budget (a first plan on a new machine), from other machines of its device type,
    named; else unknown. A run is priced from its records trained as it will be, fused with others
    (`fuse` above 1) or alone, where it has such records; from the others where not, which the
    plan says. The total is one job's; with several `jobs`, also the wall time of the sweep's
    schedule (bench.sweep.sweep_seconds), on a CPU no more jobs at once than it has cores. It
    names the folder the records would go to (`runs_dir`), which the default picks by budget: a
    suite file of one's own at its own budget writes into ./results, beside the committed suites."""
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
    rows, total_epochs, guessed, unlike = [], float(stage_epochs), 0, 0
    priced: list[tuple[int, float, Any]] = []  # (seed, seconds, fusion_key) for the schedule

    def trained_alike(h: Record) -> bool:
        return (h["metrics"].get("fused_with", 1) > 1) == (fuse > 1)

    for r in todo:
        epochs = expected_epochs(r.spec, suite, history) - dense_epochs(r.spec, suite)
        same = [h for h in here if h["config"]["method"] == r.spec.method
                and h["config"]["params"] == r.spec.params and "run_time_s" in h]
        alike = [h for h in same if trained_alike(h)]
        if same and not alike and epochs > 0:  # one that trains nothing (dense, ptq) fuses nothing
            unlike += 1
        if same:
            seconds = statistics.median(h["run_time_s"] for h in alike or same)
            shown = f"{seconds:.0f}"
        elif per_epoch is not None:
            seconds = epochs * per_epoch + measure_s
            shown, guessed = f"~{seconds:.0f}", guessed + 1
        else:
            seconds, shown = 0.0, "unknown"
        total_epochs += epochs
        priced.append((r.spec.seed, seconds, fusion_key(r.spec, suite, history)))
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
        + (f" ({counted(suite.training.epochs, 'epoch')} each)" if to_train else "")
        + f"; cached: {len(dense) - len(to_train)}")
    for d in to_train:
        if d.path.exists():  # a cache file the run would not use: why
            log(printable(f"  dense model, seed {d.seed}: {why[d.seed]}"))
    if rows:
        log(tabulate(rows, headers=["method", "setting", "seed", "own epochs", "est. seconds"]))
    if per_epoch is None:
        log(f"  expected: {total_epochs:g} epochs; time unknown: no dense record of this suite at this budget "
            f"on {device_name} or any other {device.split(':')[0].upper()}")
        return
    stage = {d.seed: per_epoch * suite.training.epochs for d in to_train}
    total_s = sum(stage.values()) + sum(seconds for _, seconds, _ in priced)
    notes = [f"dense stage from {len(dense_rates)} dense records at {per_epoch:.2f} s per epoch"]
    if elsewhere:
        notes.append(f"timed on {elsewhere}, not on this machine, which may be several times faster or slower")
    if guessed:
        notes.append(f"{counted(guessed, 'run')} (~) without a record of their own: unknown, extrapolated at that rate"
                     + (f" plus a measurement ({measure_s:.1f} s, the records' median)" if measure_s else ""))
    if unlike:
        notes.append(f"{counted(unlike, 'run')} priced from records trained "
                     + ("alone: fusion's gain or loss here is not in the estimate" if fuse > 1 else
                        "fused with others (their share of each fused step)"))
    at_once = ""
    if jobs is not None and jobs > 1:
        slots = min(jobs, cores()) if device == "cpu" else jobs
        at_once = (f", {duration(sweep_seconds(stage, priced, slots, fuse))} in {jobs} jobs"
                   + (f" (no faster than {slots}: {counted(slots, 'core')})" if slots < jobs else ""))
        if device != "cpu":  # four jobs on one GPU made 2.6x one job's epochs, not 4x (README)
            notes.append(f"jobs that share a GPU each run slower than alone: the time in {jobs} jobs holds only "
                         "where the records were made with as many at once")
    log(f"  expected: {total_epochs:g} epochs, {duration(total_s)} in one job{at_once} ({'; '.join(notes)})")
