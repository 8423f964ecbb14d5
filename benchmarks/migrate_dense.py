"""Name the dense model that older records started from, where retraining proves which it was.

Since 50b0bbb a record of a run that loads the seed's dense model says which one: the commit
that trained it and the sha256 of its weights (`dense`, written by bench.worker). Older records
do not, and the cached models they used are gone (issue 31). This script fills `dense` in for
them where that can be established, and for no other record:

1. The model's training time T (its cache's `seconds`) is in the seed's dense record (its
   newest committed version without `dense`). A run that trains nothing of its own (one-shot
   pruning) records exactly T as its train time. The commit that trained the model is the
   oldest, by commit time, among the commits whose records in the git history carry T: the
   first command to need the model trained it.
2. Training is deterministic on one CPU kind with one thread (all 99 finished mlp reruns from
   9040bc3 reproduced the accuracy and nonzeros of the records they replaced, in the git
   history, exactly). So the seed's dense model is retrained on that CPU at the trainer, at
   every other commit whose records are to be migrated, and at a current clean commit, each
   into RETRAINED/<commit>:

       cd <checkout of COMMIT> && PYTHONPATH=$PWD python -m bench run --suite SUITE \
           --methods dense --jobs 2 --results-dir RETRAINED/COMMIT

   (PYTHONPATH, so that the checkout's code is what runs, not an editable install's).
3. Where every retrained model of a seed has the same weights (DenseWeights.sha256), whichever
   of those commits trained the cache produced exactly them. A record of that seed then gets
   `dense` = {commit: the trainer, sha256, train_time_s: T, migrated: how this was shown} if
   its run loaded the dense model (`loads_dense`, a rule checked first against the records
   that say what they loaded), its commit is one of the retrained ones and descends from the
   trainer, it was made with the retrained models' CPU, thread count and torch, its train time
   (which includes the model's) is at least T, and it has no `dense` yet. Every other record is left untouched and
   counted, with the reason, in the report.

Where the hashes differ, nothing of that seed is written: its records need a rerun
(`bench run --refresh`). Without --write the script only reports.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import files, layout, provenance, records  # noqa: E402
from bench.context import DenseWeights  # noqa: E402
from bench.plan import RunSpec, dense_epochs  # noqa: E402
from bench.registry import discover  # noqa: E402
from bench.suite import Suite, load_suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Retrained:
    """A seed's dense model as one commit's code trains it on this CPU."""
    commit: str  # full hash
    sha256: str
    machine: tuple[str, int | None, str]  # CPU, torch threads, torch version: what determinism needs


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def load_weights(path: Path) -> DenseWeights:
    """A cached dense model, as today's harness (safetensors) or an older one (torch.save of
    {"state_dict", "meta"}, read by the weights-only unpickler) wrote it."""
    if path.suffix == ".safetensors":
        return DenseWeights.load(path)
    saved = files.load_tensors(path)
    return DenseWeights(saved["state_dict"], saved["meta"])


def retrained(results: Path, suite: str, seed: int, root: Path, commit: str) -> Retrained:
    """The model `bench run --methods dense` at `commit` cached under `results`, and the CPU its
    dense record names."""
    cache = sorted(p for p in layout.cache_dir(results, suite).glob(f"dense-s{seed}-*")
                   if p.suffix in (".safetensors", ".pt"))
    dense = [r for r in records.load_records(results, suite) if r["config"]["method"] == "dense"
             and r["config"]["seed"] == seed]
    if len(cache) != 1 or len(dense) != 1:
        raise SystemExit(f"{results}: expected one cached dense model and one dense record of {suite} seed {seed}, "
                         f"found {len(cache)} and {len(dense)}")
    return Retrained(git(root, "rev-parse", commit), load_weights(cache[0]).sha256(), machine(dense[0]))


def machine(record: dict[str, Any]) -> tuple[str, int | None, str]:
    env = record["env"]
    return env["device_name"], env["threads"], env["torch"]


# A commit as a record names it: its hash (SHA-1 or SHA-256), "-dirty" for uncommitted code on it.
COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?(-dirty)?")


def commit_of(record: dict[str, Any]) -> str:
    """The commit that made `record`, "" where it names none. Records, of the history too, are
    anyone's text, and the commits they name are passed to git, which takes a word starting with
    '-' for an option: `--output=FILE` as a commit had `git show` write FILE."""
    commit = record["env"].get("git_commit")
    return commit if isinstance(commit, str) and COMMIT.fullmatch(commit) else ""


def era_seconds(root: Path, suite: str, name: str) -> float:
    """The training time of the model the older records used: that of the seed's dense record
    in its newest committed version without `dense` (a refresh since has retrained the model and
    rewritten the dense record, which then names the new model)."""
    path = f"results/{suite}/runs/{name}.json"
    for rev in git(root, "log", "--format=%H", "--", path).split():
        record = json.loads(git(root, "show", f"{rev}:{path}"))
        if "dense" not in record:
            return record["metrics"]["train_time_s"]
    raise SystemExit(f"every committed version of {path} names its dense model: nothing to migrate")


def trainer(root: Path, suite: str, seconds: float) -> str:
    """The oldest commit (by commit time) whose records in the git history carry `seconds` as
    their train time: the command that trained the cached model, or the first that used it."""
    needle = repr(seconds)
    found = set()
    for rev in git(root, "log", "--format=%H", "-S", needle, "--", f"results/{suite}/runs").split():
        for line in git(root, "grep", "-l", "-F", needle, rev, "--", f"results/{suite}/runs").splitlines():
            record = json.loads(git(root, "show", line))
            if record["metrics"].get("train_time_s") == seconds and commit_of(record):
                found.add(commit_of(record))
    if not found:
        raise SystemExit(f"no record in the history of results/{suite}/runs carries a train time of {needle} s")
    first = min(found, key=lambda c: (int(git(root, "show", "-s", "--format=%ct", c.removesuffix("-dirty"))),
                                      not c.endswith("-dirty")))  # on a tie, uncommitted code counts first
    if first.endswith("-dirty"):
        raise SystemExit(f"the dense model that trained in {needle} s was first used by uncommitted code on "
                         f"{first.removesuffix('-dirty')[:12]}: no commit can be named as its trainer")
    return first


def loads_dense(record: dict[str, Any], suite: Suite) -> bool:
    """Whether a finished run loaded the seed's dense model, as its method's code decides: a run
    that starts from it (`starts_from`, as the plan counts it), and kd, which trains its student
    from scratch with the dense model as teacher; sft loads it only with start=pretrained. (A
    skipped or failed run may have stopped before loading it.) main() checks this rule against
    the records whose runs said what they loaded."""
    discover()  # dense_epochs reads the method's `starts_from`; imports the plugins once
    config = record["config"]
    if record["status"] != "ok":
        return False
    if config["method"] == "kd":
        return True
    if config["method"] == "sft":
        return config["params"].get("start") == "pretrained"
    return dense_epochs(RunSpec(config["method"], config["params"], config["seed"]), suite) > 0


def names_dense(root: Path) -> str | None:
    """The first commit whose runs write `dense` into their records: a record made since that
    lacks it loaded no dense model (sft from scratch, say), whatever its method's default."""
    found = git(root, "log", "--reverse", "--format=%H", "-S", 'result["dense"] = {"commit"', "--", "bench").split()
    return found[0] if found else None


