"""The figures README.md and benchmarks/RESULTS.md quote from the committed records, written by
this script into their generated blocks (benchmarks/blocks.py), so that the prose cannot drift
from the records: the issue's audit found figures that no committed record produces.

Each block below says which rows or records give it. Row figures (mean ± std over seeds) come from
a suite's checked `leaderboard.csv` (the standard table the literature checks read, itself a pure
function of the records, which `bench leaderboard --check` keeps so); figures of one seed come
from that seed's standard-budget record. A figure the committed records cannot give (a run whose
records were not kept, a GPU window's log, a script's timing on an idle machine) is not written
here: the prose cites where it comes from, or no longer states it.

    python benchmarks/readme_figures.py [--results DIR] [--write | --check]

Without a flag it prints every block; `--write` refreshes them in place; `--check` exits 1 naming
each stale or missing block (CI runs it). After records change: rerun `bench leaderboard`, then
this script with `--write`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import blocks  # noqa: E402
from literature_checks import CALIBRATION, SNIP_ERRORS, SUITES, Figure, accuracy, leaderboard, pick  # noqa: E402
from migrate_dense import loads_dense  # noqa: E402

from bench import board, records, reproduce  # noqa: E402
from bench.deploy import INT8_TOLERANCE  # noqa: E402
from bench.suite import load_suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "benchmarks/RESULTS.md")  # relative to the checkout: the files with blocks
ONE_SHOT = {"finetune": False, "n": 0}  # the one-shot methods' unstructured rows, not fine-tuned


def row(results: Path, suite: str, method: str, **params: object) -> Figure:
    """A standard leaderboard row's accuracy over seeds; a row the block needs and the table
    lacks is an error, not an empty cell (the prose around the block assumes it)."""
    found = accuracy(table(results, suite), method, **params)
    if found is None:
        raise LookupError(f"results/{suite}/leaderboard.csv: no row {method} {params}")
    return found


def ms(f: Figure) -> str:
    """A row as the prose gives it: mean ± std, in %."""
    return f"{f.mean:.2f} ± {f.std:.2f}"


def seed_record(results: Path, suite: str, method: str, seed: int, **params: object) -> dict[str, Any]:
    """The one finished standard-budget record of `method` at `seed` whose parameters include
    `params`."""
    found = [r for r in standard_records(results, suite)
             if r["config"]["method"] == method and r["config"]["seed"] == seed and r["status"] == "ok"
             and all(r["config"]["params"].get(k) == v for k, v in params.items())]
    if len(found) != 1:
        raise LookupError(f"results/{suite}/runs: {len(found)} standard records of {method} seed {seed} {params}, "
                          "expected one")
    return found[0]


def seed_accuracy(results: Path, suite: str, method: str, seed: int, **params: object) -> float:
    """Top-1 % of that record."""
    return 100 * seed_record(results, suite, method, seed, **params)["metrics"]["accuracy"]


@functools.cache
def table(results: Path, suite: str) -> pd.DataFrame:
    """A suite's checked standard rows (literature_checks.leaderboard), built once per
    `generated` call: the blocks look up about a hundred rows, and building the table from the
    records each time took most of a minute. Its callers only read it."""
    return leaderboard(results, suite)


@functools.cache
def unrounded(results: Path, suite: str) -> pd.DataFrame:
    """A suite's checked standard rows (as `table`) before the CSV's rounding, for the figures
    quoted at fewer decimals than the CSV's: from its cells they were rounded twice (a speedup of
    2.2504, 2.25 in the CSV, read 2.2 at one decimal rather than 2.3)."""
    source, device = SUITES[suite]
    t, _ = board.table([r for r in board.load(results, suite) if r.get("standard_budget")])
    return t[(t.data_source == source) & (t.device == device)]


@functools.cache
def standard_records(results: Path, suite: str) -> list[dict[str, Any]]:
    """A suite's standard-budget records, read once per `generated` call (a suite has hundreds)."""
    return [r for r in records.load_records(results, suite) if r.get("standard_budget")]


