"""`bench run`: suite -> planned runs -> train (method.run) -> measure -> record -> leaderboard.

Each run is isolated: a method that raises, diverges or returns something unusable becomes a
failed record with its error, and the remaining runs go on. Finished records are skipped on a
rerun unless forced, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench import leaderboard, measure, records
from bench.context import Context, DenseStore
from bench.data import Dataset, default_tensor_cache, load_dataset
from bench.chain import Chain, check_chain, links
from bench.registry import BROKEN, METHODS, Method, NotApplicable
from bench.sparsity import weight_sparsity
from bench.suite import Suite
from bench.train import DivergedError, model_device


@dataclass
class RunSpec:
    method: str  # a method name, or a chain "a+b"
    params: dict[str, Any]  # every parameter, defaults included; per link for a chain
    seed: int


def _link_params(suite: Suite, name: str, overrides: dict[str, dict[str, Any]]) -> tuple[dict, dict]:
    """(all parameters, the explicitly set ones) of one method: its defaults, then the suite's
    `methods` section, then --set. Wrong names or types fail here."""
    cls = METHODS[name]
    explicit = {**suite.methods.get(name, {}), **overrides.get(name, {})}
    params = {**cls.parameters(), **explicit}
    cls.build(dict(params))
    return params, explicit


def plan(suite: Suite, names: list[str], overrides: dict[str, dict[str, Any]],
         seeds: list[int]) -> list[RunSpec]:
    """The runs for the selected methods and chains. A method's `sweep` parameter, unless set
    explicitly, takes each of the suite's sparsity levels (in a chain, every sweeping link takes
    the same level). Wrong parameters and impossible chains fail here, before any training."""
    runs = []
    for name in names:
        if name in BROKEN and name not in METHODS:
            runs += [RunSpec(name, {}, seed) for seed in seeds]
            continue
        chain = links(name)
        if len(chain) > 1:
            check_chain(chain)
        resolved = {link: _link_params(suite, link, overrides) for link in chain}
        sweeping = [link for link in chain
                    if METHODS[link].sweep and METHODS[link].sweep not in resolved[link][1]]
        for value in suite.sparsities if sweeping else [None]:
            per_link = {link: {**params, **({METHODS[link].sweep: value} if link in sweeping else {})}
                        for link, (params, _) in resolved.items()}
            params = per_link[name] if len(chain) == 1 else per_link
            runs += [RunSpec(name, params, seed) for seed in seeds]
    return runs


def build_method(spec: RunSpec) -> Method | Chain:
    if len(links(spec.method)) == 1:
        return METHODS[spec.method].build(dict(spec.params))
    return Chain([METHODS[link].build(dict(p)) for link, p in spec.params.items()])


def run_config(suite: Suite, spec: RunSpec, source: str) -> dict[str, Any]:
    """The resolved configuration a record is keyed by."""
    return {
        "suite": suite.name, "suite_version": suite.version, "method": spec.method,
        "params": spec.params, "seed": spec.seed, "data_source": source,
        "model": dataclasses.asdict(suite.model), "data": dataclasses.asdict(suite.data),
        "budget": dataclasses.asdict(suite.training),
    }


def measure_model(model: nn.Module, ctx: Context, reference: dict[str, int]) -> dict[str, Any]:
    """Every metric of the README on the returned model, on the device it lives on.

    Float convolutions are measured channels-last, like the dense model (see Context): for a
    weight with one input channel both layouts count as contiguous, and an elementwise op on it
    (a mask, a straight-through quantizer) returns NCHW, which ran LeNet-5 2x slower.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.weight.is_floating_point():
            module.to(memory_format=torch.channels_last)
    device = model_device(model)
    test_x = ctx.data.test.x
    metrics: dict[str, Any] = {"accuracy": ctx.evaluate(model)}
    params, nonzeros = measure.count_params(model), measure.count_nonzeros(model)
    metrics.update(params=params, nonzeros=nonzeros,
                   sparsity=1.0 - nonzeros / reference["params"],
                   weight_sparsity=weight_sparsity(model))
    one = ctx.preprocess.normalize(test_x[:1]).to(device)
    metrics["flops"], metrics["flops_effective"] = measure.flops(model, one)
    metrics["size_bytes"] = measure.size_bytes(model)
    metrics["compression"] = reference["size_bytes"] / metrics["size_bytes"]
    for batch in ctx.suite.latency_batches:
        x = ctx.preprocess.normalize(test_x[:batch]).to(device)
        median, iqr = measure.latency_ms(model, x)
        metrics[f"latency_b{batch}_ms"], metrics[f"latency_b{batch}_iqr_ms"] = median, iqr
    x = ctx.preprocess.normalize(test_x[:max(ctx.suite.latency_batches)]).to(device)
    metrics["memory_bytes"] = measure.peak_inference_memory(model, x)
    return metrics


