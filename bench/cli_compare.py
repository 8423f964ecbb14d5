"""`bench compare`: the tables and the exit status of bench.compare's verdicts.

What a change is and how it is judged (Welch's interval over the seeds) is bench.compare's, a
pure function of the records; this module prints it per suite and decides the exit status
(--fail-on regression), so that the judgement is tested on planted records apart from the text.
"""

from __future__ import annotations

import argparse
import difflib
from typing import TYPE_CHECKING

from tabulate import tabulate

from bench import layout, registry
from bench.errors import counted, printable
from bench.records import Status
from bench.suite import SuiteError, is_plain_name

if TYPE_CHECKING:  # bench.compare imports pandas (bench.board), which the other commands' refusals do without
    from bench.compare import RowChange


def cmd_compare(args: argparse.Namespace) -> int:
    """`bench compare A B` (bench.compare): one table per suite, the rows only one side holds
    counted, exit 1 with --fail-on regression when a row got significantly worse; with
    --methods X,Y, Y's rows against X's in A."""
    from bench import compare

    if args.suite is not None and not is_plain_name(args.suite):
        raise SuiteError(f"--suite {args.suite!r}: expected a suite name")
    if args.methods is not None:
        return _compare_methods(args)
    if args.b is None:
        raise registry.ParameterError("bench compare A B needs B, the results to compare with A "
                                      "(or --methods X,Y to compare two methods within A)")
    with compare.sides([args.a, args.b], args.suite) as (a, b):
        print(f"A = {a.what}\nB = {b.what}\n")
        suites = [args.suite] if args.suite else sorted(set(layout.suites_with_records(a.folder))
                                                        & set(layout.suites_with_records(b.folder)))
        if not suites:
            raise registry.ParameterError(f"{args.a} and {args.b} hold records of no common suite")
        worse, shared = 0, []
        for name in suites:
            recs_a, recs_b = a.load(name), b.load(name)
            changes = compare.compare(recs_a, recs_b)
            only_a, only_b = compare.unshared(recs_a, recs_b)
            print(f"# {name}: {len(changes)} rows in both; {only_a} only in A, {only_b} only in B\n")
            if not changes and (why := compare.apart(recs_a, recs_b)):
                print(f"no row is in both: rows pair up at one budget, data source and device; {why}\n")
            table = [[c.method, c.setting, *_change_cells(c),
                      "; ".join(f"{k} {va:g} -> {vb:g}" for k, (va, vb) in c.exact_changes.items())]
                     for c in _shown(changes, args.only_changed)]
            _print_table(table, ["method", "setting", "budget", "seeds A/B", "acc A (%)", "acc B (%)",
                                 "change (pts) [95% CI]", "verdict", "exact figures that moved"])
            worse += sum(c.verdict == "worse" for c in changes)
            shared += changes
    print(f"{counted(worse, 'row')} significantly worse in B (Welch's t over seeds, 95%, each row on its own: no "
          "correction for comparing several)")
    for note in (compare.unjudged_note(shared, "row"), compare.machines_note(shared, "row")):
        if note:
            print(note)
    return 1 if worse and args.fail_on == "regression" else 0


def _shown(changes: list[RowChange], only_changed: bool) -> list[RowChange]:
    """The rows to print: all, or (--only-changed) those significantly better or worse, or whose
    interval excludes zero but not the machines' margin (unclear: they may have moved), or whose
    exact figures moved, after a line counting the rest, as asv's `compare --only-changed`."""
    from bench.compare import UNCLEAR

    if not only_changed:
        return changes
    shown = [c for c in changes if c.verdict in ("better", "worse", UNCLEAR) or c.exact_changes]
    print(f"{counted(len(changes) - len(shown), 'row')} without a significant change in accuracy or a moved "
          "exact figure not shown (--only-changed)\n")
    return shown


def _print_table(rows: list[list[str]], headers: list[str]) -> None:
    """Print `bench compare`'s table, its text printable: a setting or a budget is a record's text,
    which a tampered record fills with terminal escape sequences (ESC ] 0 ; ... retitles it). No
    rows print nothing (--only-changed with nothing changed printed a header over no rows)."""
    if rows:
        print(tabulate([[printable(cell) for cell in row] for row in rows], headers=headers,
                       disable_numparse=True) + "\n")


def _change_cells(c: RowChange) -> list[str]:
    """A bench.compare.RowChange's budget, seeds, accuracies, change with its CI, and verdict."""
    from bench import board

    return [board.budget_label(c.budget), f"{c.seeds[0]}/{c.seeds[1]}", f"{c.accuracy[0]:.2f}", f"{c.accuracy[1]:.2f}",
            f"{c.change:+.2f}" + (f" [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" if c.ci else ""), c.verdict]


def _compare_methods(args: argparse.Namespace) -> int:
    """`bench compare A --methods X,Y`: per suite of A, Y's rows against X's (bench.compare.
    across_methods); exit 1 with --fail-on regression when a row of Y is significantly worse."""
    from bench import compare

    names = [name.strip() for name in args.methods.split(",")]
    if args.b is not None:
        raise registry.ParameterError(f"--methods compares two methods within one set of results: give A alone, "
                                      f"not also {args.b!r}")
    if len(names) != 2 or names[0] == names[1] or not all(names):
        raise registry.ParameterError(f"--methods {args.methods!r}: expected two different method names, X,Y")
    x, y = names
    with compare.sides([args.a], args.suite) as [a]:
        print(f"A = {a.what}\n")
        suites = [args.suite] if args.suite else layout.suites_with_records(a.folder)
        stored = {name: a.load(name) for name in suites}
        present = {r["config"]["method"] for recs in stored.values() for r in recs if r["status"] == Status.OK}
        for method in (x, y):
            if method not in present:
                close = difflib.get_close_matches(method, sorted(present), n=1, cutoff=0.6)
                raise registry.ParameterError(
                    f"--methods: {args.a} holds no finished run of '{method}'{f' in suite {args.suite}' if args.suite else ''}"
                    f"{f'; did you mean {close[0]}?' if close else ''} (methods with finished runs there: "
                    f"{', '.join(sorted(present)) or 'none'})")
        worse, total, shared = 0, 0, []
        for name in suites:
            changes = compare.across_methods(stored[name], x, y)
            if not changes:
                continue
            total += len(changes)
            print(f"# {name}: {y} against {x}, {counted(len(changes), 'setting')} both have\n")
            table = [[c.setting, *c.others, *_change_cells(c)] for c in _shown(changes, args.only_changed)]
            _print_table(table, ["shared setting", f"{x}'s other", f"{y}'s other", "budget", f"seeds {x}/{y}",
                                 f"{x} acc (%)", f"{y} acc (%)", "change (pts) [95% CI]", "verdict"])
            worse += sum(c.verdict == "worse" for c in changes)
            shared += changes
    if not total:
        raise registry.ParameterError(f"{args.a} holds no finished rows of {x} and {y} with the same budget, data, "
                                      f"device type and shared parameters{f' in suite {args.suite}' if args.suite else ''}")
    print(f"{y} significantly worse than {x} in {worse} of {counted(total, 'setting')} (Welch's t "
          "over seeds, 95%, each setting on its own: no correction for comparing several)")
    for note in (compare.unjudged_note(shared, "setting"), compare.machines_note(shared, "setting")):
        if note:
            print(note)
    return 1 if worse and args.fail_on == "regression" else 0
