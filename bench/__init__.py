"""Benchmark harness for neural-network compression methods.

The public plugin API: subclass `Method`, decorate it with `register_method`, and implement
`run(ctx)` against the `Context`; `bounded` declares a parameter's range.
"""

from bench.bounds import bounded
from bench.context import Context
from bench.registry import Method, NotApplicable, ParameterError, register_method
from bench.suite import Budget, Suite

__all__ = ["Budget", "Context", "Method", "NotApplicable", "ParameterError", "Suite", "bounded",
           "register_method"]
