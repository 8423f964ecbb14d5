"""The plan of a `bench run`: which runs, in which order, and what they are expected to cost.

A run is a method (or chain) with all its parameters and a seed. Planning resolves every
parameter and checks every chain, so wrong input fails here, before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from typing import Any, Literal

from bench.bounds import field_defaults
from bench.chain import Chain, check_chain, links
from bench.errors import ParameterError, counted
from bench.records import Status, config_hash
from bench.registry import BROKEN, METHODS, Method
from bench.suite import Budget, DataSpec, ModelSpec, Suite

Order = Literal["depth", "breadth"]
# The most runs one command plans: the shipped suites plan about 420 with every method; a suite
# file of 140,000 seeds (1 MiB) planned 840,000 a method, and `--methods all` ran out of memory.
MAX_RUNS = 100_000


@dataclass(frozen=True)
class RunSpec:
    """One planned run, every parameter resolved: what a worker needs to run it and what its
    record's identity is made from (with the suite, bench.records.run_config)."""

    method: str  # a method name, or a chain "a+b"
    params: dict[str, Any]  # every parameter, defaults included; per link for a chain
    seed: int


def flat_params(params: dict[str, Any]) -> dict[str, Any]:
    """A run's parameters in one mapping: a chain's link parameters prefixed by the link's method
    name ({"magnitude.sparsity": 0.9, "ptq-int8.calibration_samples": 256})."""
    flat = {f"{k}.{kk}": vv for k, v in params.items() if isinstance(v, dict) for kk, vv in v.items()}
    flat.update({k: v for k, v in params.items() if not isinstance(v, dict)})
    return flat


def setting_label(params: dict[str, Any]) -> str:
    """"sparsity=0.9"; for a chain, each link's parameters prefixed by its method name. In name
    order, whatever the order of `params`: records read back (their JSON keys sorted) and fresh ones
    must give one label, or one setting splits into two rows."""
    return ", ".join(f"{k}={v}" for k, v in sorted(flat_params(params).items())) or "-"


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's record is keyed by: its configuration (bench.records.run_config) without the
    values equal to their defaults, the method's parameters (per link of a chain) and the budget's,
    model's and data's fields, as OpenLTH names its runs. A parameter or budget field added with a
    default therefore keeps every finished record finished, records written before it included.
    The price: a default's value must never change (a run that left it unset would match runs of
    the new value); change behaviour through a new parameter instead."""
    method, params = config["method"], config["params"]
    chain = links(method)
    if len(chain) == 1:
        params = _set_apart(params, METHODS[method].parameters() if method in METHODS else {})
    else:
        params = {link: _set_apart(p, METHODS[link].parameters() if link in METHODS else {})
                  for link, p in params.items()}
    out = {**config, "params": params}
    for key, cls in (("budget", Budget), ("model", ModelSpec), ("data", DataSpec)):
        if isinstance(config.get(key), dict):
            out[key] = _set_apart(config[key], field_defaults(cls))
    return out


def run_key(config: dict[str, Any]) -> str:
    """The hash of a run's identity: its record's name (bench.layout.record_path)."""
    return config_hash(identity(config))


def _set_apart(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


def _explicit(suite: Suite, name: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parameters of one method set explicitly: the suite's `methods` section, then --set."""
    return {**suite.methods.get(name, {}), **overrides.get(name, {})}


def _sweeping(suite: Suite, chain: list[str], overrides: dict[str, dict[str, Any]]) -> list[str]:
    """The links of `chain` that take each of the suite's sparsity levels: those with a `sweep`
    parameter not set explicitly (a link that is not registered sweeps nothing)."""
    return [link for link in chain if link in METHODS and METHODS[link].sweep
            and METHODS[link].sweep not in _explicit(suite, link, overrides)]


