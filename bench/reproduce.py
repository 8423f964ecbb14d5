"""`bench reproduce`: rerun stored records with their own configuration and judge each figure.

A reader who doubts a leaderboard row, and a new user who wants to see the harness work, both
need the same thing: a record run again from its configuration (method, parameters, seed,
budget, data source) into a scratch folder, and its figures set beside the stored ones with a
verdict. Runs go through `bench.runner.run_suite`, so a reproduction is exactly what `bench run`
would do; the record's identity (its config hash) is checked before anything trains.

Verdicts (README: Reproducing a row):
- Counts (records.EXACT: parameters, nonzeros, FLOPs, encoded size, epochs...) on which every
  seed of the stored row agrees do not depend on the trained weights: they must match exactly.
  Counts that differ between the row's seeds depend on the weights (an int8 weight that rounds
  to zero, a Huffman code) and are judged like accuracy, within NOISE_SDS of their seed std.
- Accuracy must lie within NOISE_SDS seed standard deviations of the stored row plus
  records.MACHINE_MARGIN: the same seed retrains to other weights on another processor, by up to
  about 0.2 pts on mlp (README: Checks against published results).
- Timings are shown, never judged: they measure the machine and its load.
"""

from __future__ import annotations

import difflib
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import records
from bench.errors import counted, duration, first_line
from bench.records import Record, Status
from bench.plan import plan, run_key, setting_label
from bench.suite import Suite

if TYPE_CHECKING:
    from bench.executors import Executor

TIMED = ("train_time_s",)
NOISE_SDS = 3.0
DEFAULT_MAX_SECONDS = 30.0  # the sample's records ran at most this long each: the main job takes minutes


class ReproduceError(ValueError):
    """A record that cannot be rerun as it was made (bad input: exit 2)."""


def sample(recs: list[Record], n: int, seed: int,
           max_seconds: float = DEFAULT_MAX_SECONDS) -> list[dict[str, Any]]:
    """`n` records of one training seed, drawn at random (by `seed`, so the same command draws
    the same records) among the finished ones whose row has at least two seeds (a noise to judge
    against) and whose run took at most `max_seconds`. One training seed, because each seed's
    dense model trains once before its runs, and it costs more than a cheap run. Raises
    ReproduceError when no seed has `n` such records; where none finished (`--methods` naming a
    method whose runs all failed), it says so: "every row has one seed, run two or more" was
    said of two failed seeds, vacuously true of no row at all."""
    rows = records.rows(recs)
    if recs and not rows:
        ended = Counter(str(r["status"]) for r in recs)
        raise ReproduceError(f"none of these {counted(len(recs), 'record')} finished "
                             f"({', '.join(f'{n} {status}' for status, n in sorted(ended.items()))}): only a finished "
                             "run has figures to judge a rerun by")
    by_seed: dict[int, list[dict[str, Any]]] = {}
    times: dict[int, list[float]] = {}  # every seed's run times in rows with a spread, however long
    for row in rows.values():
        for r in row:
            if len(row) >= 2 and r.get("run_time_s") is not None:
                times.setdefault(r["config"]["seed"], []).append(r["run_time_s"])
                if r["run_time_s"] <= max_seconds:
                    by_seed.setdefault(r["config"]["seed"], []).append(r)
    seeds = sorted(s for s, pool in by_seed.items() if len(pool) >= n)
    if not seeds and recs and all(len(row) < 2 for row in rows.values()):
        raise ReproduceError("every row of these records has one seed (a quick run's --seeds 0, say): a rerun is "
                             "judged against its row's spread over seeds; run two or more seeds (--seeds 0,1) first")
    if not seeds:
        most = max(map(len, by_seed.values()), default=0)
        # the least --max-seconds at which some seed has n: what `mnist`'s three-minute runs needed ("(at most
        # 0)" beside 30 s named neither the count it was nor the limit that would do)
        enough = min((sorted(ts)[n - 1] for ts in times.values() if len(ts) >= n), default=None)
        raise ReproduceError(f"no training seed has {n} finished records in rows of two or more seeds that ran "
                             f"in at most {max_seconds:g} s (the most a seed has: {most}); ask for fewer (--sample)"
                             + (f" or allow longer runs (--max-seconds {math.ceil(enough)} draws {n})" if enough
                                else ""))
    draw = random.Random(seed)
    pool = sorted(by_seed[draw.choice(seeds)], key=lambda r: (r["config"]["method"], r["config_hash"]))
    return draw.sample(pool, n)