def snip_errors(results: Path, suite: str) -> str:
    """SNIP's error (100 - mean accuracy) at the sparsities Lee et al. 2019 publish, beside theirs."""
    levels = SNIP_ERRORS[suite]
    ours = [100 - row(results, suite, "snip", sparsity=s).mean for s, _ in levels]
    return (" / ".join(f"{e:.2f}%" for e in ours) + " error at " + " / ".join(f"{s:.0%}" for s, _ in levels)
            + ", against Lee et al.'s " + " / ".join(f"{e}%" for _, e in levels) + ": "
            + " / ".join(f"{o - e:+.2f}" for o, (_, e) in zip(ours, levels)) + " pts")


def made_by(results: Path, suite: str, commit: str) -> list[dict[str, Any]]:
    """A suite's standard records that name `commit` (a prefix)."""
    return [r for r in standard_records(results, suite) if r["env"]["git_commit"].startswith(commit)]


def commit_share(results: Path, suite: str, commit: str) -> str:
    """How many of a suite's standard records name `commit`, of how many."""
    return f"{len(made_by(results, suite, commit))} of its {len(standard_records(results, suite))}"


def dense_named(results: Path, suite: str) -> str:
    """How many of a suite's finished standard records that start from the dense model name it
    (commit and weights' hash), and how: written by the run itself, or filled in by
    benchmarks/migrate_dense.py after retraining showed which weights they started from."""
    spec = load_suite(suite)
    reuse = [r for r in standard_records(results, suite) if loads_dense(r, spec)]
    migrated = [r for r in reuse if "migrated" in r.get("dense", {})]
    written = [r for r in reuse if "dense" in r and "migrated" not in r["dense"]]
    out = (f"{len(written) + len(migrated)} of the {len(reuse)} finished standard records of runs that load it "
           "(migrate_dense's rule, checked against every run that recorded what it loaded)")
    if written:
        out += f": {len(written)} written by their runs (" + ", ".join(
            f"{c[:7]}: {n}" for c, n in sorted(Counter(r["env"]["git_commit"] for r in written).items())) + ")"
    if migrated:
        trainers = ", ".join(sorted({r["dense"]["commit"][:7] for r in migrated}))
        retrained = ", ".join(sorted({c[:7] for r in migrated for c in r["dense"]["migrated"]["retrained_at"]}))
        out += (f"{',' if written else ':'} {len(migrated)} filled in by the migration (models trained by {trainers}; "
                f"identical weights retrained at {retrained})")
    return out


MILD = ({"sparsity": 0.5, **ONE_SHOT}, {"n": 2, "m": 4, "finetune": False})  # the levels where pruning is mild


def wanda_lead(results: Path, suite: str, params: dict[str, object]) -> float:
    """Wanda's accuracy minus one-shot magnitude's at `params`, pts."""
    return (row(results, suite, "wanda", **params, calibration_samples=CALIBRATION).mean
            - row(results, suite, "magnitude-oneshot", **params).mean)


def run_times(results: Path, suite: str, method: str, machine: str) -> list[float]:
    """Wall seconds of each finished standard run of `method` on a machine whose name contains
    `machine` (training, measurement and bookkeeping: the record's run_time_s)."""
    return sorted(r["run_time_s"] for r in standard_records(results, suite)
                  if r["config"]["method"] == method and r["status"] == "ok" and machine in r["env"]["device_name"])


def regeneration(results: Path, suite: str) -> str:
    """What regenerating a suite costs: its standard runs' wall seconds summed (their records'
    run_time_s), and the dense models' training, the run count, and the wall time at the jobs
    they ran with (two at a time on the 2-core machine that made them)."""
    recs = standard_records(results, suite)
    runs = sum(r.get("run_time_s") or 0.0 for r in recs)
    dense = sum(r["dense"]["train_time_s"] for r in recs if r["config"]["method"] == "dense" and "dense" in r)
    dense = dense or sum(r["metrics"].get("train_time_s", 0.0) for r in recs if r["config"]["method"] == "dense")
    return (f"{(runs + dense) / 3600:.1f} hours ({len(recs)} standard runs, plus "
            f"{sum(r['config']['method'] == 'dense' for r in recs)} dense models); run two at a time, about "
            f"{(runs + dense) / 2 / 3600:.1f} hours of wall time")


