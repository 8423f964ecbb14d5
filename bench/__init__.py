"""Benchmark harness for neural-network compression methods.

The public plugin API: subclass `Method`, decorate it with `register_method`, and implement
`run(ctx)` against the `Context`; `bounded` declares a parameter's range. For notebooks and
scripts, `run` runs a suite and returns its records, and `load_results` reads a suite's results
as a pandas DataFrame (bench.api).

The names are imported on first use (PEP 562), so that `bench --help` and the modules that read
records and leaderboards do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"bounded": "bench.bounds", "Context": "bench.context", "Method": "bench.registry",
            "NotApplicable": "bench.registry", "ParameterError": "bench.registry",
            "register_method": "bench.registry", "Budget": "bench.suite", "Suite": "bench.suite",
            "run": "bench.api", "load_results": "bench.api"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
