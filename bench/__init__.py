"""Benchmark harness for neural-network compression methods.

The public plugin API: subclass `Method`, decorate it with `register_method`, and implement
`run(ctx)` against the `Context`; `bounded` declares a parameter's range.

The names are imported on first use (PEP 562), so that `bench --help` and the modules that read
records and leaderboards do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"bounded": "bench.bounds", "Context": "bench.context", "Method": "bench.registry",
            "NotApplicable": "bench.errors", "ParameterError": "bench.errors",
            "register_method": "bench.registry", "Budget": "bench.suite", "Suite": "bench.suite"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
