"""The exceptions that several layers of the harness raise and catch, in a module that imports
nothing: a method's parameter check (registry, sparsity), a layer it cannot compress
(layerwise), a dataset that cannot be read (data), so none of them imports another for a type,
and the CLI tells a usage error (exit 2) from a fault without importing torch; and how any error
is shown in one line."""

from __future__ import annotations

import re
import signal
import unicodedata


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or `kill` (SIGTERM) as the `bench` command's own signal handlers raise it: the user
    stopping a sweep, told apart from a KeyboardInterrupt a plugin raises itself."""


def stops_the_sweep(e: BaseException) -> bool:
    """Whether an exception out of a plugin's code is the user stopping the sweep (which writes
    nothing for the run) rather than the plugin failing (a failed row naming it). Ctrl-C reaches
    a plugin's code as `Interrupted` where the CLI handles the signal, and as a plain
    KeyboardInterrupt where Python's default handler is in place (a script calling bench.run).
    A plain one anywhere else is the plugin's own: in a worker process, which ignores SIGINT
    (Ctrl-C is the driver's), or under the CLI's handler."""
    if isinstance(e, Interrupted):
        return True
    return isinstance(e, KeyboardInterrupt) and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def counted(n: int | None, noun: str) -> str:
    """`n` and `noun` for messages, plural unless n is 1: "1 run", "3 runs", "0 minutes"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """A time for messages, rounded as a reader wants it: "about 40 s" under 90 seconds (not
    "0 minutes" nor "1 minute" for 80 s), else "about 7 minutes"."""
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {counted(round(seconds / 60), 'minute')}"


# What printable shows as `?`, by Unicode category: controls (Cc: C0, C1, ESC), format characters
# (Cf: the bidirectional marks, overrides and isolates, which reorder the text shown around them,
# so that a method named "gmp\u202e0.0=ytisraps" reads as another setting; zero-width spaces and
# joiners, the word joiner and the BOM, which make one name look like another; tag characters,
# invisible text), line and paragraph separators (Zl, Zp: U+2028 starts a line in a terminal or an
# editor) and lone surrogates (Cs: JSON's \ud800 escape reads as one, and a UTF-8 console cannot
# print it). Letters, marks, symbols and spaces of every script are text, shown as they are.
HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
NOT_ASCII_TEXT = re.compile(r"[^\t\n\x20-\x7e]")  # the only characters to look up: tab and newline are kept
COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # ANSI colours (SGR): Ray's and other libraries' tracebacks carry them


def _shown(match: re.Match[str]) -> str:
    return "?" if unicodedata.category(match.group()) in HIDDEN else match.group()


def printable(text: str) -> str:
    """`text` with its control, format and separator characters (HIDDEN) shown as `?`: a
    record's text printed in a terminal or stored in a table must not carry escape sequences
    (ESC ] 0 ; ... retitles a terminal), bidirectional overrides (U+202E shows what follows it
    reversed), characters that print nothing (U+200B) or start a line (U+2028). Accents, CJK and
    other scripts stay readable.
    Colour sequences, which change nothing but colour, are dropped whole, so that an error
    from Ray reads "ray::task()", not "?[36mray::task()?[39m"."""
    return NOT_ASCII_TEXT.sub(_shown, COLOUR.sub("", text))


def first_line(text: str | None, width: int | None = None) -> str:
    """The first line of an error or a docstring, cut to `width` characters, printable (a
    plugin's error with ESC [ 1 A ... rewrote earlier lines of the console); '' for none, an
    empty one or one of blank lines (an exception raised without a message has no line)."""
    return printable((text or "").strip().split("\n")[0][:width])