def execute(suite: Suite, spec: RunSpec, ctx: Context, reference: dict[str, int]) -> dict[str, Any]:
    """Run one method and measure it; failures become a status and an error, never an exception
    (except KeyboardInterrupt, which stops the sweep and writes nothing for this run)."""
    start = time.perf_counter()
    out: dict[str, Any] = {"status": "ok", "error": None, "metrics": {}}
    try:
        if spec.method in BROKEN and spec.method not in METHODS:
            raise ImportError(f"plugin '{spec.method}' failed to import:\n{BROKEN[spec.method]}")
        model = build_method(spec).run(ctx)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{spec.method}.run() returned {type(model).__name__}, not an nn.Module")
        measure_start = time.perf_counter()
        out["metrics"] = measure_model(model, ctx, reference)
        out["metrics"].update(train_epochs=ctx.train_epochs, train_time_s=ctx.train_time_s)
        if ctx.compile:
            out["metrics"]["compile_time_s"] = ctx.compile_time_s
        out["measure_time_s"] = time.perf_counter() - measure_start
    except DivergedError as e:
        out.update(status="diverged", error=str(e))
    except NotApplicable as e:
        out.update(status="skipped", error=f"not applicable: {e}")
    except Exception as e:  # noqa: BLE001 - a failing plugin is a failed row
        out.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}")
    out["figures"] = ctx.figures
    out["run_time_s"] = time.perf_counter() - start
    return out


def run_suite(suite: Suite, names: list[str], *, seeds: list[int], results_dir: Path,
              data_dir: Path | None, device: torch.device, overrides: dict[str, dict[str, Any]],
              budget_overrides: dict[str, Any] | None = None, force: bool = False,
              compile: bool = False, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Plan, run, record and tabulate; returns the records of this invocation's runs.

    `budget_overrides` (epochs, finetune_epochs, limit_train, limit_test) make the runs
    non-standard: they are recorded, but kept out of the standard leaderboard. `compile` trains
    through torch.compile; records then carry compile_time_s apart from train_time_s.
    """
    standard_budget = suite.training
    suite = suite.with_budget(**(budget_overrides or {}))
    standard = suite.training == standard_budget
    runs = plan(suite, names, overrides, seeds)
    suite_dir = Path(results_dir) / suite.name
    log(f"suite {suite.name}: {len(runs)} runs ({', '.join(names)}; seeds {seeds}) on {device}")
    dataset = load_dataset(suite.data, data_dir, cache_dir=default_tensor_cache())
    budget = suite.training
    data = Dataset(dataset.train.subset(budget.limit_train), dataset.test.subset(budget.limit_test),
                   dataset.source, dataset.num_classes).to(device)
    log(f"data: {data.source}, {len(data.train)} train / {len(data.test)} test images")
    env = records.environment(device)
    env.update(data_source=data.source, compile=compile)
    dense_store = DenseStore(suite_dir / "cache")
    reference: dict[str, int] = {}
    done: list[dict[str, Any]] = []
    try:
        for i, spec in enumerate(runs, 1):
            config = run_config(suite, spec, data.source)
            digest = records.config_hash(config)
            path = records.record_path(results_dir, suite.name, spec.method, spec.seed, digest)
            head = f"[{i}/{len(runs)}] {spec.method} {leaderboard.setting_label(spec.params)} seed={spec.seed}"
            existing = records.read_record(path)
            if existing and existing.get("status") == "ok" and not force:
                log(f"{head}: finished before, skipped ({path.name}; --force reruns)")
                done.append(existing)
                continue
            log(head)
            torch.manual_seed(spec.seed)
            ctx = Context(suite, data, device, spec.seed, dense_store, log=log, compile=compile)
            if not reference:
                dense = ctx.new_model()
                reference = {"params": measure.count_params(dense), "size_bytes": measure.size_bytes(dense)}
            result = execute(suite, spec, ctx, reference)
            record = {"schema": records.SCHEMA_VERSION, "config": config, "config_hash": digest,
                      "standard_budget": standard,
                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "env": env, **result}
            records.write_json_atomic(path, record)
            done.append(record)
            m = result["metrics"]
            if result["status"] == "ok":
                log(f"  -> accuracy {100 * m['accuracy']:.2f}%  sparsity {100 * m['sparsity']:.1f}%  "
                    f"size {m['size_bytes'] / 1024:.1f} KiB  latency b1 {m[f'latency_b{suite.latency_batches[0]}_ms']:.3f} ms"
                    f"  epochs {m['train_epochs']}  ({result['run_time_s']:.1f}s)")
            else:
                log(f"  -> {result['status'].upper()}: {result['error'].splitlines()[0]}")
    finally:  # also when interrupted: the tables show every finished run
        leaderboard.write(results_dir, suite.name)
    return done
