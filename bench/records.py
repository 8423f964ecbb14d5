"""Run records: one JSON file per (suite, method, parameters, seed, budget, data source).

A record holds everything needed to rebuild a leaderboard and to judge a number: the resolved
configuration and its hash, metrics, status and error, timings, and the environment. Records are
written atomically (bench.files), so a killed run leaves either the whole record or none, and a
rerun can skip what is finished.

This module is the record itself: its type, its identity (config_hash, run_config), the one check
of a usable record (record_problem), and reading records back. The code and the machine a record
names are found by bench.provenance.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import json
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, TypedDict

from bench import layout
from bench.bounds import MAX_DEPTH, MAX_NUMBER, brief, finite, plain
from bench.errors import ParameterError, printable
from bench.files import UnreadableFile, read_json
from bench.suite import SEED_LIMIT, Budget, DenseRole

SCHEMA_VERSION = 1


class Status(str, Enum):
    """How a run ended, as its record's `status` says: the one list of them. A member is its
    string (`Status.OK == "ok"`, and JSON writes "ok"), so records stay plain JSON."""

    OK = "ok"                # measured: a leaderboard row
    SKIPPED = "skipped"      # the method does not apply to the suite (NotApplicable)
    FAILED = "failed"        # an error, a time limit, a worker that died
    DIVERGED = "diverged"    # training's loss became NaN or infinite
    INVALID = "invalid"      # the returned model is no answer to the suite (never ranked)

    __str__ = str.__str__
    __format__ = str.__format__


class Record(TypedDict, total=False):
    """A run's record, the one type of it: the JSON object stored at RESULTS/SUITE/runs/NAME.json
    (bench.layout.record_path). The driver alone builds it (bench.sweep.Sweep._record), from what the
    worker reported (bench.worker.Outcome) and the provenance it checked; every reader gets it
    through read_record, which refuses one whose fields `RECORD_FIELDS` finds missing or of
    another type. A mapping, not a class, so that a record is plain JSON on disk and in tools."""

    schema: int  # SCHEMA_VERSION
    config: dict[str, Any]  # the run's identity (run_config): suite, method, params, seed, data, budget
    config_hash: str  # the hash of its identity (bench.plan.run_key): the record's name
    method_info: dict[str, str]  # the method's family and description when it ran
    standard_budget: bool  # False: budgets overridden, kept out of the standard leaderboard
    finished_at: str
    status: str  # a Status
    error: str | None
    metrics: dict[str, Any]  # the metric registry's (bench.metrics), by key
    figures: dict[str, Any]  # what the method and the deploy step reported beside the metrics
    env: dict[str, Any]  # device facts from the worker, provenance (git_commit, ...) from the driver
    measured_on: dict[str, Any]  # the device the model was timed on, where not the run's
    dense: dict[str, Any]  # the dense model it started from: commit, sha256, train_time_s
    run_time_s: float
    measure_time_s: float
    worker_deaths: int  # times its worker process died running it (not retried after two)
    _stem: str  # not stored: its file's name, which bench.board.load adds for the site's links


# pts: about the largest offset in accuracy seen between two CPU models (the same code and seeds
# of dense on mlp, README, Checks against published results; a rerun whose records were not
# kept), rounded up.
# The rows of one machine model may all sit this far above or below another model's, an offset no
# machine's seeds sample, so a verdict between rows of two models must clear it: the literature
# checks', `bench compare`'s and `bench reproduce`'s (a CPU and a GPU included, until one is measured there).
MACHINE_MARGIN = 0.2


def machine(r: Record) -> str:
    """The processor or GPU model that ran a record ("?" where the record does not say)."""
    return printable(r["env"].get("device_name", "?"))


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-able configuration (sorted keys, fixed separators)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_id(record: dict[str, Any]) -> str:
    """What makes records seeds of one leaderboard row: the whole configuration but the seed,
    and the device type (CPU and GPU rows are different rows)."""
    config = {**record["config"], "seed": None, "device": record["env"]["device"].split(":")[0]}
    return config_hash(config)


def rows(recs: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """The finished (ok) records grouped by row."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        if r["status"] == Status.OK:
            out.setdefault(row_id(r), []).append(r)
    return out


