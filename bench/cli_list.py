"""`bench list`: the shipped suites, or the registered methods, as a table or, for tools, JSON;
`bench list METHOD`: one method in full, its parameters with their ranges.

The methods are read from the plugins' source (bench.catalog), so that the listing answers
without importing torch or the plugins; `--check` imports every plugin, as `bench run` does, so
that import failures show. A method named in full is imported (its ranges are `bounded(...)`
calls, which only the imported dataclass holds).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import os
import shutil
import sys
from typing import Any

from tabulate import tabulate

from bench import registry
from bench.errors import first_line, printable
from bench.suite import available_suites, load_suite


def cmd_list(args: argparse.Namespace) -> int:
    """`bench list`: the shipped suites, or the registered methods (read from the plugins'
    source, or imported with --check); a table, or with --json a list of objects for tools. Names
    after it (`bench list magnitude`, `bench list methods magnitude`) show those methods in full."""
    what, names = args.what, list(args.names)
    if what not in LISTS:  # `bench list magnitude`: a method's name where the list's kind would be
        what, names = "methods", [what, *names]
    if names:
        if args.check:
            print("bench list: error: --check imports every plugin and lists them all; give it no method names",
                  file=sys.stderr)
            return 2
        if what == "suites":
            print("bench list: error: `bench list suites` takes no names; `bench list METHOD` shows a method in full",
                  file=sys.stderr)
            return 2
        try:
            return _methods_in_full(",".join(names), args.json)
        except registry.UnknownMethodError:
            if suite := next((name for name in names if name in available_suites()), None):
                print(f"bench list: error: {suite!r} is a suite, not a method: bench list suites lists the suites, "
                      f"bench leaderboard --show --suite {suite} shows its results", file=sys.stderr)
                return 2  # `bench list mlp`: not "did you mean imp, gmp?"
            if args.what not in LISTS and (close := difflib.get_close_matches(args.what.lower(), LISTS, n=1, cutoff=0.7)):
                print(f"bench list: error: {args.what!r} is neither a list nor a method; did you mean "
                      f"bench list {close[0]}?", file=sys.stderr)  # `bench list suite`: not "did you mean student"
                return 2
            raise
    if what == "suites":
        entries = []
        for name, path in available_suites().items():
            s = load_suite(str(path))
            entries.append({"suite": name, "description": s.description, "model": s.model.name,
                            "dataset": s.data.dataset, "epochs": s.training.epochs,
                            "finetune_epochs": s.training.finetune_epochs, "seeds": list(s.seeds), "path": str(path)})
        if args.json:
            print(json.dumps(entries, indent=1))
        else:
            print(tabulate([[e["suite"], e["description"], e["model"], e["dataset"],
                             f"{e['epochs']}+{e['finetune_epochs']}", ",".join(map(str, e["seeds"]))] for e in entries],
                           headers=["suite", "description", "model", "dataset", "epochs", "seeds"]))
        return 0
    entries = []
    if args.check:  # import every plugin, as `bench run` does: import failures show
        registry.discover()
        for name in sorted(registry.METHODS):
            cls = registry.METHODS[name]
            defaults = cls.parameters()
            fields = [f.name for f in dataclasses.fields(cls) if f.init]
            entries.append({"method": name, "family": cls.family, "origin": registry.SOURCES[name].origin,
                            "description": cls.description(), "parameters": {p: defaults.get(p) for p in fields},
                            "required": [p for p in fields if p not in defaults], "sweep": cls.sweep, "problem": None})
        entries += [{"method": name, "problem": "FAILED TO IMPORT: " + first_line(err)}
                    for name, err in sorted(registry.BROKEN.items())]
    else:  # from the plugins' source, without importing them (bench.catalog)
        from bench.catalog import catalog

        entries = [{"method": i.name, "family": i.family, "origin": i.origin, "description": i.description,
                    "parameters": i.parameters, "required": i.required, "sweep": i.sweep, "problem": None}
                   if i.problem is None
                   else {"method": i.name, "problem": i.problem} for i in catalog()]
    if args.json:
        print(json.dumps(entries, indent=1, default=str))
        return 0
    # printable: a plugin's family, description, entry point and parameters are its author's text
    rows = [[printable(str(cell)) for cell in (
             e["method"], e.get("family", ""), e.get("origin", ""), e["problem"] or e["description"] or NO_DESCRIPTION,
             _parameters(e.get("parameters", {}), e.get("required", []), e.get("sweep")))] for e in entries]
    headers = ["method", "family", "origin", "description", "parameters (defaults)"]
    if all(row[2] in ("built in", "") for row in rows):  # the column says something only beside a plugin
        rows, headers = [[r[0], r[1], *r[3:]] for r in rows], [headers[0], headers[1], *headers[3:]]
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        print(_wrapped(rows, headers, shutil.get_terminal_size().columns))
    else:  # piped: a line per method, for grep
        print(tabulate(rows, headers=headers))
    return 0


LISTS = ("methods", "suites")


def _methods_in_full(spec: str, as_json: bool) -> int:
    """The methods `spec` names (names, glob patterns, chains: each link), each with its family,
    its whole docstring and a line per parameter (default, the values it takes, whether it is
    swept), so that a newcomer who asks for a method's parameters learns their ranges and the
    --set that changes them, not only the defaults the table gives."""
    try:
        chosen = registry.select(spec)
    except registry.UnknownMethodError as e:
        raise registry.UnknownMethodError(f"{e} (bench list takes methods, suites, or methods' names)") from None
    names = list(dict.fromkeys(link for name in chosen for link in name.split("+")))
    entries, blocks = [], []
    for name in names:
        if name in registry.BROKEN:
            entries.append({"method": name, "problem": "FAILED TO IMPORT: " + first_line(registry.BROKEN[name])})
            blocks.append(f"{name}\n  {entries[-1]['problem']}")
            continue
        cls = registry.METHODS[name]
        defaults = cls.parameters()  # a default_factory's made too (a list parameter)
        params = [(f.name, defaults.get(f.name, REQUIRED), _values(f, defaults.get(f.name)), f.name == cls.sweep)
                  for f in dataclasses.fields(cls) if f.init]
        entries.append({"method": name, "family": cls.family, "origin": registry.SOURCES[name].origin,
                        "description": cls.description(), "doc": inspect.cleandoc(cls.__doc__ or ""),
                        "sweep": cls.sweep, "starts_from": cls.starts_from, "output": cls.output,
                        "parameters": {p: {"default": None if d is REQUIRED else d, "required": d is REQUIRED,
                                           "values": v} for p, d, v, _ in params}, "problem": None})
        start = ("starts from the trained dense model" if cls.starts_from == "pretrained"
                 else "trains the suite's model from scratch")
        doc = inspect.cleandoc(cls.__doc__ or "") or NO_DESCRIPTION
        lines = [f"{name} ({cls.family}; {registry.SOURCES[name].origin}): {start}"
                 + ("; returns a final quantized model" if cls.output == "quantized" else ""), "",
                 *(f"  {line}".rstrip() for line in doc.splitlines()), ""]
        if params:
            rows = [[p, _text(d), v + ("; swept: the suite's sparsity levels, unless set" if swept else "")]
                    for p, d, v, swept in params]
            lines += [f"parameters (set one with --set {name}.PARAM=VALUE, e.g. --set {name}.{params[0][0]}="
                      f"{_text(params[0][1])}):", *("  " + row for row in tabulate(
                          rows, headers=["parameter", "default", "values"], disable_numparse=True).splitlines())]
        else:
            lines.append("parameters: none")
        blocks.append("\n".join(printable(line) for line in lines))
    if as_json:
        print(json.dumps(entries, indent=1, default=str))
    else:
        print("\n\n".join(blocks))
    return 0


REQUIRED = "(none: set it)"  # a parameter without a default, which every run must set


def _values(f: dataclasses.Field, default: Any) -> str:
    """What a parameter accepts, in words: its `bounded` range or choices, else its default's type
    (the type a --set value is read as)."""
    bounds = f.metadata.get("bounds")
    if bounds is not None and bounds.choices is not None:
        return "one of " + ", ".join(map(_text, bounds.choices))
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "text", list: "a list"}
    kind = kinds.get(type(default), "a value")
    if type(default) is bool or bounds is None:
        return kind
    return f"{kind} {bounds.describe()}"


def _text(value: Any) -> str:
    """A value as `--set` takes it (YAML): true, not True."""
    return str(value).lower() if isinstance(value, bool) else "null" if value is None else str(value)


# A blank cell read as a listing fault; a plugin's author learns where the description comes from.
NO_DESCRIPTION = "(none: the first line of the class's docstring describes it)"


def _wrapped(rows: list[list[str]], headers: list[str], width: int) -> str:
    """A table whose last two columns (the long texts) wrap so that its lines fit `width`; the
    other columns keep their width. Below about 75 columns the lines exceed it rather than
    wrapping to a word per line."""
    fixed = [max(len(str(x)) for x in [h, *(r[i] for r in rows)]) for i, h in enumerate(headers[:-2])]
    room = max(width - sum(fixed) - 2 * (len(headers) - 1), 2 * 16)
    widths = [None] * len(fixed) + [room // 2, room - room // 2]
    return tabulate(rows, headers=headers, maxcolwidths=widths, maxheadercolwidths=widths)


def _parameters(params: dict[str, Any], required: list[str], sweep: str | None) -> str:
    """A method's parameters with their defaults, one without a default shown as one to set
    (its default in the JSON is null, which a parameter may also default to)."""
    text = ", ".join(f"{k}={REQUIRED if k in required else v}" for k, v in params.items())
    return (text + (f" (swept: {sweep})" if sweep else "")) or "-"
