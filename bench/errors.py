"""The exceptions that several layers of the harness raise and catch, in a module that imports
nothing: a method's parameter check (registry, sparsity), a layer it cannot compress
(layerwise), a dataset that cannot be read (data), so none of them imports another for a type,
and the CLI tells a usage error (exit 2) from a fault without importing torch; and how any error
is shown in one line."""

from __future__ import annotations


class ParameterError(ValueError):
    """A method parameter with a wrong name or type."""


class NotApplicable(Exception):
    """Raised by a method's run() when the suite cannot use it (e.g. slimming on a model without
    BatchNorm): the run is recorded as skipped, with the reason, and is not a failure."""


class DenseMismatch(RuntimeError):
    """A cached dense model whose tensors do not fit the suite's model (a planted or stale
    cache file): the driver removes the file and trains the model again."""


class DataError(RuntimeError):
    """The dataset could not be found, read or downloaded."""


class ExecutorError(ValueError):
    """An executor that cannot be set up as asked (a usage error: exit 2)."""


class ResultsFolderError(RuntimeError):
    """The results folder cannot take a sweep's files: refused before any training (exit 2)."""


def first_line(text: str | None, width: int | None = None) -> str:
    """The first line of an error or a docstring, cut to `width` characters; '' for none, an
    empty one or one of blank lines (an exception raised without a message has no line)."""
    return (text or "").strip().split("\n")[0][:width]
