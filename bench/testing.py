"""A plugin author's one-line check, for their own test suite:

    from bench.testing import check_method

    def test_my_method(tmp_path):
        check_method("my-method", results_dir=tmp_path)

It checks what the harness will rely on, in the order a user would meet a problem: that the
plugin imports and registers its name as a `Method` with a description, a family that is no
misspelling of a known one (`"Pruning"`; a new family is fine: it gets its own panel), and
parameters whose defaults build (and, with `params`, that those build); then one tiny real run on
a suite (by default `mlp`: LeNet-300-100 on 1,000 MNIST images, 1 epoch, in this process) through
`bench run`'s own code, whose record must be finished, well-formed and readable back. A failure
raises AssertionError saying which check failed and why: the run's error and the end of its log.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

from bench import layout, records, registry
from bench.errors import ParameterError

TINY = {"seeds": [0], "epochs": 1, "finetune_epochs": 1, "limit_train": 1000, "limit_test": 500,
        "threads": 1, "executor": "inline"}


def check_registration(name: str, params: dict[str, Any] | None = None) -> type[registry.Method]:
    """The method class registered as `name`, after checking its registration, description,
    family and parameters (the defaults, and `params` where given, build)."""
    registry.load([name])
    assert name not in registry.BROKEN, f"the plugin of '{name}' fails to import: {registry.BROKEN[name]}"
    assert name in registry.METHODS, registry.unknown_method(name)
    cls = registry.METHODS[name]
    assert cls.description(), f"'{name}' has no description: give its class a docstring, first line a summary"
    near = difflib.get_close_matches(str(cls.family).lower(), registry.FAMILIES, n=1, cutoff=0.75)
    assert cls.family in registry.FAMILIES or not near, (
        f"'{name}' has family {cls.family!r}: did you mean {near[0]!r}? A family outside the leaderboard's "
        f"({', '.join(registry.FAMILIES)}) gets a panel of its own")
    fields = {f.name for f in dataclasses.fields(cls)}
    assert cls.sweep is None or cls.sweep in fields, f"'{name}' sweeps {cls.sweep!r}, which is no parameter of it"
    for tried in ({}, params or {}):
        try:
            cls.build(dict(tried))  # build coerces the values of the mapping it is given
        except (ParameterError, TypeError, ValueError) as e:
            raise AssertionError(f"'{name}' cannot be built from {tried or 'its defaults'}: {e}") from None
    return cls


def check_method(name: str, *, results_dir: str | Path, suite: str | Path = "mlp",
                 params: dict[str, Any] | None = None, data_dir: str | Path | None = None,
                 **options: Any) -> dict[str, Any]:
    """Check method `name`'s registration (`check_registration`), then run it once on `suite`
    at a tiny budget (TINY; `options` override it with `bench run`'s options) into
    `results_dir`, and return its record after checking that the run finished and its record
    is well-formed. `params` are the method's parameters for the run (its defaults otherwise: a
    method that sweeps a parameter runs once, at that parameter's default, not at every level);
    `data_dir` is where the data is ($BENCH_DATA_DIR, or downloaded, by default)."""
    from bench.api import run

    cls = check_registration(name, params)
    if cls.sweep and cls.sweep not in (params or {}):
        params = {cls.sweep: cls.parameters()[cls.sweep], **(params or {})}
    budget = {**TINY, **options, **({"data_dir": data_dir} if data_dir else {})}
    got = run(suite, [name], results_dir=results_dir, force=True, **({"set": {name: params}} if params else {}),
              **budget)
    mine = [r for r in got if r["config"]["method"] == name]
    assert len(mine) == 1, f"one run of '{name}' was expected; the sweep gave {len(mine)}"
    record = mine[0]
    path = layout.record_path(results_dir, record["config"]["suite"], name, record["config"]["seed"], record["config_hash"])
    if record["status"] != records.Status.OK:
        log = layout.log_path(path)
        output = log.read_text().partition(layout.LOG_ERROR_MARK)[0] if log.exists() else "(no log)"  # the error is above
        tail = "\n".join(output.splitlines()[-15:])
        raise AssertionError(f"the run of '{name}' ended {record['status']}: {record['error']}\nits log ends:\n{tail}")
    problems: list[str] = []
    assert records.read_record(path, problems) == record, f"the record of '{name}' does not read back: {problems}"
    return record