@functools.cache
def ancestor(root: Path, old: str, new: str) -> bool:
    return subprocess.run(["git", "-C", str(root), "merge-base", "--is-ancestor", old, new],
                          capture_output=True).returncode == 0


def rule_problem(results: Path, root: Path) -> str | None:
    """Why `loads_dense` cannot be trusted, or None: it must agree with every record, of any
    suite, whose run said what it loaded (made since `names_dense`), before it is used on those
    that did not. (A chain follows its first link's rule, as the plan counts it.)"""
    since = names_dense(root)
    if since is None:
        return "no commit in this history makes runs name their dense model: the rule cannot be checked"
    wrong, checked = [], 0
    for suite_name in layout.suites_with_records(results):
        suite = load_suite(suite_name)
        for name, r in records.named_records(results, suite_name):
            commit = commit_of(r)
            if r["status"] == "ok" and commit and ancestor(root, since, commit):
                checked += 1
                if ("dense" in r) != loads_dense(r, suite):
                    wrong.append(f"{suite_name}/{name}")
    if wrong:
        return f"loads_dense disagrees with what {len(wrong)} runs recorded ({', '.join(wrong[:5])})"
    return None if checked else "no record says what its run loaded: the rule cannot be checked"


def migrate(results: Path, suite_name: str, named: list[tuple[str, dict[str, Any]]], seed: int,
            models: list[Retrained], trained_by: str, seconds: float, root: Path, at: str,
            write: bool) -> Counter[str]:
    """Fill `dense` into the seed's records that qualify (see the module's docstring); returns
    how many records met each outcome."""
    suite = load_suite(suite_name)
    outcome: Counter[str] = Counter()
    hashes = {m.sha256 for m in models}
    devices = {m.machine for m in models}
    commits = {m.commit for m in models}
    if trained_by not in commits:
        raise SystemExit(f"seed {seed}: the trainer {trained_by[:12]} is not among the retrained commits")
    for name, record in named:
        if record["config"]["seed"] != seed or not loads_dense(record, suite):
            continue
        commit = commit_of(record)
        if "dense" in record:
            why = "already names its dense model"
        elif len(hashes) != 1 or len(devices) != 1:
            why = "left for a rerun: the retrained models differ"
        elif machine(record) not in devices:
            why = "left for a rerun: made on another CPU, thread count or torch"
        elif commit not in commits:
            why = f"left for a rerun: its commit {commit[:12] or 'unknown'} was not retrained"
        elif not ancestor(root, trained_by, commit):
            why = "left for a rerun: made before the trainer"
        elif record["metrics"].get("train_time_s", 0.0) < seconds:  # a run is charged the model's time
            why = "left for a rerun: its train time is less than the model's, so it started from another"
        else:
            why = "migrated" if write else "would migrate"
            if write:
                record["dense"] = {"commit": trained_by, "sha256": next(iter(hashes)),
                                   "train_time_s": seconds,
                                   "migrated": {"by": f"benchmarks/migrate_dense.py at {at}",
                                                "retrained_at": sorted(commits), "device_name": next(iter(devices))[0]}}
                files.write_json_atomic(layout.runs_dir(results, suite_name) / f"{name}.json", record)
        outcome[why] += 1
    return outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", required=True)
    p.add_argument("--retrained", type=Path, required=True,
                   help="a folder with one results folder per commit, named by the commit (step 2)")
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--root", type=Path, default=ROOT, help="the git checkout whose history is searched")
    p.add_argument("--write", action="store_true", help="write the records (else report only)")
    args = p.parse_args(argv)
    at = provenance.checkout_commit(ROOT)  # the code that migrates ("-dirty" if uncommitted)
    if problem := rule_problem(args.results, args.root):
        print(f"{problem}: nothing written")
        return 2
    status = 0
    named = records.named_records(args.results, args.suite)  # read once; each seed's are written in place
    for name, dense in sorted(((n, r) for n, r in named
                               if r["config"]["method"] == "dense"), key=lambda nr: nr[1]["config"]["seed"]):
        seed, seconds = dense["config"]["seed"], era_seconds(args.root, args.suite, name)
        trained_by = trainer(args.root, args.suite, seconds)
        models = [retrained(folder, args.suite, seed, args.root, folder.name)
                  for folder in sorted(args.retrained.iterdir()) if (folder / args.suite).is_dir()]
        same = len({m.sha256 for m in models}) == 1
        print(f"{args.suite} seed {seed}: trained by {trained_by[:12]} in {seconds:.2f} s; retrained at "
              f"{', '.join(m.commit[:7] for m in models)}: "
              + ("identical weights " + models[0].sha256[:16] if same else
                 "DIFFERENT weights (" + ", ".join(f"{m.commit[:7]} {m.sha256[:16]}" for m in models) + ")"))
        outcome = migrate(args.results, args.suite, named, seed, models, trained_by, seconds, args.root, at,
                          args.write)
        for why, n in sorted(outcome.items()):
            print(f"  {n:4d} {why}")
        status |= not same or len({m.machine for m in models}) != 1
    return status


if __name__ == "__main__":
    sys.exit(main())