def _link_params(suite: Suite, name: str, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every parameter of one method: its defaults, then those set explicitly."""
    return {**METHODS[name].parameters(), **_explicit(suite, name, overrides)}


def plan(suite: Suite, names: list[str], overrides: dict[str, dict[str, Any]], seeds: list[int],
         order: Order = "depth") -> list[RunSpec]:
    """The runs for the selected methods and chains. A method's `sweep` parameter, unless set
    explicitly, takes each of the suite's sparsity levels (in a chain, every sweeping link takes
    the same level). `depth` runs each setting at every seed before the next setting; `breadth`
    runs every setting at the first seed before any second seed, so that a sweep cut short still
    has a row for every setting. Wrong parameters (names, types, ranges, at every swept level)
    and impossible chains fail here, before any data is loaded, and so does a plan of more than
    MAX_RUNS runs."""
    # counted as the loop below builds them: a sweep set explicitly is one setting, a chain sweeps if a link does
    planned = sum(len(seeds) * (len(suite.sparsities) if _sweeping(suite, links(name), overrides) else 1)
                  for name in names)
    if planned > MAX_RUNS:
        raise ParameterError(f"{planned:,} runs planned ({counted(len(names), 'method')}, {len(seeds):,} seeds, "
                             f"{len(suite.sparsities):,} sparsity levels in suite {suite.name!r}), more than the "
                             f"{MAX_RUNS:,} one command plans: split the sweep by --methods or --seeds")
    runs = []
    for name in names:
        chain = links(name)
        if broken_link(name) is not None:  # its runs fail with the import error (bench.worker.execute)
            runs += [RunSpec(name, {}, seed) for seed in seeds]
            continue
        if len(chain) > 1:
            check_chain(chain)
        resolved = {link: _link_params(suite, link, overrides) for link in chain}
        sweeping = _sweeping(suite, chain, overrides)
        for value in suite.sparsities if sweeping else [None]:
            per_link = {link: {**params, **({METHODS[link].sweep: value} if link in sweeping else {})}
                        for link, params in resolved.items()}
            params = per_link[name] if len(chain) == 1 else per_link
            build_method(name, params)  # each link at this level: a level may not suit other parameters (N:M)
            runs += [RunSpec(name, params, seed) for seed in seeds]
    if order == "breadth":
        rank = {seed: i for i, seed in enumerate(seeds)}
        runs.sort(key=lambda r: rank[r.seed])  # stable: settings keep their order
    return runs


def with_recorded(specs: list[RunSpec], history: list[dict[str, Any]], suite: Suite, names: list[str],
                  seeds: list[int], order: Order = "depth") -> list[RunSpec]:
    """`specs` plus every setting of the `names` (and of chains of them) that a record at the
    suite's budget holds, at one of `seeds`: rows made with `--set`, and chains, are no part of
    the suite's sweep, so without these a `--refresh` would leave them made by older code. Each
    is checked as `plan` checks its own (a parameter the method no longer has fails here)."""
    defaults = field_defaults(Budget)  # a record made before a budget field existed lacks it
    budget = _set_apart(dataclasses.asdict(suite.training), defaults)
    planned = {(s.method, json.dumps(s.params, sort_keys=True), s.seed) for s in specs}
    out = list(specs)
    for record in history:
        c = record["config"]
        key = (c["method"], json.dumps(c["params"], sort_keys=True), c["seed"])
        selected = c["method"] in names or all(link in names for link in links(c["method"]))
        if selected and c["seed"] in seeds and _set_apart(c["budget"], defaults) == budget and key not in planned:
            planned.add(key)
            try:
                build_method(c["method"], c["params"])
            except ParameterError as e:
                raise ParameterError(f"--recorded: the record {c['method']}-{record['config_hash'][:12]}-s{c['seed']} "
                                     f"names a setting that cannot run: {e}") from None
            out.append(RunSpec(c["method"], c["params"], c["seed"]))
    if order == "breadth":
        out.sort(key=lambda r: seeds.index(r.seed))
    return out


def broken_link(method: str) -> str | None:
    """The first link of a method or chain whose plugin failed to import (and that nothing else
    registers), or None: such a run has no parameters to resolve and fails with the import error."""
    return next((link for link in links(method) if link in BROKEN and link not in METHODS), None)


def build_method(method: str, params: dict[str, Any]) -> Method | Chain:
    """The method (or chain) a run's resolved parameters describe."""
    if len(links(method)) == 1:
        return METHODS[method].build(dict(params))
    if sorted(params) != sorted(links(method)):
        raise ParameterError(f"chain {method}: parameters are given for the links {', '.join(params)}")
    return Chain([METHODS[link].build(dict(params[link])) for link in links(method)])  # in the chain's order