def null_worse(rows: int, draws: int = 20_000, seeds: int = 3) -> tuple[float, float]:
    """How often some row of a `bench compare` of `rows` rows reads `worse` where nothing changed,
    after Holm's correction over the rows (as it judges) and without it: each row two sides of
    `seeds` normal seeds of equal mean and spread, independent of the other rows (simulated, numpy's
    seeded generator, so the figures are the same on every run). 20,000 draws give the rates to
    about 0.07 pts (one standard error at 1%): `compare_rows` prints them in whole percents."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, draws, rows, seeds))
    test = stats.ttest_ind(b, a, axis=2, equal_var=False)
    order = np.argsort(test.pvalue, axis=1)
    p, t = np.take_along_axis(test.pvalue, order, 1), np.take_along_axis(test.statistic, order, 1)
    rejected = np.maximum.accumulate(np.minimum(1.0, (rows - np.arange(rows)) * p), axis=1) < 0.05
    return float(np.mean((rejected & (t < 0)).any(axis=1))), float(np.mean(((test.pvalue < 0.05) & (test.statistic < 0)).any(axis=1)))


def leaderboard_rows(results: Path, suite: str) -> int:
    """The rows of a suite's standard leaderboard.csv: what one `bench compare` of the suite judges."""
    return len(pd.read_csv(results / suite / "leaderboard.csv"))


def compare_rows(results: Path, suite: str) -> str:
    """The rows of a suite's leaderboard, and the chance that some row of a null comparison of
    them all reads `worse`, with Holm's correction and without, were the rows independent."""
    n = leaderboard_rows(results, suite)
    holm, alone = null_worse(n)
    return (f"{holm:.0%} of null comparisons of the {n} rows of `{suite}` have a row read `worse` (simulated: normal "
            f"seeds, independent rows), against {alone:.0%} with each row judged on its own")


def measure_time(results: Path, suite: str) -> str:
    """The seconds a suite's finished standard runs spent measuring their model (every runtime's
    latency and the output checks: the record's measure_time_s)."""
    t = [r["measure_time_s"] for r in standard_records(results, suite)
         if r["status"] == "ok" and r.get("measure_time_s") is not None]
    return (f"{min(t):.0f}-{max(t):.0f} s of an `{suite}` run, {statistics.median(t):.0f} s at the median of its "
            f"{len(t)} committed records")


def reproduce_cost(results: Path, suite: str) -> str:
    """What the main job (`bench reproduce --suite S --sample 3`, its default draw) reruns: the
    drawn seed's dense model, as its record took, and the three runs'."""
    drawn = reproduce.sample(standard_records(results, suite), 3, 0)
    (seed,) = {r["config"]["seed"] for r in drawn}
    dense = seed_record(results, suite, "dense", seed)
    runs = sorted(r["run_time_s"] for r in drawn)
    return (f"{dense['metrics']['train_time_s']:.0f} s on the {dense['env']['device_name'].split(' [')[0]} that made "
            f"the records, {dense['metrics']['train_epochs']} epochs) and three short runs "
            f"({extent(runs, 0)} s each")


def cifar_dense(results: Path) -> str:
    """The suites table's cifar dense accuracy: the standard seed-0 record's, and where it ran."""
    dense = seed_record(results, "cifar", "dense", 0)
    return f"{100 * dense['metrics']['accuracy']:.2f}% on the JPEG copy (seed 0, {dense['env']['device_name']})"


# The GPU windows RESULTS.md describes, by the commits whose records they made (each on an H100).
# A later window on another GPU reruns these records (--refresh device): the prose around their
# blocks is then history, to be rewritten, and `window_records` says so rather than quote the new
# records under the old window's words.
FIRST_WINDOW, SECOND_WINDOW = "a2ce70e", "3f12c67"


