"""`bench leaderboard`: rebuild a results folder's tables, plots and site from its records, print
a table (--show), serve the site (--serve), or compare the stored files with a rebuild (--check).

The files are bench.leaderboard's and bench.site's, the tables bench.board's and bench.render's;
they are imported when the command runs, and none of them imports torch, so that the command
starts without it.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import shlex
import shutil
import sys
from pathlib import Path

from bench import files, layout, records, registry
from bench.bounds import brief
from bench.errors import counted
from bench.records import Status
from bench.suite import SuiteError, is_plain_name, results_name


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """`bench leaderboard`: rebuild each suite's files from its records (and the site with
    --html), or print a table (--show), or compare the stored files with a rebuild (--check).
    Option combinations that mean nothing are refused before anything is read."""
    from bench import board, leaderboard, render

    root = Path(args.results_dir)
    if args.suite is not None:
        args.suite = results_name(args.suite)
    if args.suite is not None and not is_plain_name(args.suite):
        raise SuiteError(f"--suite {brief(args.suite)}: expected a suite name, a plain folder name under {root}")
    if not args.show and (args.sparsity is not None or args.family is not None or args.methods is not None
                          or args.min_compression is not None or args.sort is not None or args.budget != "standard"
                          or args.format != "table"):
        raise registry.ParameterError("--sparsity, --family, --methods, --min-compression, --sort, --budget and "
                                      "--format shape --show's table: add --show")
    if args.min_compression is not None and args.sort is None:  # "which wins at this size?": the best on top
        args.sort = "accuracy_mean_%"
    if args.serve is not None and (args.show or args.check):
        raise registry.ParameterError("--serve writes and serves the site: not with --show or --check")
    args.html = args.html or args.serve is not None
    if args.out is not None and not args.html:
        raise registry.ParameterError("--out names the folder of --html's site: add --html")
    if args.show and args.html:
        raise registry.ParameterError("--show prints a table and writes nothing; --html writes the site: choose one")
    if args.check and (args.show or args.html):
        raise registry.ParameterError("--check compares the stored files with the records and writes nothing: "
                                      "not with --show or --html")
    known = sorted(set(registry.FAMILIES) | set(board.families().values()))
    if args.family is not None and args.family not in known:  # families have spaces: `sparse-training` is a likely slip
        close = difflib.get_close_matches(args.family.replace("-", " ").replace("_", " "), known, n=1, cutoff=0.6)
        hint = f" did you mean --family {shlex.quote(close[0])}?" if close else ""
        raise registry.ParameterError(f"--family {brief(args.family)}:{hint} expected one of {', '.join(known)}")
    suites = [args.suite] if args.suite else layout.suites_with_records(root)
    lacking = next((name for name in suites if not layout.runs_dir(root, name).is_dir()), None)
    if not suites or lacking is not None:
        print(no_records(root, lacking), file=sys.stderr)
        return 1
    if args.check:
        return _check(root, suites, site=args.suite is None and (root / layout.SITE).is_dir())
    if args.show:
        standard = args.budget == "standard"
        loaded = {name: board.load(root, name) for name in suites}
        methods = None if args.methods is None else records.methods_named(
            args.methods, {r["config"]["method"] for recs in loaded.values() for r in recs})
        if args.format != "table":
            return _show(loaded, standard, methods, args)
        for name in suites:
            recs = [r for r in loaded[name] if r.get("standard_budget") == standard]
            text = render.terminal(recs, shutil.get_terminal_size().columns, board.families(recs),
                                   args.sparsity, args.family, args.sort, methods,
                                   args.min_compression)  # refusals before any output
            table = leaderboard.table_path(root, name, standard)  # named where it is: no rows at a budget write none
            print(f"# {name}: {args.budget} budget" + (f" ({table} has every column)" if table.is_file() else "")
                  + f"\n\n{text}\n")
            if note := _elsewhere(root, name, loaded[name], standard):
                print(f"{note}\n")
        return 0
    if args.html:  # a site folder it would refuse is refused before the tables are rewritten
        from bench import site

        site.check_out(root, layout.suites_with_records(root), args.out or root / layout.SITE)
    for name in suites:
        written = leaderboard.write(root, name)
        if not written:
            print(no_records(root, name), file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path}")
    if args.html:  # the site indexes every suite with records, whichever were rebuilt
        out = args.out or root / layout.SITE
        pages = site.build(root, layout.suites_with_records(root), out)
        print(f"wrote {len(pages)} files of the site; open {out / 'index.html'}")
        if args.serve is not None:
            return _serve(out, args.serve)
    return 0


def _elsewhere(root: Path, suite: str, loaded: list[records.Record], standard: bool) -> str | None:
    """Where else rows are, for `leaderboard --show`: at the other budget of this folder when none
    finished at the budget asked for, and, for the custom budget of ./results, in ./results-quick,
    where quick runs (`bench run --epochs 2`) go by default. `--show` said only "no finished
    runs", or showed the committed custom rows, as if the user's quick run had left nothing."""
    notes = []
    if not any(r["status"] == Status.OK for r in loaded if r.get("standard_budget") == standard):
        other = sum(r["status"] == Status.OK for r in loaded if r.get("standard_budget") != standard)
        if other:
            notes.append(f"note: {counted(other, 'finished run')} of {suite} at "
                         f"{'overridden budgets' if standard else 'the standard budget'} in {root}: "
                         f"add --budget {'custom' if standard else 'standard'}")
    if not standard and root.resolve() == Path("results").resolve() \
            and any(layout.runs_dir(layout.QUICK_RESULTS, suite).glob("*.json")):
        notes.append(f"note: quick runs go to ./{layout.QUICK_RESULTS} by default: add --results-dir {layout.QUICK_RESULTS}")
    return "\n".join(notes) or None