def dense_epochs(spec: RunSpec, suite: Suite) -> int:
    """The dense model's epochs that a run's record counts although the dense stage trained
    them (a run that starts from `ctx.pretrained()`): a plan counts them once, in that stage."""
    if not _registered(spec):
        return 0
    return 0 if METHODS[links(spec.method)[0]].starts_from == "scratch" else suite.training.epochs


def _registered(spec: RunSpec) -> bool:
    """Whether every link of the run is a registered method (else a plugin failed to import)."""
    return all(link in METHODS for link in links(spec.method))


def expected_epochs(spec: RunSpec, suite: Suite, history: list[dict[str, Any]]) -> float:
    """Training epochs a run will spend, counted as records count them (the dense model's epochs
    included when it starts from it): the median of finished records of the same method,
    parameters and budget (any seed), else the budget rule: from scratch, epochs + fine-tuning;
    from the dense model, its epochs + fine-tuning. A `rounds` parameter repeats what the method
    trains: the fine-tuning of a post-training method, the whole training of a from-scratch one
    (which then trains once more, as lottery tickets do); a `finetune` parameter set false (the
    one-shot methods' convention) fine-tunes nothing. Records replace the rule once they exist;
    records of another budget (a quick --epochs 1 run) say nothing about this one."""
    budget = dataclasses.asdict(suite.training)
    same = [r["metrics"]["train_epochs"] for r in history
            if r["status"] == Status.OK and r["config"]["method"] == spec.method and r["config"]["params"] == spec.params
            and r["config"]["budget"] == budget and r["metrics"].get("train_epochs") is not None]
    if same:
        return statistics.median(same)
    b = suite.training
    if not _registered(spec):
        return 0.0  # a plugin that failed to import fails at once
    total = float(dense_epochs(spec, suite))
    for i, link in enumerate(links(spec.method)):
        params = spec.params if len(links(spec.method)) == 1 else spec.params[link]
        if METHODS[link].starts_from == "scratch" and i == 0:
            rounds = params.get("rounds")
            total += (rounds + 1) * b.epochs if rounds else b.epochs + b.finetune_epochs
        elif link != "dense" and params.get("finetune") is not False:
            total += b.finetune_epochs * params.get("rounds", 1)
    return total


def fusion_key(spec: RunSpec, suite: Suite, history: list[dict[str, Any]]) -> tuple[tuple[str | None, float], str]:
    """What a fused sweep groups runs by (bench.sweep): their class, where they start (the dense
    model, or scratch) and how many epochs they are expected to train (`expected_epochs`: a
    setting that fine-tunes nothing apart), and within it their method. Only a run's training
    calls show whether they fuse (bench.fused: the same architecture with the same kind of pruning
    hooks, epochs, batch size, optimizer kind): one method's settings and seeds nearly always do,
    and two methods of a class often do (on ResNet-20, magnitude with random, snip with static,
    rigl with set), seldom two of different classes. In plan order a task of K took whatever came
    next, and the calls without a partner trained alone, one after another in the task."""
    first = links(spec.method)[0]
    start = METHODS[first].starts_from if _registered(spec) else None
    return (start, expected_epochs(spec, suite, history)), spec.method