def window_records(results: Path, commit: str, method: str, made: int = 1) -> list[dict[str, Any]]:
    """The `made` finished cifar records of `method` that the GPU window of `commit` made: all of
    them, since a later window cut short may rerun some (and a figure of the rest would be
    neither that window's nor the later one's)."""
    found = [r for r in made_by(results, "cifar", commit) if r["config"]["method"] == method and r["status"] == "ok"]
    if len(found) != made:
        held = "no" if not found else f"{len(found)} of the {made}"
        raise LookupError(f"results/cifar/runs holds {held} {method} record{'s' if made > 1 else ''} of the GPU window "
                          f"of commit {commit} any more (a later window reran {'them' if made > 1 else 'it'}): rewrite "
                          "the prose around the blocks that quote that window (README.md, benchmarks/RESULTS.md) "
                          "from `git show "
                          f"{commit}:results/cifar/runs`, and this script's {commit} blocks with it")
    return found


def cifar_epoch(results: Path) -> str:
    """The first GPU window's dense record's training seconds per epoch."""
    (dense,) = window_records(results, FIRST_WINDOW, "dense")
    m = dense["metrics"]
    return (f"{m['train_time_s'] / m['train_epochs']:.2f} s eager (the seed-0 dense record: {m['train_epochs']} "
            f"epochs in {m['train_time_s']:.1f} s)")


def dense_params(results: Path, suite: str) -> str:
    """The parameters of a suite's model: its seed-0 dense record's count."""
    return f"{seed_record(results, suite, 'dense', 0)['metrics']['params']:,} params"


INT8_METHODS = ("ptq-int8", "qat", "magnitude+ptq-int8")  # the rows whose models run int8 kernels


def int8_output_gap(results: Path) -> str:
    """The largest output difference of an int8 model's runtimes from its fake-quantized
    reference, as a share of the bound's scale (max(1, largest |output|), bench.deploy), over the
    output checks of the committed mlp and mnist int8 records."""
    gaps = [c["max_abs_diff"] / max(1.0, c["tolerance"] / INT8_TOLERANCE)
            for suite in ("mlp", "mnist") for r in standard_records(results, suite)
            if r["config"]["method"] in INT8_METHODS and r["status"] == "ok"
            for runtime in r["figures"]["deploy"]["runtimes"].values()
            for key, c in runtime.items() if key.startswith("check_") and isinstance(c, dict)]
    return f"at most {max(gaps):.2%} of the largest logit over the {len(gaps)} output checks"


def tied_at(results: Path, suite: str, band: int) -> str:
    """How many of the other rows of a suite's size band the site's best at each size counts as
    tied with the band's best, unclear and below it (bench.ties)."""
    from bench import site, ties

    recs = [r for r in board.load(results, suite) if r.get("standard_budget")]
    t = dict(site.bands(board.table(recs)[0]))[band]
    n = Counter(f.status for f in ties.standings(t, recs).values())
    return (f"of the {len(t) - 1} other rows at >= {band}x, {n[ties.TIED]} tie with its best, {n[ties.UNCLEAR]} are "
            f"unclear and {n[ties.BELOW]} below it")


