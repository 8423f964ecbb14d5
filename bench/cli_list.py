"""`bench list`: the shipped suites, or the registered methods, as a table or, for tools, JSON.

The methods are read from the plugins' source (bench.catalog), so that the listing answers
without importing torch or the plugins; `--check` imports every plugin, as `bench run` does, so
that import failures show.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

from tabulate import tabulate

from bench import registry
from bench.errors import first_line
from bench.suite import available_suites, load_suite


def cmd_list(args: argparse.Namespace) -> int:
    """`bench list`: the shipped suites, or the registered methods (read from the plugins'
    source, or imported with --check); a table, or with --json a list of objects for tools."""
    if args.what == "suites":
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
            entries.append({"method": name, "family": cls.family, "origin": registry.SOURCES[name].origin,
                            "description": cls.description(), "parameters": cls.parameters(), "sweep": cls.sweep,
                            "problem": None})
        entries += [{"method": name, "problem": "FAILED TO IMPORT: " + first_line(err)}
                    for name, err in sorted(registry.BROKEN.items())]
    else:  # from the plugins' source, without importing them (bench.catalog)
        from bench.catalog import catalog

        entries = [{"method": i.name, "family": i.family, "origin": i.origin, "description": i.description,
                    "parameters": i.parameters, "sweep": i.sweep, "problem": None} if i.problem is None
                   else {"method": i.name, "problem": i.problem} for i in catalog()]
    if args.json:
        print(json.dumps(entries, indent=1, default=str))
        return 0
    rows = [[e["method"], e.get("family", ""), e.get("origin", ""), e["problem"] or e["description"] or NO_DESCRIPTION,
             _parameters(e.get("parameters", {}), e.get("sweep"))] for e in entries]
    headers = ["method", "family", "origin", "description", "parameters (defaults)"]
    if all(row[2] in ("built in", "") for row in rows):  # the column says something only beside a plugin
        rows, headers = [[r[0], r[1], *r[3:]] for r in rows], [headers[0], headers[1], *headers[3:]]
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        print(_wrapped(rows, headers, shutil.get_terminal_size().columns))
    else:  # piped: a line per method, for grep
        print(tabulate(rows, headers=headers))
    return 0


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


def _parameters(params: dict[str, Any], sweep: str | None) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return (text + (f" (swept: {sweep})" if sweep else "")) or "-"
