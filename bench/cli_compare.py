"""`bench compare`: the tables and the exit status of bench.compare's verdicts.

What a change is and how it is judged (Welch's interval over the seeds) is bench.compare's, a
pure function of the records; this module prints it per suite and decides the exit status
(--fail-on regression), so that the judgement is tested on planted records apart from the text.
"""

from __future__ import annotations

import argparse
import difflib
import math
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from bench import layout, registry
from bench.bounds import brief
from bench.errors import counted, printable
from bench.plan import setting_label
from bench.records import Record, Status
from bench.suite import SuiteError, available_suites, is_plain_name, results_name

if TYPE_CHECKING:  # bench.compare imports pandas (bench.board), which the other commands' refusals do without
    from bench.compare import MethodSpec, RowChange, Side, Unpaired


def cmd_compare(args: argparse.Namespace) -> int:
    """`bench compare A B` (bench.compare): one table per suite, the rows only one side holds
    counted, exit 1 with --fail-on regression when a row got significantly worse; with
    --methods X,Y, Y's rows against X's in A (--match compression: paired by size)."""
    from bench import compare

    if args.suite is not None:
        args.suite = results_name(args.suite)
    if args.suite is not None and not is_plain_name(args.suite):
        raise SuiteError(f"--suite {brief(args.suite)}: expected a suite name, or a suite file")
    if args.methods is None and (args.match is not None or args.within is not None):
        raise registry.ParameterError(f"{'--match' if args.match is not None else '--within'}: pairs the rows of "
                                      "two methods within A, with --methods X,Y")
    if args.methods is not None:
        return _compare_methods(args)
    if args.ignore:
        raise registry.ParameterError(f"--ignore {brief(args.ignore[0])}: leaves a parameter out of the pairing "
                                      "of two methods, with --methods X,Y")
    if args.b is None:
        raise registry.ParameterError("bench compare A B needs B, the results to compare with A "
                                      "(or --methods X,Y to compare two methods within A)")
    with compare.sides([args.a, args.b], args.suite) as (a, b):
        print(f"A = {a.what}\nB = {b.what}\n")
        suites = _suites({args.a: a, args.b: b}, args.suite)
        stored = {name: (a.load(name), b.load(name)) for name in suites}
        shared = compare.compare([r for recs, _ in stored.values() for r in recs],
                                 [r for _, recs in stored.values() for r in recs])  # one family, all suites
        for name, (recs_a, recs_b) in stored.items():
            changes = [c for c in shared if c.suite == name]
            only_a, only_b = compare.unshared(recs_a, recs_b)
            print(f"# {name}: {counted(len(changes), 'row')} in both; {only_a} only in A, {only_b} only in B\n")
            if not changes and (why := compare.apart(recs_a, recs_b)):
                print(f"no row is in both: rows pair up at one budget, data source and device; {why}\n")
            table = [[c.method, c.setting, *_change_cells(c),
                      "; ".join(f"{k} {_moved(va, vb)}" for k, (va, vb) in c.exact_changes.items())]
                     for c in _shown(changes, args.only_changed, "row")]
            _print_table(table, ["method", "setting", "budget", "seeds A/B", "acc A (%)", "acc B (%)",
                                 "change (pts) [95% CI]", "p / Holm", "verdict", "exact figures that moved"])
    worse = sum(c.verdict == "worse" for c in shared)
    print(f"{counted(worse, 'row')} significantly worse in B, {_better(shared)} better ({_judgement(shared, 'row')})")
    for note in _notes(shared, "row"):
        print(note)
    return 1 if worse and args.fail_on == "regression" else 0


def _moved(a: float, b: float) -> str:
    """`A -> B` for an exact figure whose mean moved, with as many significant digits (6 or more)
    as tell the two apart: a Huffman-coded row's mean compression moves in its seventh digit, and
    `116.92 -> 116.92` read as a move that was none."""
    digits = next((d for d in range(6, 18) if f"{a:.{d}g}" != f"{b:.{d}g}"), 17)
    return f"{a:.{digits}g} -> {b:.{digits}g}"