def readme(results: Path) -> dict[str, str]:
    """README.md's blocks."""
    sparsegpt = {n: row(results, "mlp", "sparsegpt", sparsity=0.9, calibration_samples=n, **ONE_SHOT)
                 for n in (128, CALIBRATION)}
    seed0 = {n: seed_accuracy(results, "mlp", "sparsegpt", 0, sparsity=0.9, calibration_samples=n, **ONE_SHOT)
             for n in (128, CALIBRATION)}
    dense = row(results, "mlp", "dense")
    magnitude_s, lottery_s = (run_times(results, "mnist", m, "AMD EPYC") for m in ("magnitude", "lottery"))
    dense_seeds = [seed_accuracy(results, "mlp", "dense", s) for s in (0, 1)]
    kd = {s: (row(results, s, "kd"), row(results, s, "student")) for s in ("mlp", "mnist")}
    wanda, magnitude = (row(results, "mlp", m, sparsity=0.9, **ONE_SHOT, **calibrated(m))
                        for m in ("wanda", "magnitude-oneshot"))
    return {
        # methods/sparsegpt.py's reason for 1,024 calibration images
        "sparsegpt-calibration": f"{seed0[128]:.2f}% from 128 images and {seed0[CALIBRATION]:.2f}% from 1,024; "
                                 f"the rows, over {sparsegpt[128].n} seeds, {ms(sparsegpt[128])} and "
                                 f"{ms(sparsegpt[CALIBRATION])}%",
        "snip-mlp": snip_errors(results, "mlp"),
        "snip-mnist": snip_errors(results, "mnist"),
        "wanda-mlp-90": f"{wanda.mean:.2f} vs {magnitude.mean:.2f}%",
        # its unstructured 50% and 2:4 rows against one-shot magnitude's, on both suites
        "wanda-near-magnitude": f"{max(abs(wanda_lead(results, s, p)) for s in ('mlp', 'mnist') for p in MILD):.2f}",
        "kd-rows": " and ".join(f"{ms(k)}% on `{s}` (student {ms(st)})" for s, (k, st) in kd.items()),
        "mlp-dense-amd": f"{dense_seeds[0]:.2f}% and {dense_seeds[1]:.2f}% for seeds 0 and 1, and a seed "
                         f"standard deviation of {dense.std:.2f} pts over the {dense.n} seeds",
        "mlp-records-35720db": commit_share(results, "mlp", "35720db"),
        "mnist-records-35720db": commit_share(results, "mnist", "35720db"),
        "mlp-records-9040bc3": commit_share(results, "mlp", "9040bc3"),
        "mnist-records-6097136": f"{len(made_by(results, 'mnist', '6097136'))} records",
        "mlp-dense-named": dense_named(results, "mlp"),
        "mnist-dense-named": dense_named(results, "mnist"),
        "rigl-mnist-95": f"{seed_accuracy(results, 'mnist', 'rigl', 0, sparsity=0.95):.2f}%, and the 95% row now "
                         f"averages all three seeds ({ms(row(results, 'mnist', 'rigl', sparsity=0.95))}%)",
        "mnist-magnitude-time": f"{statistics.median(magnitude_s):.0f} s (the median of {len(magnitude_s)} runs)",
        "mnist-lottery-time": f"{lottery_s[0] / 60:.0f}-{lottery_s[-1] / 60:.0f} min",
        "cifar-dense": cifar_dense(results),
        "mlp-regeneration": regeneration(results, "mlp"),
        "mlp-reproduce-cost": reproduce_cost(results, "mlp"),
        "mlp-measure-time": measure_time(results, "mlp"),
        "mlp-compare-rows": compare_rows(results, "mlp"),
        "mlp-rows": str(leaderboard_rows(results, "mlp")),
        "mnist-tied-8x": tied_at(results, "mnist", 8),
        **{f"{suite}-params": dense_params(results, suite) for suite in ("mlp", "mnist", "cifar")},
        "cifar-epoch": cifar_epoch(results),
        "int8-output-gap": int8_output_gap(results),
    }


def one_shot_table(results: Path) -> str:
    """RESULTS.md's one-shot pruning table: each suite's 50/80/90% and 2:4 rows, and the 80% rows
    fine-tuned (wanda has none)."""
    settings = [("50%", MILD[0]), ("80%", {"sparsity": 0.8, **ONE_SHOT}), ("90%", {"sparsity": 0.9, **ONE_SHOT}),
                ("2:4", MILD[1])]
    lines = []
    for suite in ("mlp", "mnist"):
        for label, params in settings:
            lines.append([suite, label, *(ms(row(results, suite, m, **params, **calibrated(m)))
                                          for m in ("sparsegpt", "wanda", "magnitude-oneshot"))])
        tuned = {"sparsity": 0.8, "n": 0, "finetune": True}
        lines.append([suite, f"80%, fine-tuned {load_suite(suite).training.finetune_epochs} epochs",
                      ms(row(results, suite, "sparsegpt", **tuned, calibration_samples=CALIBRATION)), "",
                      ms(row(results, suite, "magnitude-oneshot", **tuned))])
    return "\n" + tabulate(lines, ["suite", "setting", "sparsegpt", "wanda", "magnitude-oneshot"], tablefmt="github",
                           disable_numparse=True) + "\n"


def calibrated(method: str) -> dict[str, int]:
    """The calibration parameter of the methods that take one (not magnitude-oneshot, rtn)."""
    return {} if method in ("magnitude-oneshot", "rtn") else {"calibration_samples": CALIBRATION}


