"""The dense stage: each seed's dense model, trained once and cached, that the seed's method runs
start from.

The driver (bench.runner, bench.sweep) tracks a seed's model as a `Dense`. Before its runs
start it `load`s the cache file (written by an earlier command, or by another one just now); a
model it must train comes back from a worker to `trained`, which caches it. A cache file that
cannot be read, or under --refresh one another commit or device trained, is trained again rather
than failing every run of its seed. Rows compare methods from one starting point, so a newly
trained model is held against the one the seed's recorded runs started from (`started_from`) and
a difference is named.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import files, layout, provenance, records
from bench.context import DenseWeights
from bench.errors import counted, first_line, printable
from bench.locks import Claim
from bench.records import Record
from bench.worker import Outcome


@dataclass
class Dense:
    """A seed's dense model as the driver tracks it: loaded from the cache, or trained."""

    seed: int
    path: Path  # its cache file
    claim: Claim  # held while this command trains it, so that two commands train it once
    weights: DenseWeights | str | None = None  # the model, or why it could not be trained
    busy: bool = False  # a worker is training it
    recorded: dict[str, list[Record]] = field(default_factory=dict)  # sha256 -> the recorded runs that started from it


def load(d: Dense, log: Callable[[str], None], here: provenance.Here | None) -> DenseWeights | None:
    """A cached dense model, or None (to retrain, its file removed) where `unusable` says why."""
    weights, why = unusable(d, here)
    if why:
        log(printable(f"dense model, seed {d.seed}: {why}"))
        d.path.unlink(missing_ok=True)
        return None
    log(f"dense model, seed {d.seed}: from cache {d.path} ({100 * weights.meta['accuracy']:.2f}%)")
    return weights


def unusable(d: Dense, here: provenance.Here | None) -> tuple[DenseWeights | None, str | None]:
    """The seed's cached dense model, or None and why it is trained again (the dry run's plan
    says it too, changing nothing): no file; a file that cannot be read (a truncated cache file is
    named and replaced, never the cause of every run of its seed failing); a file that names
    another dense model than its own name does (`identity`, which `trained` writes; a file older
    than that names none): one copied over another seed's, budget's or suite's file of the same
    shapes was used as that model, its runs' rows starting from another seed's weights. Under
    --refresh, also one another commit or device trained (or that predates the recording of
    that): the refreshed records must start from this code's model."""
    if not d.path.exists():
        return None, "not cached"
    try:
        weights = DenseWeights.load(d.path)
    except Exception as e:  # noqa: BLE001 - any unreadable cache file is retrained
        return None, f"the cache file {d.path} is unreadable ({type(e).__name__}: {e}); training it again"
    if weights.meta.get("identity", d.path.stem) != d.path.stem:
        return None, (f"the cache file {d.path} holds another dense model ({str(weights.meta['identity'])[:60]}: "
                      "a file copied or renamed?); training it again")
    if here and not here.made(weights.meta):
        return None, (f"the cache {d.path} was trained by {weights.meta.get('git_commit', 'unrecorded code')} on "
                      f"{weights.meta.get('device_name', 'an unrecorded device')}; --refresh trains it again")
    return weights, None


def trained(d: Dense, outcome: Outcome, log: Callable[[str], None], commit: str | None) -> None:
    """A worker's training of `d` came back: cache the model with the commit that trained it
    (its checkpoint goes), or keep why it failed, which the seed's runs then fail with. The log
    it came back with (a Ray node's) is written last: one that cannot be written loses no model."""
    d.busy = False
    if outcome.dense is not None:
        outcome.dense.meta["git_commit"] = commit  # for --refresh: the code that trained it
        outcome.dense.meta["identity"] = d.path.stem  # which dense model it is, whatever the file is renamed to
        if os.environ.get(provenance.COMMIT_VARIABLE):
            outcome.dense.meta["commit_from_env"] = True  # no checkout vouched for it
        files.atomic_write(d.path, outcome.dense.save)
        d.path.with_suffix(".ckpt").unlink(missing_ok=True)  # the cached model replaces it
        d.weights = outcome.dense
        meta = outcome.dense.meta
        log(f"dense model, seed {d.seed}: {100 * meta['accuracy']:.2f}% after {counted(meta['epochs'], 'epoch')} "
            f"({meta['seconds']:.1f}s), cached in {d.path}")
        if d.recorded and outcome.dense.sha256() not in d.recorded:
            log(_not_the_recorded(d, outcome.env))
    else:
        d.weights = f"{outcome.result['status']}: {first_line(outcome.result['error'])}"
        log(f"dense model, seed {d.seed}: {outcome.result['status'].upper()} "
            f"({first_line(outcome.result['error'])}); the runs of this seed that need it fail")
    d.claim.release()
    if outcome.log is not None:
        files.write_text_atomic(layout.log_path(d.path), outcome.log + "\n")


def started_from(recs: list[Record]) -> dict[str, dict[str, list[Record]]]:
    """Per dense identity (its config hash), the dense models (by sha256) that the recorded runs
    started from: what a newly trained one should equal, for its runs' rows to sit beside theirs."""
    out: dict[str, dict[str, list[Record]]] = {}
    for r in recs:
        sha = (r.get("dense") or {}).get("sha256")
        if isinstance(sha, str):
            key = records.config_hash(records.dense_of(r["config"]))
            out.setdefault(key, {}).setdefault(sha, []).append(r)
    return out


def _not_the_recorded(d: Dense, env: dict[str, Any]) -> str:
    """A warning: the dense model just trained is not the one the recorded runs of its seed
    started from, so this command's rows differ from theirs by their starting point as well as
    by method (within seed noise, but not the same-model comparison a reader assumes). On a
    CPU the usual cause is the thread count, which changes the order of float sums. Printable:
    it quotes the records' machine names, a tamperer's text."""
    theirs = max(d.recorded.values(), key=len)
    threads = Counter(r["env"].get("threads") for r in theirs).most_common(1)[0][0]
    machines = sorted({r["env"].get("device_name", "?") for r in theirs})
    made = f"{counted(threads, 'thread')} on {'; '.join(machines)}"
    here = f"{counted(env.get('threads'), 'thread')} on {env.get('device_name', '?')}"
    hint = (f"; try `--threads {threads}`, as they were made" if env.get("device") == "cpu" and threads != env.get("threads")
            and machines == [env.get("device_name")] else "")
    return printable(f"dense model, seed {d.seed}: warning: not the model that {counted(len(theirs), 'recorded run')} "
                     f"of seed {d.seed} started from (made with {made}; this one with "
                     f"{here}), so this command's rows differ from theirs by their dense model too{hint}")
