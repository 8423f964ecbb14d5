"""Where a results folder keeps what: the one module that knows its layout.

    RESULTS/SUITE/runs/NAME.json        a run's record; NAME is METHOD-HASH-sSEED (bench.plan.run_key)
    RESULTS/SUITE/logs/NAME.log         its log, where the run was made with one (not committed)
    RESULTS/SUITE/cache/NAME.safetensors  a seed's dense model, NAME dense-sSEED-HASH (bench.dense_stage)
    RESULTS/SUITE/claims/               which command is running what now (bench.locks)
    RESULTS/SUITE/leaderboard*.csv|md, *.png  the leaderboard files (bench.leaderboard)
    RESULTS/site/                       the static site (bench.site)
    RESULTS/checks.json                 the literature checks' verdicts, which the site shows

The paths of records, logs, cached models, claims, the site and checks.json are built here, so
that the driver, the CLI, the readers and the tests agree on them; the leaderboard files' names
are bench.leaderboard's (OUTPUTS). The folders are the harness's own: one that is a symbolic
link is refused before anything is written into it (`refuse_links`). Runs at an overridden
budget go to a results folder of their own by default, ./results-quick (QUICK_RESULTS), which `bench run` writes
and `bench leaderboard` points to.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from bench.errors import ResultsFolderError

CHECKS = "checks.json"  # written by benchmarks/literature_checks.py
SITE = "site"
QUICK_RESULTS = "results-quick"  # where runs at an overridden budget go by default: git-ignored
# The README's first session's quick run, which `bench --help` offers and a missing QUICK_RESULTS names
FIRST_QUICK_RUN = ("bench run --suite mlp --methods magnitude,dense --seeds 0 --epochs 2 --finetune-epochs 1 "
                   "--limit-train 5000")


def suite_dir(results_dir: Path | str, suite: str) -> Path:
    return Path(results_dir) / suite


def runs_dir(results_dir: Path | str, suite: str) -> Path:
    """The folder of a suite's records: what the leaderboards are made from."""
    return suite_dir(results_dir, suite) / "runs"


# A record's method part: a method name (bench.registry.METHOD_NAME) or a chain of them with '+'.
RECORD_METHOD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_+-]*")


def record_path(results_dir: Path | str, suite: str, method: str, seed: int, digest: str) -> Path:
    """A run's record, named by its method, the first 12 digits of its identity hash and its seed.
    ValueError for a method that is no name: the path must stay inside the runs folder."""
    if not RECORD_METHOD.fullmatch(method):
        raise ValueError(f"{method!r} is no method name: a record path must stay inside {runs_dir(results_dir, suite)}")
    return runs_dir(results_dir, suite) / f"{method}-{digest[:12]}-s{seed}.json"


def cache_dir(results_dir: Path | str, suite: str) -> Path:
    """The folder of a suite's cached dense models."""
    return suite_dir(results_dir, suite) / "cache"


def dense_path(results_dir: Path | str, suite: str, seed: int, key: str) -> Path:
    """A seed's cached dense model, named by the hash of its identity (bench.records.dense_config)."""
    return cache_dir(results_dir, suite) / f"dense-s{seed}-{key}.safetensors"


def logs_dir(results_dir: Path | str, suite: str) -> Path:
    return suite_dir(results_dir, suite) / "logs"


LOG_ERROR_MARK = "[bench: the run ended"  # where a run's log turns from its output to its error (bench.sweep)


def log_path(artifact: Path) -> Path:
    """The log of what made a record or a cached dense model: logs/ beside its folder, by its name."""
    return artifact.parent.parent / "logs" / f"{artifact.stem}.log"


def claims_dir(results_dir: Path | str, suite: str) -> Path:
    return suite_dir(results_dir, suite) / "claims"


def written_by_a_run(results_dir: Path | str, suite: str) -> list[Path]:
    """The folders of a suite that `bench run` writes into (claims: bench.locks checks its own)."""
    return [suite_dir(results_dir, suite), runs_dir(results_dir, suite), logs_dir(results_dir, suite),
            cache_dir(results_dir, suite)]


def refuse_links(folders: Iterable[Path]) -> None:
    """ResultsFolderError naming the first of `folders` that is a symbolic link. The harness
    writes only into folders of its own: a results folder from elsewhere (a clone: git keeps
    links) holding `runs -> ~/.ssh` would otherwise have records, logs and models written
    wherever it points. (A link given as --results-dir itself is the user's choice.)"""
    for folder in folders:
        if Path(folder).is_symlink():
            raise ResultsFolderError(f"{folder} is a symbolic link: the harness writes only into folders of its own, "
                                     "where a link could send its files anywhere; replace it with a folder")


def no_quick_results_yet(folder: Path | str) -> str | None:
    """Why `folder` is not there, where it is ./results-quick, which no quick run has made yet (the
    first session's `--results-dir results-quick` typed before its run): "run bench where the
    results folder is (the checkout)" was said to a reader in the checkout. None otherwise."""
    if Path(folder).exists() or Path(folder).resolve() != Path(QUICK_RESULTS).resolve():
        return None
    return f"no results folder {folder} yet: a run at an overridden budget writes it ({FIRST_QUICK_RUN})"


def suites_with_records(results_dir: Path | str) -> list[str]:
    """The suites that have a records folder under `results_dir`, by name."""
    return sorted(p.parent.name for p in Path(results_dir).glob("*/runs"))


def folder_too_deep(folder: Path | str, option: str) -> str | None:
    """Why `folder`, given as a results folder, is not one, where it is a suite's folder in one
    (RESULTS/SUITE, whose runs/ holds records) or a suite's records folder (RESULTS/SUITE/runs)
    and holds no suite's records of its own, naming the results folder to pass instead
    (`option`: how the command takes it, "--results-dir " or ""); None otherwise. `results/mlp`
    is what a newcomer who has just read results/mlp/leaderboard.md passes: `bench compare` called
    it a results folder sharing no suite, `bench leaderboard` said it held no records, and `bench
    run` wrote into results/mlp/mlp/, where no leaderboard of the checkout looks."""
    folder = Path(folder)
    real = folder.resolve()  # the folders' own names: "." and "runs" typed inside them name no suite
    if suites_with_records(folder):
        return None
    if any((folder / "runs").glob("*.json")):  # records, not any runs/ folder (TensorBoard's logs)
        what, suite, up = "the folder", real, ".."
    elif real.name == "runs" and any(folder.glob("*.json")):
        what, suite, up = "the records folder", real.parent, "../.."
    else:
        return None
    results = Path(os.path.normpath(folder / up))  # as the user wrote it: `runs` typed in results/mlp is ../..
    if results.resolve() != suite.parent:  # through a link, ".." is not the folder above: the real one
        results = suite.parent
    return (f"{folder} is {what} of suite '{suite.name}' in the results folder {results}, not a results folder "
            f"itself: pass {option}{results}")