def gptq_table(results: Path) -> str:
    """RESULTS.md's low-bit table: gptq and round-to-nearest at 4 and 3 bits."""
    lines = [[suite, str(bits), *(ms(row(results, suite, m, bits=bits, finetune=False, **calibrated(m)))
                                  for m in ("gptq", "rtn"))]
             for suite in ("mlp", "mnist") for bits in (4, 3)]
    return "\n" + tabulate(lines, ["suite", "bits", "gptq", "rtn"], tablefmt="github", disable_numparse=True) + "\n"


def finetuned_gap(results: Path) -> str:
    """The most that SparseGPT's and one-shot magnitude's 80% rows, fine-tuned, lie from
    `dense-ft`, pts, on either suite."""
    tuned = {"sparsity": 0.8, "n": 0, "finetune": True}
    gaps = [abs(row(results, s, m, **tuned, **calibrated(m)).mean - row(results, s, "dense-ft").mean)
            for s in ("mlp", "mnist") for m in ("sparsegpt", "magnitude-oneshot")]
    return f"{max(gaps):.2f}"


def lead(results: Path, suite: str, finetune: bool) -> float:
    """SparseGPT's lead over one-shot magnitude at 80%, pts."""
    at = {"sparsity": 0.8, "n": 0, "finetune": finetune}
    return (row(results, suite, "sparsegpt", **at, calibration_samples=CALIBRATION).mean
            - row(results, suite, "magnitude-oneshot", **at).mean)


# The CPU timing runs of the cifar suite (leaderboard-custom.csv): budget -> the models timed
CIFAR_TIMING = {"1+1 epochs, limit_train=2000, limit_test=1000": ("dense", "filter-l1", "ptq-int8"),
                "2+1 epochs, limit_train=10000": ("dense", "ptq-int8")}
MODEL = {"dense": "dense ResNet-20", "filter-l1": "filter-l1, 50% of channels",
         "ptq-int8": "ptq-int8 (oneDNN int8 through Inductor)"}


def cifar_timing(results: Path) -> dict[str, pd.Series]:
    """Each CPU timing run's rows (one seed each), by budget and method."""
    t = pd.read_csv(results / "cifar" / "leaderboard-custom.csv")
    return {(budget, m): t[(t.budget == budget) & (t.method == m)].squeeze(axis=0)
            for budget, methods in CIFAR_TIMING.items() for m in methods}


def cifar_latency_table(results: Path, budget: str, flops: bool) -> str:
    """RESULTS.md's table of one cifar CPU timing run: latency at batch 1 and 256, and how much
    faster than dense at 256."""
    rows = cifar_timing(results)
    dense = rows[(budget, "dense")]
    lines = []
    for m in CIFAR_TIMING[budget]:
        r = rows[(budget, m)]
        faster = "" if m == "dense" else f" ({dense['latency_b256_ms'] / r['latency_b256_ms']:.1f}x faster)"
        lines.append([MODEL[m], *([f"{r['flops_effective_M']:.1f}"] if flops else []), f"{r['latency_b1_ms']:.3f}",
                      f"{r['latency_b256_ms']:.1f}{faster}"])
    headers = ["model", *(["eff. MFLOPs"] if flops else []), "latency b1 (ms)", "latency b256 (ms)"]
    return "\n" + tabulate(lines, headers, tablefmt="github", disable_numparse=True) + "\n"


DENSE_RUNTIMES = ("", "onnxruntime_", "openvino_")  # speedup column infixes: eager, ORT, OpenVINO
EVERY_RUNTIME = (*DENSE_RUNTIMES, "torch_csr_")


def speedups(results: Path, suite: str, method: str, params: dict[str, object], runtimes: tuple[str, ...],
             batches: tuple[int, ...] = (1, 256)) -> list[float]:
    """A row's measured speedups (median over seeds of the paired median ratio) in `runtimes` at
    `batches`, the cells it has."""
    found = pick(unrounded(results, suite), method, **params)
    if found is None:
        raise LookupError(f"results/{suite}/runs: no standard row {method} {params}")
    cells = [found.get(f"speedup_{r}b{b}_x") for r in runtimes for b in batches]
    return [float(c) for c in cells if c is not None and pd.notna(c)]