def no_records(root: Path, suite: str | None, budget_option: bool = True) -> str:
    """Why `bench leaderboard` (or `bench reproduce`) has nothing to read, with what there is:
    ./results-quick before any quick run, a results folder that does not exist (a command run
    outside the checkout), a suite whose records are all in ./results-quick (a suite file of one's
    own, run at a quick budget: `budget_option`, where the command has --budget), a suite's own
    folder given as the results folder (`--results-dir results/mlp`), or a suite without records
    (a typo)."""
    if why := layout.no_quick_results_yet(root):
        return why
    if not root.is_dir():
        return (f"no results folder {root.resolve()}: run bench where the results folder is (the checkout), "
                "or pass --results-dir")
    if why := layout.folder_too_deep(root, "--results-dir "):
        return why
    if suite is None:
        return f"no run records under {root}"
    there = layout.suites_with_records(root)
    if suite in there:  # a runs folder, none of whose files is a usable record (each named above)
        return f"no usable run records for suite '{suite}' in {layout.runs_dir(root, suite)}"
    if root.resolve() == Path("results").resolve() and any(layout.runs_dir(layout.QUICK_RESULTS, suite).glob("*.json")):
        # a suite of one's own, run at a quick budget: its records are only in ./results-quick
        return (f"no run records for suite '{suite}' under {layout.runs_dir(root, suite)}; quick runs go to "
                f"./{layout.QUICK_RESULTS} by default: add --results-dir {layout.QUICK_RESULTS}"
                + (" (and --budget custom)" if budget_option else ""))
    close = difflib.get_close_matches(suite, there, n=1, cutoff=0.6)
    return (f"no run records for suite '{suite}' under {layout.runs_dir(root, suite)}"
            + (f"; did you mean {close[0]}?" if close else "")
            + (f" (suites with records there: {', '.join(there)})" if there else ""))


