"""The Python API, for notebooks and scripts: run a suite, load its results as a DataFrame.

    import bench
    records = bench.run(suite="mlp", methods="magnitude,dense", seeds=[0], epochs=2, limit_train=5000)
    table = bench.load_results("results", "mlp")          # the leaderboard: one row per setting
    runs = bench.load_results("results", "mlp", per="run")  # one row per run (seed)

`run` takes `bench run`'s options as keyword arguments and goes through the same parser and
code, so that the API and the command line cannot drift apart: a bad option raises ValueError
with the command line's message, bad input the command line's error (SuiteError, ParameterError).
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from bench import board, records


def run(suite: str | Path, methods: str | list[str] = "all", **options: Any) -> list[dict[str, Any]]:
    """Run `methods` (a `--methods` string or a list of names) on `suite` and return the records
    of its runs (those finished before included), as `bench run` would. `options` are
    `bench run`'s, named with underscores: seeds=[0, 1], results_dir="results", epochs=2,
    limit_train=5000, force=True, jobs=2, dry_run=True (returns []), set={"magnitude":
    {"sparsity": 0.9}} for --set. The leaderboard files are rebuilt, as by the command."""
    from bench import cli, cli_run

    if _in_a_reimported_script():
        raise RuntimeError("bench.run() was called while a worker process of bench imported the script that "
                           "started it: put the call under `if __name__ == \"__main__\":`")
    argv = ["run", "--suite", str(suite), "--methods", methods if isinstance(methods, str) else ",".join(methods)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if name == "set":
            argv += [f"--set={method}.{param}={v}" for method, params in value.items() for param, v in params.items()]
        elif value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv.append(f"{flag}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message):
            args = cli.parse(argv)
    except SystemExit:
        raise ValueError(message.getvalue().strip().replace("bench run: error: ", "")) from None
    return cli_run.run_records(args)[1]


def _in_a_reimported_script() -> bool:
    """Whether this call comes from a script that multiprocessing is running again, as
    `__mp_main__`, in a process it starts (bench's workers, or their fork server): a script
    without the `__main__` guard would otherwise start a second sweep there, which waits for the
    first one's claims while the first waits for its workers."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__mp_main__":
            return True
        frame = frame.f_back
    return False


def load_results(results_dir: str | Path, suite: str, *, budget: Literal["standard", "custom", "all"] = "standard",
                 per: Literal["row", "run"] = "row") -> pd.DataFrame:
    """A suite's stored results as a DataFrame: per="row", the leaderboard's rows (mean over
    seeds, accuracy's std and its change against `dense` and `dense-ft`); per="run", one row per
    finished run. `budget` keeps the standard-budget runs, the custom-budget ones, or all (a
    custom budget's rows are told apart by the `budget` column). Columns are the CSV's, and
    `setting_params`: each row's parameters as a mapping (the `setting` column spells them out).
    A file in the runs folder that is no usable record is named on stderr, as the leaderboard
    names it: a seed missing from a row's mean is not left unnoticed. A results folder that does
    not exist raises FileNotFoundError, as `bench leaderboard` refuses it: an empty table would
    read as a suite without records (a script run outside the checkout, say)."""
    if budget not in ("standard", "custom", "all") or per not in ("row", "run"):
        raise ValueError(f"budget is standard, custom or all, and per is row or run; got {budget!r}, {per!r}")
    if not Path(results_dir).is_dir():
        raise FileNotFoundError(f"no results folder {Path(results_dir).resolve()}: pass the path of one (the "
                                "checkout's results, or results-quick where a quick run wrote)")
    recs = [r for _, r in records.reported_records(Path(results_dir), suite, "the results")
            if budget == "all" or r["standard_budget"] == (budget == "standard")]
    cols = board.table_columns(recs)
    table = board.frame(recs, cols)
    return table if per == "run" or table.empty else board.rounded(board.aggregate(table, cols), cols)