def extent(values: list[float], digits: int = 1) -> str:
    """min-max of `values` at `digits` decimals (rounded as the tables round, once), or the one
    value where both print alike."""
    low, high = (f"{board.at_decimals(v, digits):.{digits}f}" for v in (min(values), max(values)))
    return low if low == high else f"{low}-{high}"


def one_shot_speedups(results: Path) -> dict[str, str]:
    """RESULTS.md's speedups of the one-shot rows of the table above (unstructured 90 and 98%, 1,024
    calibration images, no fine-tuning), the 2:4 `nm` rows and the smaller student, from the
    same leaderboard cells `benchmarks/speedups.py` prints."""
    def pruned(suites: tuple[str, ...], levels: tuple[float, ...], runtimes: tuple[str, ...],
               batches: tuple[int, ...] = (1, 256)) -> list[float]:
        return [x for suite in suites for s in levels for m in ("sparsegpt", "wanda", "magnitude-oneshot")
                for x in speedups(results, suite, m, {"sparsity": s, **ONE_SHOT, **calibrated(m)}, runtimes, batches)]

    both = ("mlp", "mnist")
    nm = {suite: {"n": 2, "m": 4} for suite in both}
    student = {suite: speedups(results, suite, "student", {}, EVERY_RUNTIME) for suite in both}
    theoretical = {suite: float(pick(table(results, suite), "student")["theoretical_speedup_x"])
                   for suite in both}
    return {
        "speedup-dense-runtimes": extent(pruned(both, (0.9, 0.98), DENSE_RUNTIMES), 2),
        "speedup-csr-mlp": f"{extent(pruned(('mlp',), (0.9,), ('torch_csr_',), (256,)))}x at 90% and "
                           f"{extent(pruned(('mlp',), (0.98,), ('torch_csr_',), (256,)))}x at 98%",
        "speedup-csr-magnitude": extent(speedups(results, "mlp", "magnitude", {"sparsity": 0.98}, ("torch_csr_",), (256,))),
        "speedup-csr-mnist": f"{max(pruned(('mnist',), (0.9, 0.98), ('torch_csr_',), (256,))):.1f}x",
        "speedup-csr-b1": extent(pruned(both, (0.9, 0.98), ('torch_csr_',), (1,))),
        "speedup-nm": f"{extent([x for s in both for x in speedups(results, s, 'nm', nm[s], DENSE_RUNTIMES)])}x in "
                      f"the dense runtimes, "
                      f"{extent([x for s in both for x in speedups(results, s, 'nm', nm[s], ('torch_csr_',))], 2)}x",
        "speedup-student": " and ".join(f"{extent(student[s])}x on {s} (theoretical {theoretical[s]:.1f}x)"
                                        for s in both),
    }


def cifar_gpu(results: Path) -> dict[str, str]:
    """RESULTS.md's GPU windows: the first's cifar dense model of seed 0 and the Deep Compression
    runs from it, and the second's filter-l1 run, from their records."""
    (dense,) = window_records(results, FIRST_WINDOW, "dense")
    m = dense["metrics"]
    dc = sorted(r["run_time_s"] for r in window_records(results, FIRST_WINDOW, "deep-compression", made=4))
    (filter_l1,) = window_records(results, SECOND_WINDOW, "filter-l1")
    return {"cifar-dense-record": f"{100 * m['accuracy']:.2f}% top-1 on the JPEG test split, {m['train_time_s']:.1f} s "
                                  f"of training, {dense['run_time_s']:.1f} s for the whole run with measurement; "
                                  f"latency of that model on the H100: {m['latency_b1_ms']:.2f} ms at batch 1 and "
                                  f"{m['latency_b256_ms']:.2f} ms at batch 256",
            "cifar-deep-compression-time": f"{dc[0]:.0f}-{dc[-1]:.0f} s each, one at a time: about "
                                           f"{3600 / statistics.mean(dc):.0f} runs per hour (3,600 s over their "
                                           "mean)",
            "cifar-filter-l1-time": f"{filter_l1['run_time_s']:.0f} s"}


ONE_SHOT_METHODS = ("sparsegpt", "wanda", "gptq", "rtn", "magnitude-oneshot")


