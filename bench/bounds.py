"""Value ranges that suite keys and method parameters declare on their dataclass fields.

A field written `sparsity: float = bounded(0.9, ge=0, lt=1)` carries its range in the field's
metadata; the suite parser and `Method.build` read it, so a value out of range is refused before
any training, with the range in the message, and the range is declared once, beside the default.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

# The largest magnitude a record's number may have: above every count the harness makes (a
# sweep's training FLOPs are ~1e17) and below int64's 9.2e18, so that no reader's sum, product
# or integer column overflows (1e20 parameters stopped every leaderboard rebuild). A run holds
# its suite's values and its parameters, so no number given to the harness may be larger either:
# `--limit-train 1e20`'s run trained, and every reader then left its record out, as malformed.
MAX_NUMBER = 1e18


def finite(value: int | float) -> bool:
    """Whether a number is finite and within MAX_NUMBER: NaN and Infinity (or 1e999, read as it)
    are not, nor an integer beyond a float's range (10**400), nor 1e308, which overflow where
    they are averaged, summed or drawn."""
    try:
        return math.isfinite(value) and abs(value) <= MAX_NUMBER
    except OverflowError:
        return False


# The most levels of lists and mappings in a value a record holds (a method's parameter): real ones
# nest a level or two, and the readers' checks recurse through them, a few frames a level: a
# record's parameter nested 400 deep (JSON reads up to about 990) stopped every leaderboard with
# a RecursionError.
MAX_DEPTH = 100


def plain(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Whether `value` is data a run's record (strict JSON) holds as it is: no set, bytes or
    timestamp (which YAML's tags make), no NaN or infinity, no number beyond MAX_NUMBER, in a
    list or a mapping (text keys) too, nested at most `depth` levels deep."""
    if isinstance(value, dict):
        return depth > 0 and all(isinstance(k, str) and plain(v, depth - 1) for k, v in value.items())
    if isinstance(value, list):
        return depth > 0 and all(plain(v, depth - 1) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return finite(value)
    return value is None or isinstance(value, (bool, str))


def too_large(value: Any) -> bool:
    """Whether `value` is a number beyond MAX_NUMBER that is not infinite (an int of any size)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_NUMBER
            and abs(value) != math.inf)


@dataclass(frozen=True)
class Bounds:
    """Limits on a number (on each item, for a list); `distinct`: a non-empty list without repeats;
    `choices`: the values a setting may take (a method's `scope`, say), instead of limits."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    distinct: bool = False
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        """The range in words: ">= 1", "> 0", "in [0, 1)"."""
        low = (self.ge, "[", ">=") if self.ge is not None else (self.gt, "(", ">") if self.gt is not None else None
        high = (self.le, "]", "<=") if self.le is not None else (self.lt, ")", "<") if self.lt is not None else None
        if low and high:
            return f"in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
        if low or high:
            value, _, sign = low or high
            return f"{sign} {_number(value)}"
        return "that is finite"

    def contains(self, value: Any) -> bool:
        """True for a finite number within the limits and MAX_NUMBER (booleans are no numbers here)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite(value):
            return False
        return self._within_limits(value)

    def _within_limits(self, value: int | float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def problem(self, value: Any) -> str | None:
        """Why `value` is refused, as the end of an error message, or None if it is accepted; a
        whole percent where a fraction belongs names the fraction (`_percent`), a list's item too
        (a suite's `sparsities: [50, 90]`)."""
        if self.choices is not None:
            return None if value in self.choices else (
                f"expected one of {', '.join(map(str, self.choices))}, got {brief(value)}")
        if not isinstance(value, list):
            return None if self.contains(value) else \
                f"expected a number {self._range(value)}, got {brief(value)}{self._percent(value)}"
        if self.distinct and not value:
            return "expected a non-empty list, got []"
        for i, item in enumerate(value):
            if not self.contains(item):
                return f"expected numbers {self._range(item)}, got {brief(item)} (item {i}){self._percent(item)}"
        if self.distinct:  # counted once each: list.count per item took minutes on a 1 MiB suite's seeds
            repeated = sorted(v for v, n in Counter(value).items() if n > 1)
            if repeated:
                return f"expected distinct values, got {brief(repeated[0])} more than once in {brief(value)}"
        return None

    def _percent(self, value: Any) -> str:
        """For a fraction (a range up to 1) given a whole percent (`sparsity=90`, as the tables
        head it `sparsity_%`): the fraction it stands for; '' otherwise (kd's alpha=1.5 is no 1.5%)."""
        upper = self.lt if self.lt is not None else self.le
        if upper == 1 and isinstance(value, (int, float)) and not isinstance(value, bool) and 2 <= value < 100 \
                and value == int(value):
            return f": a fraction, {value / 100:g} for {value:g}%"
        return ""

    def _range(self, value: Any) -> str:
        """The range in words, with MAX_NUMBER where `value` is refused for lying beyond it alone
        (1e20 is >= 1)."""
        return self.describe() + (f" and within ±{MAX_NUMBER:g}" if too_large(value) and self._within_limits(value)
                                  else "")


def brief(value: Any, limit: int = 200) -> str:
    """repr(value), cut to `limit` characters: an error message quotes what a suite file or a
    command line gave, and that may be as long as the file (up to 1 MiB)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def bounded(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, distinct: bool = False,
            choices: tuple[Any, ...] | None = None) -> Any:
    """A dataclass field (default `default`, required without one) whose values must lie within
    the limits: ge (>=), gt (>), le (<=), lt (<). On a list field the limits hold for each item,
    and `distinct` also asks for a non-empty list without repeats (seeds, sparsity levels).
    `choices` instead names every value the field may take. A check that relates two fields
    (begin before end) belongs in the method's `__post_init__`; one field's range, here."""
    return dataclasses.field(default=default, metadata={"bounds": Bounds(ge, gt, le, lt, distinct, choices)})


def problem(f: dataclasses.Field, value: Any) -> str | None:
    """Why `value` is out of the range field `f` declares (None: in range, or no range)."""
    bounds = f.metadata.get("bounds")
    return bounds.problem(value) if bounds is not None else None


def _number(value: float) -> str:
    """A limit as written: an int in full (a seed's 4294967296, not 4.29497e+09), a float briefly."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def field_defaults(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their defaults, in declaration order, a `default_factory`'s value
    made (a list parameter needs one); a field without a default is left out."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