def named(stored: list[tuple[str, Record]], names: list[str]) -> list[dict[str, Any]]:
    """The stored records that `names` name: each a record's file name under the suite's runs/
    (with or without `.json`, or its path there, as the site's run page and `ls` show it), rather
    than a random draw: a reader who doubts one row reruns that row's seed. A name no record has
    is refused with the nearest ones, and so is a record that did not finish or whose row has one
    seed (no spread to judge the rerun by, as `sample` requires)."""
    by_name = dict(stored)
    rows = records.rows([r for _, r in stored])
    out = []
    for name in names:
        stem = Path(name).name.removesuffix(".json")
        if stem not in by_name:
            close = difflib.get_close_matches(stem, sorted(by_name), n=1, cutoff=0.6)
            raise ReproduceError(f"--record {stem!r}: no stored record has that name"
                                 f"{f'; did you mean {close[0]}?' if close else ''} (the names are the files "
                                 "under the suite's runs/ folder, as its leaderboard's site lists them)")
        r = by_name[stem]
        if r["status"] != Status.OK:
            raise ReproduceError(f"--record {stem}: its run {r['status']}; only a finished run has figures to judge "
                                 "a rerun by")
        if len(rows[records.row_id(r)]) < 2:
            raise ReproduceError(f"--record {stem}: its row has one seed: a rerun is judged against its row's spread "
                                 "over seeds; run two or more seeds of it first")
        if r not in out:
            out.append(r)
    return out


def stored_seconds(chosen: list[dict[str, Any]], stored: list[Record]) -> float | None:
    """How long the drawn records took to make: their runs, and the training of each dense model
    they start from (bench.records.dense_of, on their device type: a sample of one seed can hold
    rows of two budgets), which the scratch folder does again before the runs that start from
    it. A dense model's time is its dense record's train time, else the one its runs' records
    name (`dense.train_time_s`). The main job trained for minutes with no word of how many (a
    newcomer's walkthrough); None where a record lacks its time, or a dense model's is unknown
    (the message says the dense training is included)."""
    def model(r: dict[str, Any]) -> tuple[str, str]:
        return records.config_hash(records.dense_of(r["config"])), r["env"]["device"].split(":")[0]

    trained = {model(r): r["metrics"].get("train_time_s") for r in stored
               if r["status"] == Status.OK and r["config"]["method"] == "dense"}
    dense: dict[tuple[str, str], Any] = {}
    for r in chosen:
        if dense.get(model(r)) is None:
            dense[model(r)] = trained.get(model(r), (r.get("dense") or {}).get("train_time_s"))
    times = [r.get("run_time_s") for r in chosen] + list(dense.values())
    if not all(isinstance(t, (int, float)) for t in times):
        return None
    return sum(times)


@dataclass(frozen=True)
class Check:
    """One figure of a record beside its reproduction."""

    figure: str
    stored: float | None
    rerun: float | None
    verdict: str
    ok: bool


def judge(stored: dict[str, Any], rerun: dict[str, Any], row: list[dict[str, Any]]) -> list[Check]:
    """Each figure of `stored` beside `rerun`'s, with its verdict; `row` is the stored row's
    records (every seed), whose spread is the noise."""
    if rerun["status"] != Status.OK:
        return [Check("status", None, None, f"{rerun['status']}: {first_line(rerun.get('error'))}",
                      False)]
    a, b = stored["metrics"], rerun["metrics"]
    acc = [100 * r["metrics"]["accuracy"] for r in row]
    tolerance = NOISE_SDS * _std(acc) + records.MACHINE_MARGIN
    delta = 100 * (b["accuracy"] - a["accuracy"])
    inside = abs(delta) <= tolerance + 1e-9
    checks = [Check("accuracy", a["accuracy"], b["accuracy"],
                    f"{delta:+.2f} pts, {'within' if inside else 'OUTSIDE'} noise ±{tolerance:.2f}", inside)]
    for key in records.EXACT:
        if a.get(key) is None:
            continue
        seen = [r["metrics"][key] for r in row if r["metrics"].get(key) is not None]  # older seeds may lack it
        if len(set(seen)) == 1:
            same = b.get(key) == a[key]
            checks.append(Check(key, a[key], b.get(key), "exact" if same else "DIFFERS (must be exact)", same))
        else:
            spread = NOISE_SDS * _std(seen)
            inside = b.get(key) is not None and abs(b[key] - a[key]) <= spread
            checks.append(Check(key, a[key], b.get(key), f"{'within' if inside else 'OUTSIDE'} noise ±{spread:.4g} "
                                                         "(the row's seeds differ in it: it depends on the weights)",
                                inside))
    checks += [Check(key, a.get(key), b.get(key), "timing: not judged", True) for key in TIMED if key in a]
    return checks


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


