"""What the plugins are, read from their source without importing them.

Importing the plugins imports torch, torchao, scikit-learn and torch-pruning: seconds before
`bench list methods` could print a line. A plugin's metadata is plain Python syntax, so this
module reads it with `ast`: the name given to `@register_method` (a literal, or a module constant
assigned one), the first line of the class
docstring, the dataclass fields (annotated class attributes with literal defaults, plain or
through `bounded(...)`/`field(default=...)`, or a literal `default_factory`, inherited from plugin classes they extend),
`sweep` and `family`. A plugin whose metadata is not literal (a computed default) is listed as unreadable
here, and `bench list methods --check` imports every plugin, as `bench run` does.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bench.registry import (ENTRY_POINT_GROUP, METHOD_NAME, DuplicateMethodError, Source, distribution_of,
                            replaces, unordered, unswept)


@dataclass
class PluginInfo:
    name: str
    description: str
    parameters: dict[str, Any]
    sweep: str | None = None
    family: str = "other"
    problem: str | None = None  # why it is unusable ("UNREADABLE: ...", "REFUSED: ..."), if it is
    origin: str = "built in"  # bench.registry.Source.origin
    required: list[str] = field(default_factory=list)  # the parameters without a default (None in `parameters`)


@dataclass
class _Class:
    name: str
    bases: list[str]
    registered: str | None
    doc: str
    fields: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)  # sweep and family, where set
    annotations: dict[str, str] = field(default_factory=dict)  # each field's, as written


NO_DEFAULT = object()  # an annotated field without a value: every run sets it (PluginInfo.required)
EMPTY = {"list": list, "dict": dict, "tuple": tuple}  # `field(default_factory=list)`


def _default(node: ast.expr) -> Any:
    """The literal default of a field: `0.9`, `bounded(0.9, ...)`, `field(default=0.9)`, or
    `field(default_factory=...)` of a literal lambda or an empty list, dict or tuple; a
    ValueError for anything else (a field without a default, a computed one)."""
    if not isinstance(node, ast.Call):
        return ast.literal_eval(node)
    for kw in node.keywords:
        if kw.arg == "default":
            return ast.literal_eval(kw.value)
        if kw.arg == "default_factory":
            if isinstance(kw.value, ast.Lambda):
                return ast.literal_eval(kw.value.body)
            if isinstance(kw.value, ast.Name) and kw.value.id in EMPTY:
                return EMPTY[kw.value.id]()
            raise ValueError(f"a default_factory that is not a literal ({ast.unparse(kw.value)})")
    if not node.args:
        raise ValueError(f"a field without a default ({ast.unparse(node)})")
    return ast.literal_eval(node.args[0])


def _registered_name(cls: ast.ClassDef, constants: dict[str, Any]) -> str | None:
    """The name `@register_method(...)` gives the class: a literal, or a module-level constant
    assigned a literal; a ValueError for a name computed at import time."""
    for deco in cls.decorator_list:
        if (isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", None))
                == "register_method" and deco.args):
            arg = deco.args[0]
            if isinstance(arg, ast.Constant):
                return arg.value
            if isinstance(arg, ast.Name) and arg.id in constants:
                return constants[arg.id]
            raise ValueError(f"class {cls.name} registers a name computed at import time "
                             f"({ast.unparse(arg)}); `bench list methods --check` imports it")
    return None


def _constants(module: ast.Module) -> dict[str, Any]:
    """The module's top-level `NAME = <literal>` assignments."""
    out = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                out.pop(node.targets[0].id, None)  # assigned something computed
    return out


def _classes(path: Path) -> list[_Class]:
    out = []
    module = ast.parse(path.read_text(), filename=str(path))
    constants = _constants(module)
    for node in module.body:
        if not isinstance(node, ast.ClassDef):
            continue
        c = _Class(node.name, [getattr(b, "id", getattr(b, "attr", "")) for b in node.bases],
                   _registered_name(node, constants), (ast.get_docstring(node) or "").strip().split("\n")[0])
        for item in node.body:
            target = item.targets[0] if isinstance(item, ast.Assign) and len(item.targets) == 1 else (
                item.target if isinstance(item, ast.AnnAssign) else None)
            name = getattr(target, "id", None)
            if name in ("sweep", "family") and item.value is not None:  # `family = ...` or `family: ClassVar[str] = ...`
                c.attrs[name] = ast.literal_eval(item.value)
            elif isinstance(item, ast.AnnAssign) and name and "ClassVar" not in ast.unparse(item.annotation):
                c.fields[name] = _default(item.value) if item.value is not None else NO_DEFAULT
                c.annotations[name] = ast.unparse(item.annotation)
        out.append(c)
    return out