def run_config(suite: Any, method: str, params: dict[str, Any], seed: int, source: str) -> dict[str, Any]:
    """The identity of a run: its resolved configuration, which the record is keyed by (as
    `config_hash(run_config(...))`). `suite` is a bench.suite.Suite, budget overrides applied.
    The layers the suite keeps dense are named only when there are any: a suite without the rule
    keeps the names of the records written before it existed, and one with it gets records of its
    own."""
    return {
        "suite": suite.name, "suite_version": suite.version, "method": method,
        "params": params, "seed": seed, "data_source": source,
        "model": dataclasses.asdict(suite.model), "data": dataclasses.asdict(suite.data),
        "budget": dataclasses.asdict(suite.training),
        **({"dense_layers": sorted(suite.dense_layers)} if suite.dense_layers else {}),
    }


# Budget fields that do not change the dense model: runs that differ only in them share it.
NOT_DENSE = ("finetune_epochs", "finetune_lr", "limit_test")


def dense_config(suite: Any, seed: int, source: str) -> dict[str, Any]:
    """The identity of the dense model a seed's runs start from: the `dense` run's identity
    without the budget fields that only later stages use."""
    return dense_of(run_config(suite, "dense", {}, seed, source))


def dense_of(config: dict[str, Any]) -> dict[str, Any]:
    """The identity of the dense model the run of `config` (a run_config) starts from: the layers
    kept dense are no part of it, since they change what methods prune, not the dense model."""
    return {**{k: v for k, v in config.items() if k != "dense_layers"}, "method": "dense", "params": {},
            "budget": {k: v for k, v in config["budget"].items() if k not in NOT_DENSE}}


# The budget counts a record's types guarantee, with the floors the suite's Budget declares (and
# `bench run`'s --epochs etc. share): below them a rerun divides by zero.
BUDGET_FLOORS = {f.name: f.metadata["bounds"].ge for f in dataclasses.fields(Budget)
                 if f.name in ("epochs", "finetune_epochs", "limit_train", "limit_test")}
# What every record holds, whatever its status: a file without them is no record.
REQUIRED_KEYS = ("schema", "config", "status", "metrics", "env", "standard_budget")

_NUMBER = (int, float)
_NONE = type(None)
# What a usable record holds, with types: what the leaderboards, the site, `bench run`'s plan and
# benchmarks/speedups.py read from a record without looking first. A field is checked when its
# parent is there (parents come first): a required one must then be there too, the others are
# checked where present; a number must be finite. Metric values are checked apart (finite numbers or
# null, an accuracy within [0, 1], counts not negative, sizes above 0: see _metric_problem), and so are
# the values of method_info and env.method_origin (strings: bench run compares an origin with
# today's registry, and a list there stopped it with a traceback), a chain's parameters (a dict
# per link), and the runtimes' notes of an ok record (figures.deploy.runtimes: a status, and a reason unless ok).
RECORD_FIELDS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    ("schema", (int,), True),
    ("status", (str,), True),
    ("standard_budget", (bool,), True),
    ("error", (str, _NONE), False),
    ("run_time_s", _NUMBER, False),
    ("measure_time_s", _NUMBER, False),  # the plan's estimate for a run without records of its own
    ("config_hash", (str,), True),
    ("method_info", (dict,), False),
    ("worker_deaths", (int,), False),
    ("config", (dict,), True),
    ("config.suite", (str,), True),
    ("config.suite_version", (int,), True),
    ("config.method", (str,), True),
    ("config.params", (dict,), True),
    ("config.seed", (int,), True),
    ("config.data_source", (str,), True),
    ("config.budget", (dict,), True),
    ("config.budget.epochs", (int,), True),
    ("config.budget.finetune_epochs", (int,), True),
    ("config.budget.limit_train", (int, _NONE), False),
    ("config.budget.limit_test", (int, _NONE), False),
    ("config.model", (dict,), False),
    ("config.model.name", (str,), True),
    ("config.dense_layers", (list,), False),
    ("metrics", (dict,), True),
    ("env", (dict,), True),
    ("env.device", (str,), True),
    ("env.device_name", (str,), True),
    ("env.torch", (str,), True),
    ("env.threads", (int, _NONE), True),
    ("env.git_commit", (str, _NONE), False),
    ("env.method_origin", (dict,), False),
    ("env.method_commit", (dict,), False),
    ("measured_on", (dict,), False),
    ("measured_on.device", (str,), False),
    ("measured_on.device_name", (str,), False),
    ("dense", (dict,), False),
    ("dense.commit", (str, _NONE), False),
    ("dense.sha256", (str,), False),
    ("dense.train_time_s", _NUMBER, False),
    ("figures", (dict,), False),
    ("figures.deploy", (dict,), False),
    ("figures.deploy.runtimes", (dict,), False),
)