MAX_DEFAULT_TIMEOUT_MIN = 24 * 60.0


def default_timeout(record: dict[str, Any]) -> float:
    """Minutes a rerun of `record` and its dense model's training may take: ten times what the
    record says they took (its run, and its training time, which holds the dense stage's), at
    least 15 minutes and at most a day. A record is a file anyone can edit: one claiming 10^15
    epochs had a limit that grew with its epochs, and its rerun trained for ever; `sample`
    draws only records whose run took at most --max-seconds."""
    seconds = (record.get("run_time_s") or 0.0) + (record["metrics"].get("train_time_s") or 0.0)
    return min(MAX_DEFAULT_TIMEOUT_MIN, max(15.0, 10 * seconds / 60))


def limit_note(chosen: list[dict[str, Any]], run_timeout: float | None) -> str:
    """How long each rerun may train, for the line printed before any does: the limit comes from
    the records' own times (default_timeout) unless --run-timeout sets it, and a record is a file
    anyone can edit. One claiming a budget of 10**15 epochs trained until the limit with no word
    of it, a day where it also claimed a day's time: `--record` draws no sample, so no
    --max-seconds filter stood between it and the rerun (nor does the filter bound anything a
    tamperer writes: it reads the same claimed time). Said up front, the limit is the user's to
    accept, Ctrl-C or lower."""
    if run_timeout is not None:
        return f"; each stops after {duration(60 * run_timeout)} (--run-timeout)"
    longest = max(default_timeout(r) for r in chosen)
    return (f"; each stops after at most {duration(60 * longest)}, ten times what its record says it took, "
            "15 minutes at least (--run-timeout sets another limit)")


def rerun(record: dict[str, Any], suite: Suite, *, results_dir: Path, data_dir: Path | None, device: str,
          executor: Executor, run_timeout: float | None = None) -> dict[str, Any]:
    """Run `record`'s configuration again into `results_dir` (a scratch folder) and return the
    new record. The suite must be the one the record names, and the run must resolve to the
    record's identity (bench.plan.identity) before anything trains: a suite file or a method whose
    parameters changed since would rerun something else, and is refused. The rerun, and the
    training of its dense model, stop after `run_timeout` minutes (default_timeout)."""
    from bench.data import find_source  # torch: only when something reruns
    from bench.runner import run_suite

    c = record["config"]
    if (suite.name, suite.version) != (c["suite"], c["suite_version"]):
        raise ReproduceError(f"the record is of suite {c['suite']} version {c['suite_version']}, "
                             f"not {suite.name} version {suite.version}")
    budget = {k: c["budget"][k] for k in ("epochs", "finetune_epochs", "limit_train", "limit_test", "precision")
              if k in c["budget"]}
    suite_now = suite.with_budget(**budget)
    overrides = c["params"] if "+" in c["method"] else {c["method"]: c["params"]}
    [spec] = plan(suite_now, [c["method"]], overrides, [c["seed"]])
    config = records.run_config(suite_now, spec.method, spec.params, spec.seed, find_source(suite.data, data_dir))
    # Today's configuration must give the record's name: its identity's hash, or for a record named
    # before identities left defaults out, the hash of every value.
    if record["config_hash"] not in (run_key(config), records.config_hash(config)):
        changed = sorted(k for k in config if config[k] != c.get(k))
        raise ReproduceError(f"{c['method']} {setting_label(c['params'])} seed {c['seed']} cannot be rerun as "
                             f"recorded: today's code and data give another configuration (it differs in "
                             f"{', '.join(changed) or 'its hash'})")
    done = run_suite(suite, [c["method"]], seeds=[c["seed"]], results_dir=results_dir, data_dir=data_dir,
                     device=device, overrides=overrides, executor=executor, budget_overrides=budget,
                     allow_dirty=True, fuse=1, force=True,  # a rerun runs, whatever the folder holds
                     run_timeout=run_timeout or default_timeout(record))
    return done[0]
