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
import logging
from typing import Any

# Two warnings torch logs on every import in this environment, which say nothing about a run:
# cpp_extension finds no CUDA runtime (a CPU machine needs none; no extension is built), and
# torchao registers an Enum with torch's pytree the deprecated way. Each is dropped by its own
# logger and message, here because this package is imported before torch in every process of
# the harness (a worker process imports bench.executors, not the command line), so that every
# other warning of those loggers still shows.
_TORCH_NOISE = {"torch.utils.cpp_extension": "No CUDA runtime is found",
                "torch.utils._pytree": "<enum 'KernelPreference'> is an Enum subclass"}
for _logger, _text in _TORCH_NOISE.items():
    logging.getLogger(_logger).addFilter(lambda record, text=_text: text not in record.getMessage())

_EXPORTS = {"bounded": "bench.bounds", "Context": "bench.context", "Method": "bench.registry",
            "NotApplicable": "bench.errors", "ParameterError": "bench.errors",
            "register_method": "bench.registry", "Budget": "bench.suite", "Suite": "bench.suite",
            "run": "bench.api", "load_results": "bench.api"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
