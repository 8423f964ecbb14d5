"""Method plugins: the `Method` base class, `register_method`, discovery and selection.

A method is a dataclass whose fields are its parameters and whose `run(ctx)` returns the
compressed model. Methods come from the files of the `methods` package and from installed
distributions that declare an entry point in the group `bench.methods`; the harness changes for
neither. A plugin that fails to import is remembered with its error, so that selecting it gives
a failed row instead of stopping the whole run. A name is registered once: a plugin that
registers a name already taken fails to import, naming both sources, unless the user allows it
to replace a built-in method ($BENCH_ALLOW_SHADOWING); import order never decides silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import math
import os
import pkgutil
import re
import sys
import traceback
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from bench import bounds
from bench.errors import ParameterError, first_line, printable, stops_the_sweep

if TYPE_CHECKING:
    import torch

    from bench.context import Context

ENTRY_POINT_GROUP = "bench.methods"


class Method:
    """Base class of compression methods; subclasses become dataclasses of their parameters.

    Class attributes a method may set:
      sweep: the name of a float parameter that the harness sweeps over the suite's
             `sparsities` unless it is set explicitly (e.g. "sparsity").
      starts_from: "pretrained" if run() compresses ctx.pretrained() (it can then follow
             another method in a chain), "scratch" if it trains ctx.new_model() itself.
      output: "float" if the returned model is a float model another method can take,
             "quantized" if it is a final low-precision model.
      family: the family the leaderboard groups it with, e.g. "pruning": one of FAMILIES, or a
             new one, which gets its own panel after them.
    The first line of the docstring is the method's description in `bench list methods`.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "other"
    sweep: ClassVar[str | None] = None
    starts_from: ClassVar[str] = "pretrained"
    output: ClassVar[str] = "float"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        written = cls.__dict__.get("__doc__")
        try:
            dataclasses.dataclass(cls)
        except TypeError as e:  # dataclasses' own words name no fix
            if not (late := re.match(r"non-default argument '(\w+)' follows default argument", str(e))):
                raise
            raise TypeError(unordered(cls.__name__, late[1], cls.__annotations__.get(late[1]))) from None
        cls.__doc__ = written  # not the signature dataclass writes where there is none: no description

    def run(self, ctx: Context) -> torch.nn.Module:
        """Compress and return the model that the harness measures."""
        raise NotImplementedError

    @classmethod
    def description(cls) -> str:
        return first_line(cls.__doc__)

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Parameter names and defaults, in declaration order."""
        return bounds.field_defaults(cls)

    @classmethod
    def build(cls, params: dict[str, Any]) -> Method:
        """An instance from a parameter mapping, with clear errors for wrong names, types and
        values outside a parameter's declared range (`bench.bounded`)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in params.items():
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                if (not close and key in vars(cls) and not key.startswith("_") and not callable(vars(cls)[key])
                        and key not in vars(Method)):  # not family, sweep...: the class settings, no parameters
                    hint = (f"; its class attribute '{key}' has no type annotation, so it is no parameter "
                            f"(write `{key}: {type(vars(cls)[key]).__name__} = {vars(cls)[key]!r}`)")
                raise ParameterError(
                    f"method '{cls.name}' has no parameter {bounds.brief(key)} "
                    f"(parameters: {', '.join(fields) or 'none'}){hint}"
                )
            default = fields[key].default
            if default is not None and default is not dataclasses.MISSING:
                params[key] = _coerce(cls.name, key, value, type(default))
            elif not bounds.plain(value):  # no default's type to check it against: a record must still hold it
                raise ParameterError(f"method '{cls.name}' parameter '{key}': expected plain data (finite numbers "
                                     f"within ±{bounds.MAX_NUMBER:g}, text, true/false, null, lists, mappings with "
                                     f"text keys; at most {bounds.MAX_DEPTH} levels deep), got {bounds.brief(value)}")
            why = bounds.problem(fields[key], params[key])
            if why:
                raise ParameterError(f"method '{cls.name}' parameter '{key}': {why}")
        unset = [f for f in fields.values() if f.init and f.name not in params
                 and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if unset:  # else the dataclass's own TypeError, a traceback from the middle of the plan
            f = unset[0]
            raise ParameterError(f"method '{cls.name}' parameter '{f.name}' has no default and is not set: give it one "
                                 f"in the class (`{f.name}: {getattr(f.type, '__name__', f.type)} = ...`), or set it "
                                 f"(--set {cls.name}.{f.name}=..., the suite's methods section, or in a test "
                                 f"check_method(..., params={{'{f.name}': ...}}))")
        return cls(**params)


# The families of the README's method table, in its order: leaderboard filters and plot panels.
FAMILIES = ("reference", "pruning", "one-shot pruning", "pruning during training", "sparse training",
            "quantization", "distillation", "combined", "other")


def _coerce(method: str, key: str, value: Any, tp: type) -> Any:
    """Accept a value of the default's type; ints are accepted where floats are expected. A NaN, an
    infinity or a number beyond bounds.MAX_NUMBER is refused: a run's record (strict JSON) holds
    its parameters, and its readers refuse such a number."""
    if bounds.too_large(value):  # (float() of 10**400 raises OverflowError)
        raise ParameterError(f"method '{method}' parameter '{key}': expected a number within "
                             f"±{bounds.MAX_NUMBER:g}, got {bounds.brief(value)}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"method '{method}' parameter '{key}': expected a finite number, got {value}")
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ParameterError(
        f"method '{method}' parameter '{key}' expects {tp.__name__}, got {type(value).__name__} {bounds.brief(value)}"
    )


METHODS: dict[str, type[Method]] = {}
SOURCES: dict[str, Source] = {}  # method name -> where its registration came from
BROKEN: dict[str, str] = {}  # plugin name -> error text of a plugin that failed to import


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a registration comes from: the module, and the installed distribution whose entry
    point loaded it (None for the built-in `methods` package, or code imported directly)."""

    module: str
    distribution: str | None = None
    checkout: str | None = None  # the folder of an editable install of that distribution: its code

    @property
    def builtin(self) -> bool:
        return self.distribution is None and self.module.split(".")[0] == "methods"

    @property
    def origin(self) -> str:
        """What `bench list methods` and a run record name: `built in`, or the distribution
        (`name version`) that declares the plugin, or the module where no distribution does."""
        return "built in" if self.builtin else self.distribution or self.module

    def __str__(self) -> str:
        where = ("built in" if self.builtin else f"distribution {self.distribution}" if self.distribution
                 else "no installed distribution")
        return f"{self.module} ({where})"


class DuplicateMethodError(ValueError):
    """A second registration of a method name that nothing allows."""


SHADOWING_VARIABLE = "BENCH_ALLOW_SHADOWING"


def _allowed_to_shadow() -> set[str]:
    """The built-in method names that $BENCH_ALLOW_SHADOWING (comma-separated) lets a plugin take."""
    return {n.strip() for n in os.environ.get(SHADOWING_VARIABLE, "").split(",")}


def replaces(name: str, held: Source, new: Source) -> bool:
    """Whether the registration from `new` takes method `name` from the one from `held`.

    Which plugin wins must never depend on import order, silently: a plugin replaces a built-in
    method only when the user names it in $BENCH_ALLOW_SHADOWING (comma-separated), and then
    whatever the order (True: `new` takes it; False: a built-in registering after such a plugin
    leaves it the name). Anything else raises DuplicateMethodError naming both sources."""
    if held.builtin != new.builtin and name in _allowed_to_shadow():
        return not new.builtin
    if held.builtin or new.builtin:
        hint = (f"a plugin replaces a built-in method only if {SHADOWING_VARIABLE} names it "
                f"({SHADOWING_VARIABLE}={name})")
    else:
        hint = "uninstall one of them, or rename the method in one"
    raise DuplicateMethodError(f"method '{name}' is already registered by {held}, so {new} cannot register it; {hint}")


_loading: tuple[str | None, str | None] = (None, None)  # the distribution (and its editable checkout) being imported


# A method's name names its records' and logs' files, and may not read as a chain ("a+b") or a
# --set key ("method.param"): letters, digits, '_' and '-', not starting with '-'.
METHOD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator that adds a method to the registry under `name`; a second registration
    of a name is settled by `replaces`. A name that is no METHOD_NAME is refused (a ValueError
    at the plugin's import, so its runs fail naming it): "../x" would write records elsewhere."""
    if not isinstance(name, str) or not METHOD_NAME.fullmatch(name):
        raise ValueError(f"@register_method({name!r}): a method name is letters, digits, '_' and '-' "
                         "(it names files, and '+' and '.' mean a chain and a --set key)")

    def add(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method('{name}') must decorate a subclass of bench.Method")
        if problem := _metadata_problem(cls):
            raise TypeError(f"@register_method('{name}'): {problem}")
        source = Source(cls.__module__, *_loading)
        cls.name = name
        if name not in METHODS and not source.builtin:
            _import_builtin_of(name)
        if name not in METHODS or METHODS[name] is cls or replaces(name, SOURCES[name], source):
            METHODS[name], SOURCES[name] = cls, source
        return cls

    return add


def _import_builtin_of(name: str) -> None:
    """Import the built-in method `name` (`methods/<name>.py`) where a plugin registers that name
    before the built-in was imported, so that `replaces` settles it whatever the import order: a
    run of a plugin's entry point (`--methods shadow`) that registers `magnitude` imported the
    plugin alone, which took the name, and the built-in, imported next, was the one refused (its
    runs then ran the plugin's code under the built-in's name)."""
    global _loading
    if (module := _builtin_module(name)) is None:
        return
    loading = _loading  # the plugin's, which the nested import resets
    try:
        _import_builtin(module)
    finally:
        _loading = loading


def _metadata_problem(cls: type[Method]) -> str | None:
    """What is wrong with the class attributes the driver reads into every record and plan (its
    description, family, sweep, starts_from, output), or None: checked at registration, so that a
    plugin with a bad one fails to import, naming it, rather than stopping a sweep mid-way."""
    try:
        description = cls.description()
    except Exception as e:  # noqa: BLE001 - a plugin's override
        return f"description() raised {type(e).__name__}: {e}"
    checks = [("description()", description, isinstance(description, str)),
              ("family", cls.family, isinstance(cls.family, str)),
              ("sweep", cls.sweep, cls.sweep is None or isinstance(cls.sweep, str)),
              ("starts_from", cls.starts_from, cls.starts_from in ("pretrained", "scratch")),
              ("output", cls.output, cls.output in ("float", "quantized"))]
    wrong = [f"{what} is {value!r}" for what, value, ok in checks if not ok]
    if wrong:
        return "; ".join(wrong) + " (see bench.Method: a string, and starts_from and output one of its values)"
    if cls.sweep is not None and cls.sweep not in {f.name for f in dataclasses.fields(cls)}:
        return unswept(cls.sweep)
    return None


def unordered(cls: str, param: str, annotation: Any) -> str:
    """Why a Method whose parameter without a default follows one with a default cannot be defined
    (a dataclass's __init__ takes them in order); `bench list methods` reads the same from its source."""
    kind = getattr(annotation, "__name__", annotation) or "TYPE"
    return (f"{cls}: parameter '{param}' has no default but follows a parameter that has one: give it a "
            f"default (`{param}: {kind} = ...`), or declare it before the parameters with defaults, and "
            f"every run must then set it (--set METHOD.{param}=...)")


def unswept(sweep: str) -> str:
    """Why a method whose `sweep` names no parameter of it cannot be registered (`bench list
    methods` reads the same from its source): the harness sets that parameter at every level."""
    return (f"sweep is {sweep!r}, which is no parameter of it; a parameter is a class attribute with a type "
            f"annotation (`{sweep}: float = bounded(0.9, ge=0, lt=1)`), a plain `{sweep} = 0.9` is none")


_discovered = False
# The plugins imported so far: ("methods", module) for a built-in file, ("entry point", name) for an
# installed plugin. Apart, because an entry point named as the built-in it would replace (as the
# README advises naming one) must still be imported, to be refused or allowed by `replaces`.
_imported: set[tuple[str, str]] = set()


def discover() -> None:
    """Import the `methods` package's modules and the `bench.methods` entry points, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        _import_builtin(info.name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _import_entry_point(ep)


def load(names: Iterable[str]) -> None:
    """Import the plugins that provide `names`, and no other: a command that runs two methods does
    not pay for importing torchao, scikit-learn and every other plugin's libraries (seconds in
    every worker process). A built-in method is `methods/<name>.py` (`-` written `_`), a plugin
    the entry point of its name; a name that is neither, or one that $BENCH_ALLOW_SHADOWING lets a
    plugin take, imports them all (`discover`), as does a name nothing registers after that."""
    allowed = _allowed_to_shadow()
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name in names:
        if name in METHODS or name in BROKEN:
            continue
        module = _builtin_module(name)
        if name in allowed or not (module or name in plugins):
            discover()
            return
        if module:
            _import_builtin(module, name)
        if name in plugins:  # also beside a built-in file of its name: it is refused, naming both
            _import_entry_point(plugins[name])
        if name not in METHODS and name not in BROKEN:
            discover()  # registered under another name than its file's or entry point's


def _builtin_module(name: str) -> str | None:
    """The module of `methods/` that is the built-in method `name` (`methods/<name>.py`, `-`
    written `_`), or None where there is no such file."""
    import methods

    module = name.replace("-", "_")
    return module if (Path(next(iter(methods.__path__))) / f"{module}.py").is_file() else None


def _import_builtin(module: str, wanted: str | None = None) -> None:
    """Import `methods/<module>.py`. Where a run names it (`wanted`, its method's name) and the
    file registers no method at all, that name is a broken plugin saying so, as an entry point's
    is: `unknown method` would hide the file the user just wrote (a decorator left out). A file
    that fails to import is broken under that name too (`--methods my_method` for my_method.py),
    else under its file's name written with `-`, as the built-ins are named."""
    name = wanted or module.replace("_", "-")
    if ("methods", module) in _imported:
        return
    _imported.add(("methods", module))
    fresh = f"methods.{module}" not in sys.modules  # imported before: registers nothing again
    registered = _import_plugin(name, lambda: importlib.import_module(f"methods.{module}"))
    if fresh and wanted is not None and wanted not in BROKEN and not registered:
        BROKEN[wanted] = (f"PluginError: methods/{module}.py imported, but registered no method: decorate its "
                          f"class with @register_method({wanted!r})")


def _import_entry_point(ep: EntryPoint) -> None:
    if ("entry point", ep.name) in _imported:
        return
    _imported.add(("entry point", ep.name))
    if not METHOD_NAME.fullmatch(ep.name):  # it names record files: '../x' would write outside results/
        print(f"bench: warning: entry point {ep.name!r} of {distribution_of(ep) or 'an unknown distribution'} "
              "ignored: a method name is letters, digits, _ and -", file=sys.stderr)
        return
    fresh = ep.module not in sys.modules  # a module imported before registers nothing again
    registered = _import_plugin(ep.name, ep.load, distribution_of(ep), editable_checkout(ep))
    if fresh and ep.name not in BROKEN and not registered:  # the decorator left out
        BROKEN[ep.name] = (f"PluginError: its module {ep.module} imported, but registered no method: decorate its "
                           f"class with @register_method({ep.name!r})")


def distribution_of(ep: EntryPoint) -> str | None:
    """`name version` of the distribution that declares an entry point, where known; printable,
    since the listing, the warnings and every record of its methods show it, and a package's
    metadata may hold a terminal's escape sequences."""
    return printable(f"{ep.dist.name} {ep.dist.version}") if ep.dist is not None else None


def editable_checkout(ep: EntryPoint) -> str | None:
    """The folder of the distribution declaring an entry point when it is an editable install
    (`pip install -e`, PEP 660: its direct_url.json says so), whose code can change without a new
    version; None otherwise."""
    import json
    from urllib.parse import unquote, urlparse

    try:
        info = json.loads((ep.dist.read_text("direct_url.json") if ep.dist is not None else None) or "{}")
    except ValueError:
        return None
    url = info.get("url", "") if isinstance(info, dict) else ""
    editable = isinstance(info, dict) and isinstance(info.get("dir_info"), dict) and info["dir_info"].get("editable")
    return unquote(urlparse(url).path) if editable and url.startswith("file://") else None


def _import_plugin(name: str, load: Callable[[], object], distribution: str | None = None,
                   checkout: str | None = None) -> bool:
    """Import one plugin; whether it registered a method (a built-in replaced too), so that a
    plugin whose decorator was left out is named as such. A failure (sys.exit and the plugin's own
    KeyboardInterrupt included, the user's Ctrl-C excluded; a name registered twice, see
    `replaces`) is remembered with its cause on the first line, so that consoles and tables show
    why, not just that, it failed. Its registrations are traced to `distribution` (and the
    `checkout` of its editable install)."""
    global _loading
    before = dict(METHODS)
    _loading = (distribution, checkout)
    try:
        load()
    except BaseException as e:  # noqa: BLE001 - a broken plugin must not take the harness down
        if stops_the_sweep(e):
            raise
        BROKEN[name] = f"{error_summary(e)}\n{traceback.format_exc(limit=-3).strip()}"
    finally:
        _loading = (None, None)
    return any(cls is not before.get(n) for n, cls in METHODS.items())


def error_summary(e: BaseException) -> str:
    """One line saying what went wrong: `SyntaxError: expected ':' (method.py, line 6)`."""
    if isinstance(e, SystemExit):
        return f"SystemExit: the plugin called sys.exit({e.code!r})"
    if isinstance(e, KeyboardInterrupt):  # a failure, so not the user's Ctrl-C (errors.stops_the_sweep)
        return f"KeyboardInterrupt: raised by the plugin's own code, not by Ctrl-C{': ' + str(e) if str(e) else ''}"
    return f"{type(e).__name__}: {e}"


def unknown_method(name: str, registered: Iterable[str] | None = None) -> str:
    """The message for a name that is no registered method: the closest names, then all (the
    `registered` names where the caller knows them, else every plugin's, imported)."""
    if registered is None:
        discover()  # every name, for the suggestions
        registered = set(METHODS) | set(BROKEN)
    known = sorted(registered)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    words = [w for w in name.replace(",", " ").split()]
    if len(words) > 1 and all(w in known for w in words):  # --methods 'magnitude gmp': one name to argparse, two to the user
        joined = ",".join(words)  # (bounded as the name is: a quoted line of 60,000 words echoed them all)
        hint = f"did you mean {joined if len(joined) <= 200 else joined[:200] + '...'} (a comma list, without spaces)? "
    return f"unknown method {bounds.brief(name)}; {hint}registered: {', '.join(known)}"


def select(spec: str) -> list[str]:
    """Method names from `all`, a comma list, glob patterns and chains (`magnitude+ptq-int8`);
    unknown names get suggestions.

    Broken plugins (failed imports) are selectable by their module or entry-point name, so they
    show up as failed rows. Only the plugins of named methods are imported (`load`); `all` and
    patterns import every plugin.
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if named(spec) is None:
        discover()
    chosen: list[str] = []
    for part in parts:
        known = sorted(set(METHODS) | set(BROKEN))
        if part == "all":
            matches = known
        elif any(c in part for c in "*?["):
            matches = fnmatch.filter(known, part)
            if not matches:
                raise UnknownMethodError(f"no method matches {bounds.brief(part)}; registered: {', '.join(known)}")
        else:
            load(part.split("+"))  # a single method, or each link of a chain
            for name in part.split("+"):
                if name not in METHODS and name not in BROKEN:
                    raise UnknownMethodError(unknown_method(name))
            matches = [part]
        chosen += [m for m in matches if m not in chosen]
    if not chosen:
        raise UnknownMethodError("no method selected")
    return chosen


def named(spec: str) -> list[str] | None:
    """The method names a --methods value spells out, each link of a chain on its own; None
    where it selects by `all` or a pattern, which only importing every plugin resolves."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if any(p == "all" or any(c in p for c in "*?[") for p in parts):
        return None
    return [name for part in parts for name in part.split("+")]


class UnknownMethodError(KeyError):
    """A --methods name or pattern that selects no registered method (a usage error: exit 2);
    shown as its message, not as KeyError's quoted repr."""

    def __str__(self) -> str:
        return str(self.args[0])