def _serve(folder: Path, port: int) -> int:
    """Serve the static site in `folder` with python's http.server, to this machine alone
    (127.0.0.1: results are not published by accident), until Ctrl-C."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise registry.ParameterError(f"--serve {port}: cannot listen there ({e.strerror}); "
                                      "choose another port, or 0 for any free one") from None
    with server:
        print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def _show(loaded: dict[str, list[records.Record]], standard: bool, methods: set[str] | None,
          args: argparse.Namespace) -> int:
    """`leaderboard --show --format csv|json|markdown`: the selected rows of every suite loaded
    (suite -> its records), every column (the CSV's, and `suite`), as one table for other tools."""
    import pandas as pd

    from bench import board, render, ties

    tables = []
    for name, loaded_recs in loaded.items():
        recs = [r for r in loaded_recs if r.get("standard_budget") == standard]
        table, cols = board.table(recs)
        if not table.empty:
            picked = board.select(table, cols, board.families(recs), args.sparsity, args.family, args.sort, methods,
                                  args.min_compression)
            if args.min_compression is not None:  # each row of the size band against the band's best
                standing = {i: s for band in ties.at_least(picked, recs, args.min_compression).values()
                            for i, s in band.items()}
                judged = {i: s.change for i, s in standing.items() if s.change and s.change.p is not None}
                picked = picked.assign(  # the p on its own (unclear: below 5%) and after Holm's correction
                    vs_best=[standing[i].status if i in standing else "" for i in picked.index],
                    vs_best_p=[ties.p_shown(judged[i].p) if i in judged else None for i in picked.index],
                    vs_best_p_holm=[ties.p_shown(judged[i].p_holm) if i in judged else None for i in picked.index])
            tables.append(board.rounded(picked, cols).assign(suite=name))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["suite"])
    table = board.file_columns(table)
    table = table[["suite", *(c for c in table.columns if c != "suite")]]
    if args.format == "csv":
        print(board.csv_text(table), end="")  # the leaderboard.csv's rule: no cell a spreadsheet runs
    elif args.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        print(render.pipe_table(table.astype(object).where(table.notna(), "").values.tolist(), list(table.columns)))
    return 0


def _holds(path: Path, data: bytes) -> bool:
    """Whether the stored file `path` holds `data`: a link or a special file (a FIFO, /dev/zero)
    never does, and is not read."""
    try:
        return files.read_regular_file(path, len(data)) == data
    except files.RefusedFile:
        return False


def _check(root: Path, suites: list[str], site: bool) -> int:
    """`bench leaderboard --check`: whether the stored tables, plots (and site, when there is one)
    are what the stored records give today. They are rebuilt in a temporary folder, so nothing
    under `root` changes, and compared byte for byte: a file that differs, one that is missing,
    and one that no record produces any more are each stale. The rebuild reads the stored records
    and checks.json where they are, through a link to each runs folder, as `bench leaderboard`
    reads them: a copy also copied what no reader opens (a FIFO, which stopped the check with
    shutil's list of errors; a runs folder linked to /dev, read without end)."""
    import io
    import tempfile

    from bench import leaderboard

    def outputs(folder: Path) -> set[Path]:
        found = {p for name in suites for pattern in leaderboard.OUTPUTS for p in (folder / name).glob(pattern)}
        if site:
            found |= {p for p in (folder / layout.SITE).rglob("*") if p.is_file()}
        return {p.relative_to(folder) for p in found}

    said = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        fresh = Path(tmp)
        try:
            with contextlib.redirect_stderr(said):
                for name in suites:
                    layout.suite_dir(fresh, name).mkdir()
                    layout.runs_dir(fresh, name).symlink_to(layout.runs_dir(root, name).absolute())
                    leaderboard.write(fresh, name)
                if site:
                    from bench import site as site_module

                    site_module.build(fresh, suites, fresh / layout.SITE, checks_dir=root)
        finally:  # warnings name the stored files, not the copies; also those before a failure
            sys.stderr.write(said.getvalue().replace(str(fresh), str(root)))
        rebuilt, stored = outputs(fresh), outputs(root)
        stale = [(p, "differs from what the records give") for p in sorted(rebuilt & stored)
                 if not _holds(root / p, (fresh / p).read_bytes())]
        stale += [(p, "missing") for p in sorted(rebuilt - stored)]
        stale += [(p, "no record produces it any more") for p in sorted(stored - rebuilt)]
    for path, why in stale:
        print(f"stale: {root / path} ({why})", file=sys.stderr)
    if stale:
        refresh = " --html" if site else f" --suite {shlex.quote(suites[0])}" if len(suites) == 1 else ""  # a folder's name
        print(f"{len(stale)} of {len(rebuilt | stored)} files are stale; refresh them with: "
              f"bench leaderboard{refresh} --results-dir {root}", file=sys.stderr)
        return 1
    print(f"{len(rebuilt)} files match their records ({', '.join(suites)}{', site' if site else ''})")
    return 0