def _suites(sides: dict[str, Side], suite: str | None) -> list[str]:
    """The suites to compare (each side by how the user named it): --suite's, refused where a side
    holds no records of it, else those every side holds, refused where a side holds none (named
    as a suite's folder where it is one: `bench compare results/mlp ...`) or they share none. A
    misspelt --suite printed an empty table and exit 0, which --fail-on regression passed."""
    held = {spec: set(layout.suites_with_records(side.folder)) for spec, side in sides.items()}
    for spec, side in sides.items():
        own = side.shown_as is None  # a folder of the user's, not a commit's records written out
        if own and (why := layout.folder_too_deep(side.folder, "")):
            raise registry.ParameterError(why)
        if suite is not None and suite not in held[spec]:
            names = sorted((held[spec] | set(available_suites())) - {suite})
            close = difflib.get_close_matches(suite, names, n=1, cutoff=0.6)
            raise registry.ParameterError(
                f"--suite {suite}: {spec} holds no run records of it"
                + (f"; did you mean --suite {close[0]}?" if close else "")
                + (f" (suites with records there: {', '.join(sorted(held[spec]))})" if own and held[spec] else ""))
        if not held[spec]:
            raise registry.ParameterError(f"{spec} holds no run records (a results folder holds SUITE/runs/*.json)")
    if suite is not None:
        return [suite]
    common = sorted(set.intersection(*held.values()))
    if not common:
        raise registry.ParameterError(" and ".join(f"{spec} holds records of {', '.join(sorted(names))}"
                                                   for spec, names in held.items()) + ": no suite in common")
    return common


def _better(changes: list[RowChange]) -> int:
    """How many rows Holm's correction judged better: the summary counted only the worse ones,
    which is what --fail-on needs, but a reader choosing between two methods asked which one
    wins, and "0 worse" said nothing of the settings where the other one led."""
    return sum(c.verdict == "better" for c in changes)


def _judgement(changes: list[RowChange], noun: str) -> str:
    """How the verdicts were reached, after their count: without the family's size, "0 rows
    worse" cannot be read against the chance of a false one."""
    judged = sum(c.p is not None for c in changes)
    return (f"Welch's t over seeds, 95%, Holm's correction over the {counted(judged, noun)} judged: "
            "the chance of any wrong better or worse among them is at most 5%")


def _notes(changes: list[RowChange], noun: str) -> list[str]:
    """The lines after the count of worse rows that say which rows it leaves undecided."""
    from bench import compare

    return [note for note in (compare.chance_note(changes, noun), compare.unjudged_note(changes, noun),
                              compare.machines_note(changes, noun)) if note]


def _shown(changes: list[RowChange], only_changed: bool, noun: str) -> list[RowChange]:
    """The rows to print: all, or (--only-changed) those significantly better or worse, or
    unclear (significant on their own but not after Holm, or beyond zero but not beyond the
    machines' margin: they may have moved), or whose exact figures moved, or too few seeds to
    judge a mean that moved (a one-seed quick run 40 points down was hidden as "without a
    significant change"), after a line counting the rest, as asv's `compare --only-changed`."""
    from bench.compare import MOVED

    if not only_changed:
        return changes
    shown = [c for c in changes if c.verdict in MOVED or c.exact_changes or (c.p is None and c.change != 0)]
    print(f"{counted(len(changes) - len(shown), noun)} without a significant change in accuracy or a moved "
          "exact figure not shown (--only-changed)\n")
    return shown


def _pair_headers(x: str, y: str) -> list[str]:
    """The headings of `compare --methods`' cells after the settings and budget, each method's
    name on a line of its own: on one line ("compression magnitude/gmp (x)") they made the table
    wider than its figures by some 40 columns."""
    return [f"seeds\n{x}/\n{y}", f"{x}\nacc (%)", f"{y}\nacc (%)", f"compression (x)\n{x}/\n{y}",
            "change (pts)\n[95% CI]", "p / Holm", "verdict"]


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    """Print `bench compare`'s table, its text printable: a setting or a budget is a record's text,
    which a tampered record fills with terminal escape sequences (ESC ] 0 ; ... retitles it). No
    rows print nothing (--only-changed with nothing changed printed a header over no rows)."""
    if rows:
        print(tabulate([[printable(cell) for cell in row] for row in rows], headers=headers,
                       disable_numparse=True) + "\n")