def one_shot_provenance(results: Path) -> str:
    """The commits and machines of the records behind RESULTS.md's one-shot tables."""
    recs = [r for suite in ("mlp", "mnist") for r in standard_records(results, suite)
            if r["config"]["method"] in ONE_SHOT_METHODS and r["status"] == "ok"]
    commits = Counter(r["env"]["git_commit"][:7] for r in recs)
    machines = sorted({r["env"]["device_name"].split(" [")[0] for r in recs})
    made = [f"{c} ({n})" for c, n in sorted(commits.items())]
    return (f"{len(recs)} records, of commits " + (", ".join(made[:-1]) + " and " if len(made) > 1 else "")
            + made[-1] + ", made on the " + " and the ".join(machines))


def results_md(results: Path) -> dict[str, str]:
    """benchmarks/RESULTS.md's blocks."""
    sparsegpt = {n: row(results, "mlp", "sparsegpt", sparsity=0.9, calibration_samples=n, **ONE_SHOT)
                 for n in (128, CALIBRATION)}
    dense = row(results, "mlp", "dense")
    first, second = CIFAR_TIMING
    timing = cifar_timing(results)
    gap = timing[(first, "dense")]["latency_b256_ms"] / timing[(second, "dense")]["latency_b256_ms"] - 1
    seeds = tabulate([[str(s), f"{seed_accuracy(results, 'mlp', 'dense', s):.2f}%"] for s in range(dense.n)],
                     ["seed", "AMD EPYC (committed record)"], tablefmt="github", disable_numparse=True)
    return {
        **cifar_gpu(results),
        **one_shot_speedups(results),
        "cifar-cpu-latency": cifar_latency_table(results, first, flops=True),
        "cifar-cpu-latency-static": cifar_latency_table(results, second, flops=False),
        "cifar-dense-latency-gap": f"{gap:.0%}",
        "dense-ft": f"{ms(row(results, 'mlp', 'dense-ft'))} (mlp), {ms(row(results, 'mnist', 'dense-ft'))} (mnist)",
        "one-shot-provenance": one_shot_provenance(results),
        "one-shot-pruning": one_shot_table(results),
        "one-shot-low-bit": gptq_table(results),
        "finetuned-gap": finetuned_gap(results),
        "sparsegpt-lead": f"mnist: {lead(results, 'mnist', False):+.2f} pts without, "
                          f"{lead(results, 'mnist', True):+.2f} with",
        "sparsegpt-calibration": f"mlp: {ms(sparsegpt[128])} from 128 images, "
                                 f"{ms(sparsegpt[CALIBRATION])} from 1,024",
        "mlp-measure-time": measure_time(results, "mlp"),
        "mlp-dense-seeds": "\n" + seeds + f"\n\nThe seed standard deviation of the committed `dense` row is "
                                         f"{dense.std:.2f} pts.\n",
    }


def generated(results: Path) -> dict[str, dict[str, str]]:
    """Every file's blocks, by path relative to the checkout, from the records as they are now."""
    standard_records.cache_clear()  # records read by an earlier call may have changed since
    table.cache_clear()
    unrounded.cache_clear()
    return dict(zip(FILES, (readme(results), results_md(results))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="the checkout whose README.md and RESULTS.md hold the blocks")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="refresh the blocks in place")
    mode.add_argument("--check", action="store_true", help="exit 1 naming every stale or missing block")
    args = p.parse_args(argv)
    try:
        files = generated(args.results)
    except LookupError as e:  # a record a block quotes is gone: the prose around it needs a writer
        print(f"readme_figures: {e}", file=sys.stderr)
        return 1
    if args.check:
        problems = [line for name, found in files.items()
                    for line in blocks.stale(args.root / name, found, "python benchmarks/readme_figures.py --write")]
        print("\n".join(problems) or "the generated figures are up to date",
              file=sys.stderr if problems else sys.stdout)
        return 1 if problems else 0
    for name, found in files.items():
        if args.write:
            try:
                blocks.write(args.root / name, found)
            except ValueError as e:
                print(e, file=sys.stderr)
                return 1
        else:
            for block, body in found.items():
                print(f"{name} {block}: {body}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
