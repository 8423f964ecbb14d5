"""Chains of methods (`--methods magnitude+ptq-int8`): each link starts from the previous link's
model, and the chain is recorded as one row with the summed cost.

Whether a chain can work is decided from the methods' declared `starts_from` and `output`
before any training, so an impossible chain fails at once with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.registry import METHODS, Method, ParameterError

if TYPE_CHECKING:
    from torch import nn

    from bench.context import Context


class ChainError(ParameterError):
    """A chain whose links cannot follow each other."""


def links(name: str) -> list[str]:
    return name.split("+")


def check_chain(names: list[str]) -> None:
    """Raise ChainError if a link cannot take the previous link's model."""
    if len(set(names)) < len(names):
        raise ChainError(f"chain {'+'.join(names)}: a method may appear once in a chain "
                         "(--set addresses each link by its method name)")
    for before, after in zip(names, names[1:]):
        a, b = METHODS[before], METHODS[after]
        if b.starts_from != "pretrained":
            raise ChainError(f"chain {'+'.join(names)}: '{after}' trains its own model from scratch, "
                             f"so it cannot continue from '{before}'")
        if a.output != "float":
            raise ChainError(f"chain {'+'.join(names)}: '{after}' needs a float model, but "
                             f"'{before}' returns a {a.output} one; put '{before}' last")


class Chain:
    """Runs its methods in order on one Context; cost accumulates in the context."""

    def __init__(self, methods: list[Method]):
        self.methods = methods

    def run(self, ctx: Context) -> nn.Module:
        model = None
        for i, method in enumerate(self.methods):
            if i:
                ctx.log(f"  chain link {i + 1}/{len(self.methods)}: {method.name}")
                ctx.continue_from(model)
            model = method.run(ctx)
        return model