def _change_cells(c: RowChange) -> list[str]:
    """A bench.compare.RowChange's budget, seeds, accuracies, change with its CI, and verdict."""
    from bench.compare import p_text

    return [c.budget, f"{c.seeds[0]}/{c.seeds[1]}", f"{c.accuracy[0]:.2f}", f"{c.accuracy[1]:.2f}",
            f"{c.change:+.2f}" + (f" [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" if c.ci else ""),
            f"{p_text(c.p)} / {p_text(c.p_holm)}" if c.p is not None else "-", c.verdict]


def _constant(changes: list[RowChange]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each method's parameters of one value in every row of a table of two rows or more: gmp's
    schedule, repeated on every row, made its table 300 columns wide, which a terminal wraps
    into an unreadable block; the table says them once above it (`_print_constant`) instead."""
    if len(changes) < 2:
        return {}, {}

    def same_everywhere(side: int) -> dict[str, Any]:
        return {k: v for k, v in changes[0].other_params[side].items()
                if all(f"{c.other_params[side].get(k)}" == f"{v}" and k in c.other_params[side] for c in changes)}

    return same_everywhere(0), same_everywhere(1)


def _print_methods_table(table: list[list[str]], headers: list[str], constant: tuple[dict[str, Any], dict[str, Any]],
                         labels: tuple[str, str]) -> None:
    """A `compare --methods` table, with the line above it that names what is one value in every
    row: each method's parameters that `_constant` took out of the rows, and the budget and
    seeds columns where a table of two rows or more has one value in each (the committed suites'
    tables did, and at 146 columns a terminal wrapped them). A column of "-" in every row (no
    other parameters) is dropped."""
    said = [f"{label} {setting_label(params)}" for label, params in zip(labels, constant) if params]
    folded = {"budget": "budget", headers[headers.index("budget") + 1]: f"seeds {labels[0]}/{labels[1]}"}
    keep = []
    for i, heading in enumerate(headers):
        values = {row[i] for row in table}
        if values == {"-"} and heading.endswith("other"):
            continue
        if heading in folded and len(table) > 1 and len(values) == 1:
            said.append(f"{folded[heading]} {values.pop()}")
            continue
        keep.append(i)
    if said:
        print(printable(f"in every row: {'; '.join(said)}") + "\n")
    _print_table([[row[i] for i in keep] for row in table], [headers[i] for i in keep])


def _varying(c: RowChange, constant: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    """Each method's parameters in row `c` without those of one value in every row ("-" for none)."""
    return [setting_label({k: v for k, v in c.other_params[side].items() if k not in constant[side]})
            for side in (0, 1)]


def _method_row(c: RowChange, constant: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    """A row of `compare --methods`: the setting, each method's other parameters (without those
    the table names above it), then the change's cells with each method's compression after their
    accuracies: rows paired at equal parameters need not be of equal size, and a reader choosing by
    size must see it ("-" where unrecorded)."""
    cells = _change_cells(c)
    size = "/".join("-" if v is None else f"{v:.1f}" for v in c.compression)
    return [c.setting, *_varying(c, constant), *cells[:4], size, *cells[4:]]


def _compare_methods(args: argparse.Namespace) -> int:
    """`bench compare A --methods X,Y`: per suite of A, Y's rows against X's (bench.compare.
    across_methods), each side a method or a method with fixed parameters (X[PARAM=VALUE]), with
    --ignore's parameters left out of the pairing; the heading names the parameters left out, so
    that a table of settings paired across two scopes is not read as one scope's; exit 1 with
    --fail-on regression when a row of Y is significantly worse."""
    from bench import compare

    if args.b is not None:
        raise registry.ParameterError(f"--methods compares two methods within one set of results: give A alone, "
                                      f"not also {args.b!r}")
    by_size = args.match == "compression"
    if by_size and args.ignore:
        raise registry.ParameterError(f"--ignore {brief(args.ignore[0])}: leaves a parameter out of a pairing by "
                                      "parameters; --match compression pairs rows by size whatever their parameters")
    if args.within is not None and not by_size:
        raise registry.ParameterError("--within: the tolerance of --match compression, which pairs rows by size")
    spec_x, spec_y = compare.method_pair(args.methods)
    x, y = spec_x.label, spec_y.label
    with compare.sides([args.a], args.suite) as [a]:
        suites = _suites({args.a: a}, args.suite)
        stored = {name: a.load(name) for name in suites}
        present = {r["config"]["method"] for recs in stored.values() for r in recs if r["status"] == Status.OK}
        for method in (spec_x.method, spec_y.method):
            if method not in present:
                close = difflib.get_close_matches(method, sorted(present), n=1, cutoff=0.6)
                raise registry.ParameterError(
                    f"--methods: {args.a} holds no finished run of '{method}'{f' in suite {args.suite}' if args.suite else ''}"
                    f"{f'; did you mean {close[0]}?' if close else ''} (methods with finished runs there: "
                    f"{', '.join(sorted(present)) or 'none'})")
        print(f"A = {a.what}\n")  # (after the refusals above: a refused command printed it, then its error)
        recs = [r for name in suites for r in stored[name]]
        compare.check_parameters(recs, spec_x, spec_y, args.ignore)
        if by_size:
            return _compare_sizes(args, recs, suites, spec_x, spec_y)
        shared = compare.across_methods(recs, spec_x, spec_y, ignore=args.ignore)  # one family
        if not shared:
            why = compare.unpaired_why(recs, spec_x, spec_y, args.ignore)
            raise registry.ParameterError(printable(
                f"{args.a} holds no finished rows of {x} and {y} with the same budget, data, device type and "
                f"shared parameters{f' in suite {args.suite}' if args.suite else ''}"
                + (f"; the parameters both have never agree ({why}): rows run with --set to agree pair up, "
                   "or --ignore PARAM pairs them whatever its value" if why else "")))
        left_out = ", ".join(dict.fromkeys([*(n for n, _ in (*spec_x.fixed, *spec_y.fixed)), *args.ignore]))
        for name in suites:
            if not (changes := [c for c in shared if c.suite == name]):
                continue
            print(printable(f"# {name}: {y} against {x}, {counted(len(changes), 'setting')} both have"
                            + (f"; paired whatever their {left_out}" if left_out else "")) + "\n")
            shown = _shown(changes, args.only_changed, "setting")
            constant = _constant(shown)
            _print_methods_table([_method_row(c, constant) for c in shown],
                                 ["shared\nsetting", f"{x}'s\nother", f"{y}'s\nother", "budget", *_pair_headers(x, y)],
                                 constant, (x, y))
    return _methods_verdict(shared, x, y, "setting", args.fail_on)


def _methods_verdict(shared: list[RowChange], x: str, y: str, noun: str, fail_on: str | None) -> int:
    """The lines under `compare --methods`' tables, whichever way its rows paired: how many of them
    Y loses and wins, how they were judged, the notes; the exit status (1 with --fail-on regression
    where Y is significantly worse somewhere)."""
    worse = sum(c.verdict == "worse" for c in shared)
    print(f"{y} significantly worse than {x} in {worse} of {counted(len(shared), noun)}, better in "
          f"{_better(shared)} ({_judgement(shared, noun)})")
    for note in _notes(shared, noun):
        print(note)
    return 1 if worse and fail_on == "regression" else 0


def _percent(fraction: float) -> str:
    """A tolerance or a distance between two compressions as a reader reads it: "10%", "12.8%",
    and "<0.1%" for a distance that rounds to none (an unpaired row read "0% apart" beside
    `--within 0`, which it is not)."""
    if 0 < fraction < 0.0005:
        return "<0.1%"
    return f"{100 * fraction:.1f}".removesuffix(".0") + "%"


def _compare_sizes(args: argparse.Namespace, recs: list[Record], suites: list[str], spec_x: MethodSpec,
                   spec_y: MethodSpec) -> int:
    """`compare A --methods X,Y --match compression` (bench.compare.across_sizes): per suite, the
    pairs of rows nearest in size, each row's whole setting and both compressions with how far
    apart they are (a verdict at 9% apart is about the methods and that difference in size
    together), then each row left unpaired, named with its nearest row of the other method;
    refused where no two rows lie within the tolerance, naming the nearest two."""
    from bench import compare

    x, y = spec_x.label, spec_y.label
    within = compare.WITHIN if args.within is None else args.within
    shared, unpaired = compare.across_sizes(recs, spec_x, spec_y, within)  # one family, all suites
    if not shared:
        near = [(compare.size_apart(u.compression, u.nearest[1]), u) for u in unpaired
                if u.side == 0 and u.compression is not None and u.nearest is not None]
        where = f" in suite {args.suite}" if args.suite else ""
        if not near:
            raise registry.ParameterError(printable(
                f"{args.a} holds no rows of {x} and {y} with a compression recorded at one budget, data source "
                f"and device type{where}: no two to pair by size"))
        apart, u = min(near, key=lambda n: n[0])
        raise registry.ParameterError(printable(
            f"no row of {y} is within {_percent(within)} of a row of {x} in compression{where}; the nearest two: "
            f"{x} {u.setting} at {u.compression:.2f}x and {y} {u.nearest[0]} at {u.nearest[1]:.2f}x, "
            f"{_percent(apart)} apart ({u.suite}, {u.budget}; --within {math.ceil(100 * apart) / 100:g} pairs them)"))
    for name in suites:
        changes = [c for c in shared if c.suite == name]
        left = [u for u in unpaired if u.suite == name]
        if not changes and not left:
            continue
        if not changes and all(u.nearest is None for u in left):  # (a suite where one method has no sized row)
            counts = ", ".join(f"{counted(sum(u.side == side for u in left), 'row')} of {label}"
                               for side, label in enumerate((x, y)))
            print(printable(f"# {name}: nothing to pair by size ({counts}; no two with a compression at one budget, "
                            "data source and device type): not compared") + "\n")
            continue
        print(printable(f"# {name}: {y} against {x} by compression, {counted(len(changes), 'pair')} of rows at "
                        f"most {_percent(within)} apart (one-to-one, nearest first)") + "\n")
        shown = _shown(changes, args.only_changed, "pair")
        constant = _constant(shown)
        pair = _pair_headers(x, y)
        _print_methods_table([_size_row(c, constant) for c in shown],
                             [f"{x}'s\nsetting", f"{y}'s\nsetting", "budget", *pair[:4], "apart", *pair[4:]],
                             constant, (x, y))
        if left:
            print(f"{counted(len(left), 'row')} without a partner within {_percent(within)}, not compared:")
            for u in left:
                print(printable(f"  {_unpaired_line(u, (x, y), within)}"))
            print()
    status = _methods_verdict(shared, x, y, "pair", args.fail_on)
    if (widest := max(_apart(c) for c in shared)) > 0:
        print(f"the pairs' compressions differ by up to {_percent(widest)} (apart): a change there is the methods' and "
              "that difference in size together; --within narrows it")
    if unpaired:
        print(f"{counted(len(unpaired), 'row')} of {x} or {y} unpaired (above): not compared")
    return status


def _apart(c: RowChange) -> float:
    """How far apart a pair by size is in compression (bench.compare.size_apart)."""
    from bench.compare import size_apart

    ca, cb = c.compression
    assert ca is not None and cb is not None  # (pairs by size have both)
    return size_apart(ca, cb)


def _size_row(c: RowChange, constant: tuple[dict[str, Any], dict[str, Any]]) -> list[str]:
    """A row of `compare --methods --match compression`: each row's setting (without what the
    table names above it), the change's cells with both compressions and how far apart they are
    after the accuracies, so that the reader sees how close the match is."""
    cells = _change_cells(c)
    return [*_varying(c, constant), *cells[:4], "/".join(f"{v:.2f}" for v in c.compression if v is not None),
            _percent(_apart(c)), *cells[4:]]


def _unpaired_line(u: Unpaired, labels: tuple[str, str], within: float) -> str:
    """Why a row found no partner: no compression recorded, no row of the other method at its
    budget, data source and device type, its nearest too far, or every row within reach paired with
    a nearer one first."""
    from bench.compare import size_apart, within_reach

    own, other = labels[u.side], labels[1 - u.side]
    head = f"{own} {u.setting} ({u.budget})"
    if u.compression is None:
        return f"{head}: no compression recorded"
    head += f" at {u.compression:.2f}x"
    if u.nearest is None:
        return f"{head}: no row of {other} with a compression at its budget, data source and device type"
    apart = size_apart(u.compression, u.nearest[1])
    nearest = f"{other} {u.nearest[0]} at {u.nearest[1]:.2f}x, {_percent(apart)} apart"
    if within_reach(u.compression, u.nearest[1], within):
        return f"{head}: each row of {other} within {_percent(within)} paired with a nearer row (its nearest: {nearest})"
    return f"{head}: its nearest, {nearest}"
