"""Theoretical vs measured speedup, per method family and runtime, from the run records.

For each suite, data source and budget: each method and setting's theoretical speedup (dense FLOPs
over effective FLOPs) beside its measured speedup in every runtime at every batch size of the
suite (the dense model's latency over its own in the same runtime, timed side by side; median
over seeds of the median pair ratio, with the median IQR in parentheses, as the leaderboard). An empty cell is a runtime that
could not take the model; the leaderboard's Markdown lists why. Rows are grouped by family, so one
sees at a glance which compressed forms turn fewer FLOPs into less time, and where.

    python benchmarks/speedups.py [--results results] [--suites mlp,mnist] [--settings sparsity=0.9,sparsity=0.98]

The records come from `bench run` (any budget); for a quick look on a small budget:

    bench run --suite mlp --methods dense,magnitude,filter-l1,nm,ptq-int8,magnitude+ptq-int8 --seeds 0 \\
        --epochs 1 --finetune-epochs 1 --limit-train 4000 --set magnitude.sparsity=0.9 --results-dir /tmp/speed
    python benchmarks/speedups.py --results /tmp/speed --suites mlp
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import board, records, render  # noqa: E402
from bench.plan import flat_params  # noqa: E402
from bench.registry import FAMILIES  # noqa: E402

def kept(params: dict[str, object], filters: list[tuple[str, str]]) -> bool:
    """Whether a run's parameters pass the filters ([("sparsity", "0.9")]): a run with none of the
    filtered parameters (dense, ptq-int8) always does; a chain's link parameter by its own name."""
    flat = {name.rsplit(".", 1)[-1]: str(value) for name, value in flat_params(params).items()}
    return not any(name in flat for name, _ in filters) or any(flat.get(name) == value for name, value in filters)


def speed_tables(results: Path, suite: str, filters: list[tuple[str, str]]) -> list[str]:
    """One printed table per data source and budget of the suite's successful records that pass
    the filters."""
    finished = [r for r in records.load_records(results, suite) if r["status"] == "ok"]
    if not finished:
        return [f"{suite}: no finished runs under {results}", ""]
    recs = [r for r in finished if kept(r["config"]["params"], filters)]
    if not recs:
        return [f"{suite}: no finished run passes --settings", ""]
    table, cols = board.table(recs)
    speed = [c for c in cols if c.spec.name in ("theoretical_speedup", "speedup{runtime}_b{batch}")]
    devices: dict[tuple[str, str], set[str]] = {}  # per table: the machines of its own runs, not the suite's
    for r in recs:
        key = board.row_key(r)
        devices.setdefault((key["data_source"], key["budget"]), set()).add(
            f"{r['env']['device_name']} ({r['env']['device']}, {r['env']['threads']} threads)")
    families = board.families()
    order = list(FAMILIES)
    out = []
    for (source, budget), t in table.groupby(["data_source", "budget"], sort=True):
        measured = t[[c.column for c in speed]].notna().any(axis=1)  # rows from before the deploy step have none
        rows = sorted(([board.family_of(r["method"], families), r["method"], r["setting"], int(r["seeds"]),
                        *[render.cell(r, c) for c in speed]]
                       for (_, r), timed in zip(t.iterrows(), measured) if timed),
                      key=lambda row: (order.index(row[0]) if row[0] in order else len(order), row[1:3]))
        if not rows:
            continue
        out += [f"## {suite} · {source} · {budget} · {'; '.join(sorted(devices[source, budget]))}", "",
                tabulate(rows, headers=["family", "method", "setting", "seeds", *[c.header for c in speed]],
                         tablefmt="github", disable_numparse=True), ""]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--suites", default="mlp,mnist")
    p.add_argument("--settings", default="", help="keep the rows with one of these settings (comma "
                   "list, e.g. sparsity=0.9,sparsity=0.98); rows without such a parameter are kept")
    args = p.parse_args()
    filters = [tuple(f.split("=", 1)) for f in args.settings.split(",") if f]
    if any(len(f) != 2 for f in filters):
        p.error(f"--settings takes name=value pairs, e.g. sparsity=0.9, not {args.settings!r}")
    for suite in args.suites.split(","):
        print("\n".join(speed_tables(args.results, suite, filters)))


if __name__ == "__main__":
    main()