def _sources() -> tuple[list[tuple[str, Path, Source, bool]], list[PluginInfo]]:
    """(plugin name, source file, where its registrations come from, whether an entry point names
    it) of the `methods` package's modules (named by file) and of the installed entry points, in
    the order bench.registry.discover imports them; and the entry points whose module is not
    there (a typo in its path, a module renamed since the package was installed), listed with the
    module, where they would be missing from the list."""
    spec = importlib.util.find_spec("methods")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = [(p.stem.replace("_", "-"), p, Source(f"methods.{p.stem}"), False)
             for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
    lost = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        name = ep.value.split(":")[0]
        module = _find(name)
        if module is not None and module.origin:
            found.append((ep.name, Path(module.origin), Source(name, distribution_of(ep)), True))
        else:
            where = f"{ep.name} = {ep.value}" + (f" of {d}" if (d := distribution_of(ep)) else "")
            lost.append(PluginInfo(ep.name, "", {}, problem=f"UNREADABLE: no module {name} (entry point {where}): "
                                   "correct the entry point's module in its package, then reinstall the package"))
    return found, lost


def _find(module: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of an entry point's module; None where it is not there (a module or package
    that does not exist, which find_spec raises for rather than answer None)."""
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def catalog() -> list[PluginInfo]:
    """Every plugin's metadata, sorted by method name; unreadable plugins carry their problem, and
    so do plugins that register a name already taken, as importing them would (see
    bench.registry.replaces): the listing shows what `bench run` would run."""
    sources, broken = _sources()
    parsed: dict[Path, list[_Class]] = {}
    problems: dict[Path, str] = {}
    for _, path, _, _ in sources:
        if path not in parsed and path not in problems:  # one module may hold several plugins
            try:
                parsed[path] = _classes(path)
            except (SyntaxError, ValueError, OSError) as e:
                problems[path] = f"{type(e).__name__}: {e}"
    by_name = {c.name: c for classes in parsed.values() for c in classes}

    def resolve(c: _Class) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fields and class attributes, inherited from plugin base classes as Python would."""
        fields: dict[str, Any] = {}
        attrs: dict[str, Any] = {}
        for base in (by_name[b] for b in reversed(c.bases) if b in by_name):
            base_fields, base_attrs = resolve(base)
            fields.update(base_fields)
            attrs.update(base_attrs)
        fields.update(c.fields)  # a redefined field keeps its place, as in dataclasses
        return fields, {**attrs, **c.attrs}

    infos: dict[str, PluginInfo] = {}  # method name -> its info, as registering them in order leaves it
    held: dict[str, Source] = {}
    for plugin, path, source, entry_point in sources:
        if path in problems:
            broken.append(PluginInfo(plugin, "", {}, problem=f"UNREADABLE: {problems[path]}"))
            continue
        registered = [c for c in parsed[path] if c.registered]
        if entry_point and not registered:  # registers at import time, if at all
            broken.append(PluginInfo(plugin, "", {}, problem=f"UNREADABLE: {path.name} registers no method in its "
                                     "source (`bench list methods --check` imports it)"))
        elif not registered and (unregistered := [c.name for c in parsed[path] if "Method" in c.bases]):
            # a new file in methods/ whose decorator was left out: listed, not silently missing
            broken.append(PluginInfo(plugin, "", {}, problem=f"NOT REGISTERED: {path.name} defines {unregistered[0]}, "
                                     f"a Method, but registers nothing: decorate it with @register_method({plugin!r})"))
        for c in registered:
            name = c.registered
            if not METHOD_NAME.fullmatch(name):  # its import would fail in register_method
                broken.append(PluginInfo(plugin, "", {}, problem=f"REFUSED: the method name {name!r} is not letters, "
                                         "digits, '_' and '-'"))
                continue
            try:
                if name in held and held[name] != source and not replaces(name, held[name], source):
                    continue  # a built-in after the plugin allowed to replace it
            except DuplicateMethodError as e:  # its import would stop here
                broken.append(PluginInfo(plugin, "", {}, problem=f"REFUSED: {type(e).__name__}: {e}"))
                break
            params, attrs = resolve(c)
            if isinstance(attrs.get("sweep"), str) and attrs["sweep"] not in params:  # its import would fail
                broken.append(PluginInfo(plugin, "", {},
                                         problem=f"REFUSED: @register_method('{name}'): {unswept(attrs['sweep'])}"))
                break
            late = [p for i, p in enumerate(params) if params[p] is NO_DEFAULT
                    and any(params[q] is not NO_DEFAULT for q in list(params)[:i])]
            if late:  # its import would fail defining the dataclass
                why = unordered(c.name, late[0], c.annotations.get(late[0]))
                broken.append(PluginInfo(plugin, "", {}, problem=f"REFUSED: {why}"))
                break
            infos[name] = PluginInfo(name, c.doc, {p: None if v is NO_DEFAULT else v for p, v in params.items()},
                                     attrs.get("sweep"), attrs.get("family", "other"), origin=source.origin,
                                     required=[p for p, v in params.items() if v is NO_DEFAULT])
            held[name] = source
    return sorted([*infos.values(), *broken], key=lambda i: i.name)


def registered_names() -> set[str] | None:
    """Every name `bench run` can select, read from the plugins' sources: the methods they
    register and the plugins' own names (a plugin that fails to import is selected by its name,
    as a failed row). None where a plugin's source is unreadable: only importing it tells."""
    infos = catalog()
    if any(i.problem is not None and i.problem.startswith("UNREADABLE") for i in infos):
        return None
    entry_points_named = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}  # found or not: a broken one is a row
    return {i.name for i in infos} | {plugin for plugin, _, _, _ in _sources()[0]} | entry_points_named