def _is(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, where a boolean is no int (JSON's true is no seed, no epoch count)."""
    return isinstance(value, types) and (not isinstance(value, bool) or bool in types)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# Metrics that count or measure something, which no model makes negative (sparsity may be).
COUNTS = ("params", "nonzeros", "flops", "flops_effective", "train_flops", "train_epochs")
# Figures a rerun of a record gives again exactly, where the seeds of its row agree on them:
# they count what the method kept, not how well it trained (bench reproduce, bench compare).
EXACT = ("params", "nonzeros", "sparsity", "weight_sparsity", "flops", "flops_effective", "size_bytes",
         "compression", "train_epochs")


def _metric_problem(key: str, value: Any) -> str | None:
    """Why a metric's value is unusable, or None: a leaderboard averages and plots every one,
    where a NaN is silently averaged and an infinity stops matplotlib. A size (a key ending in
    _bytes: of the encoding, a deployed file, memory; and the compression, the dense model's size
    over this one's) is above 0 in every record a run writes: a 0 is a tampered record's, which
    `bench compare` divided by and the plots' log axis of bytes cannot place. Not params: a model
    without weights (a constant output) passes the checks of a returned model (bench.worker's
    check_measurable) with 0."""
    if not _is(value, (*_NUMBER, _NONE)):
        return f"is {_type_name(value)}, expected a number or null"
    if value is None:
        return None
    if not finite(value):
        return f"is not a finite number within ±{MAX_NUMBER:g}"
    if key == "accuracy" and not 0 <= value <= 1:
        return f"is {value:g}, outside [0, 1]"
    if (key == "compression" or key.endswith("_bytes")) and value <= 0:
        return f"is {value:g}, a size no model has"
    if key in COUNTS and value < 0:
        return f"is {value:g}, a negative count"
    return None


def record_problem(record: Any) -> str | None:
    """Why `record` (a JSON file's content) cannot be used as a run record, or None if it can:
    the one definition of a usable record, so that no reader meets a missing or mistyped field."""
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED_KEYS):
        return f"not a run record (it lacks one of {', '.join(REQUIRED_KEYS)})"
    if _is(record["schema"], (int,)) and record["schema"] != SCHEMA_VERSION:
        return f"schema {record['schema']}, and this harness reads schema {SCHEMA_VERSION}"
    for field, types, required in RECORD_FIELDS:
        *parents, key = field.split(".")
        parent = record
        for name in parents:
            parent = parent.get(name)
            if parent is None:
                break  # an optional parent that is absent
        if parent is None:
            continue
        if key not in parent:
            if required:
                return f"malformed record: {field} is missing"
            continue
        if not _is(parent[key], types):
            expected = " or ".join("null" if t is _NONE else t.__name__ for t in types)
            return f"malformed record: {field} is {_type_name(parent[key])}, expected {expected}"
        if _is(parent[key], _NUMBER) and not finite(parent[key]):
            return f"malformed record: {field} is not a finite number within ±{MAX_NUMBER:g}"
    for key, value in record["metrics"].items():
        if why := _metric_problem(key, value):
            return f"malformed record: metrics.{key} {why}"
    if not layout.RECORD_METHOD.fullmatch(record["config"]["method"]):
        return f"malformed record: config.method {record['config']['method'][:40]!r} is no method name"
    if not 0 <= record["config"]["seed"] < SEED_LIMIT:
        return f"malformed record: config.seed is outside [0, {SEED_LIMIT})"
    # (JSON's types: only its numbers can fail, and its depth: each value's, below its link's and the params' mapping)
    if not plain(record["config"]["params"], MAX_DEPTH + 2):
        return (f"malformed record: config.params holds a number that is not finite or not within ±{MAX_NUMBER:g}, "
                f"or is nested more than {MAX_DEPTH} levels deep")
    budget = record["config"]["budget"]
    for key, low in BUDGET_FLOORS.items():
        if budget.get(key) is not None and budget[key] < low:
            return f"malformed record: config.budget.{key} is {budget[key]}, below {low}"
    if record["env"]["threads"] is not None and record["env"]["threads"] < 1:
        return "malformed record: env.threads is below 1"
    if record.get("worker_deaths", 0) < 0:
        return "malformed record: worker_deaths is negative"
    if not all(isinstance(v, str) for v in record.get("method_info", {}).values()):
        return "malformed record: method_info holds a value that is no string"
    roles = typing.get_args(DenseRole)
    if not all(isinstance(v, str) and v in roles for v in record["config"].get("dense_layers", [])):
        # every view's table heading joins them (board.table_budget): a number there stopped it with a traceback
        return f"malformed record: config.dense_layers holds a value that is none of {', '.join(roles)}"
    for key in ("method_origin", "method_commit"):
        if not all(isinstance(v, str) for v in record["env"].get(key, {}).values()):
            return f"malformed record: env.{key} holds a value that is no string"
    if "+" in record["config"]["method"] and not all(isinstance(v, dict) for v in record["config"]["params"].values()):
        return "malformed record: config.params of a chain holds a link whose parameters are no dict"
    if record["status"] not in Status.__members__.values():
        return f"malformed record: status is {record['status'][:40]!r}, expected one of {', '.join(Status)}"
    if record["status"] == Status.OK and not _is(record["metrics"].get("accuracy"), _NUMBER):
        return "malformed record: an ok record without a number in metrics.accuracy"
    for runtime, note in record.get("figures", {}).get("deploy", {}).get("runtimes", {}).items():
        if not (isinstance(note, dict) and isinstance(note.get("status"), str)
                and (note["status"] == "ok" or isinstance(note.get("reason"), str))):
            return f"malformed record: figures.deploy.runtimes.{runtime} holds no status, or no reason for it"
    return None


# The most bytes a record file may hold: records are a few KB, and a planted huge file (or a link
# to /dev/zero, refused anyway) must be refused rather than read into memory.
MAX_RECORD_BYTES = 16 * 2**20


def read_record(path: Path, problems: list[str] | None = None) -> Record | None:
    """The record stored at `path`, or None if there is none or it cannot be used (then, with
    `problems`, a line naming the file and why is appended there)."""
    record, why = _read(Path(path))
    if why:
        _note(problems, f"{path}: {why}")
    return record


def _read(path: Path) -> tuple[Record | None, str | None]:
    """(the record, None), or (None, why it is unusable); (None, None) when there is no file."""
    try:
        record = read_json(path, MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None, None
    except UnreadableFile as e:
        return None, str(e)
    why = record_problem(record)
    return (None, why) if why else (record, None)


def load_records(results_dir: Path, suite: str) -> list[Record]:
    """Every usable record of a suite, in file-name order. A file that cannot be used (truncated,
    not a record, another schema, malformed: see record_problem) is left out; a reader that
    shows rows, which must never drop a run without saying so, reads them with `reported_records`."""
    return [record for _, record in named_records(results_dir, suite)]


def named_records(results_dir: Path, suite: str, problems: list[str] | None = None
                  ) -> list[tuple[str, Record]]:
    """load_records with each record's file name (without .json): the name a site links to.
    A record is left out, with a line in `problems`, where it is not the suite's (its config names
    another) or is a second record of one run on one machine (a copied file, which would count as
    another seed): of those, the one under its own name (bench.layout.record_path) is kept."""
    out: dict[tuple[str, str, str], tuple[str, Record]] = {}
    folder = layout.runs_dir(results_dir, suite)
    for path in sorted(folder.glob("*.json")):
        record = read_record(path, problems)
        if record is None:
            continue
        c = record["config"]
        if c["suite"] != suite:
            _note(problems, f"{path}: a record of suite {c['suite'][:40]!r}, not of {suite!r}")
            continue
        run = (config_hash(c), record["env"]["device"].split(":")[0], record["env"]["device_name"])  # one machine's
        if run in out:
            own = layout.record_path(results_dir, suite, c["method"], c["seed"], record["config_hash"]).stem
            kept, other = (path.stem, out[run][0]) if path.stem == own else (out[run][0], path.stem)
            if kept == path.stem:
                out[run] = (path.stem, record)
            _note(problems, f"{folder / other}.json: a second record of the run of {kept}.json (a copy?)")
            continue
        out[run] = (path.stem, record)
    return sorted(out.values(), key=lambda item: item[0])


def reported_records(results_dir: Path, suite: str, reader: str, shown_as: str | None = None
                     ) -> list[tuple[str, Record]]:
    """named_records for a reader that shows rows (the leaderboard, a comparison): a run left out
    unnoticed would be a seed missing from a row's mean, so each file left out is named on stderr
    with why, as "bench: warning: left out of READER: PATH: WHY". `shown_as` stands for
    `results_dir` in those lines where the folder is a scratch copy the user never sees (bench
    compare's of a commit's records), so that they name the file where the user has it."""
    problems: list[str] = []
    named = named_records(results_dir, suite, problems)
    for problem in problems:
        shown = problem if shown_as is None else problem.replace(str(Path(results_dir)), shown_as, 1)
        print(f"bench: warning: left out of {reader}: {shown}", file=sys.stderr)
    return named


def _note(problems: list[str] | None, line: str) -> None:
    """Add `line` to `problems`, printable: it goes to the console, and a file's name (a results
    folder's, or a commit's) or a record's text may hold a terminal's escape sequences."""
    if problems is not None:
        problems.append(printable(line))


def methods_named(spec: str, present: Iterable[str]) -> set[str]:
    """The methods among `present` (those of some records) that a --methods value names: names
    and glob patterns, as `bench run --methods` takes them. A name or pattern that matches none
    is refused with the nearest names, rather than leaving a table of the reference rows alone,
    or a sample drawn from nothing."""
    present = sorted(set(present))
    chosen: set[str] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        matches = fnmatch.filter(present, part)
        if not matches:
            close = difflib.get_close_matches(part, present, n=3, cutoff=0.5)
            raise ParameterError(f"--methods: no record's method matches {brief(part)}"
                                 f"{f'; did you mean {close[0]}?' if close else ''} (methods with records: "
                                 f"{', '.join(present) or 'none'})")
        chosen.update(matches)
    if not chosen:
        raise ParameterError("--methods: expected method names or patterns, e.g. 'magnitude,gmp'")
    return chosen
