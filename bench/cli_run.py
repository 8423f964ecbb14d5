"""`bench run` and `bench reproduce`: the commands that execute runs, through bench.runner.

`run_records` is the sweep, shared with the Python API (bench.api.run); before it imports torch
and the plugins, it refuses a misspelt method name and a suite file that breaks the schema, in a
fraction of a second. The modules that make the tables these commands print and write
(bench.board, bench.render, bench.leaderboard) are imported inside the commands, never with this
module: execution does not import presentation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from bench import layout, provenance, records, registry, reproduce
from bench.bounds import brief
from bench.chain import links
from bench.errors import DataError, ExecutorError, counted, duration, first_line, printable
from bench.plan import setting_label
from bench.records import Status
from bench.suite import Suite, load_suite, parameter_value

if TYPE_CHECKING:  # the executors import torch, which the refusals and listings do without
    from bench.executors import Executor


def _overrides(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """--set METHOD.PARAM=VALUE, values read by bench.suite.parameter_value. A PARAM=VALUE without its method is
    refused with the --set of each selected method (`names`, chains too) that has that parameter:
    `--set sparsity=0.5` is what a newcomer types first."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, param = key.partition(".")
        if not (sep and dot and method and param):
            selected = dict.fromkeys(link for name in names for link in links(name))
            takers = [m for m in selected if m in registry.METHODS and sep and key in registry.METHODS[m].parameters()]
            hint = f"; did you mean {' or '.join(f'--set {m}.{item}' for m in takers)}?"[:300] if takers else ""
            raise registry.ParameterError(f"--set expects METHOD.PARAM=VALUE, got {brief(item)}{hint}")
        if not value.strip():  # YAML reads it as null, refused as "expects float, got NoneType None"
            raise registry.ParameterError(f"--set {key[:200]}: no value after '=' (--set {key[:200]}=VALUE; "
                                          f"`null` where the parameter takes none)")
        parsed = parameter_value(value, f"--set {key[:200]}")
        if param in out.get(method, {}):  # the last would win silently: more likely a slip than a wish
            raise registry.ParameterError(f"--set {key[:200]} is given twice ({brief(out[method][param])}, "
                                          f"then {brief(parsed)})")
        out.setdefault(method, {})[param] = parsed
    return out


def _refuse_unregistered(spec: str) -> None:
    """A --methods name that no plugin's source registers, nor this process (a method defined in
    a script that calls bench.api.run), is refused before torch and every plugin are imported to
    look for it: a misspelt name costs a fraction of a second, not the seconds of those imports
    (1.4 s of CPU against 19 s, measured in development at 9a26f21).
    Where a plugin's source is unreadable, `registry.select` decides."""
    from bench.catalog import registered_names

    names = [n for n in registry.named(spec) or [] if n not in registry.METHODS and n not in registry.BROKEN]
    try:
        registered = registered_names() if names else None
    except Exception:  # noqa: BLE001 - a plugin's source this reader cannot take: the imports decide
        registered = None
    if registered is not None:
        for name in names:
            if name not in registered:
                raise registry.UnknownMethodError(registry.unknown_method(name, registered))


def _check_overrides(overrides: dict[str, dict[str, Any]], names: list[str], suite: Suite) -> None:
    """Each --set names a registered method that this command runs (alone or as a chain link),
    with parameters it takes, of its types and within its ranges."""
    selected = {link for name in names for link in links(name)}
    for method, params in overrides.items():
        setting = f"--set {method}.{next(iter(params))}"[:200]  # a key as long as the command line allows
        if method in registry.BROKEN and method not in registry.METHODS:
            raise registry.ParameterError(f"{setting}: plugin '{method}' failed to import: "
                                          f"{first_line(registry.BROKEN[method])}")
        if method not in selected:
            registry.discover()  # only the selected plugins are imported: is it a method at all?
            if method not in registry.METHODS:
                raise registry.ParameterError(f"{setting}: {registry.unknown_method(method)}")
            raise registry.ParameterError(f"{setting}: method '{method}' is not selected "
                                          f"(--methods selects {', '.join(names)})")
        try:
            registry.METHODS[method].build({**suite.methods.get(method, {}), **params})
        except registry.ParameterError as e:
            raise registry.ParameterError(f"--set: {e}") from None


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries for the workers."""
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


EXECUTORS = ("local", "ray", "inline")  # what --executor and $BENCH_EXECUTOR take


def _executor_slots(args: argparse.Namespace, device: str) -> tuple[str, int | None]:
    """The executor the options ask for ("ray", "inline" or "local") and how many tasks it runs
    at once (None for Ray, whose cluster says only once it is joined), without starting it:
    `make_executor` builds it, and --dry-run prices the plan for it and refuses what the command
    would (ExecutorError, exit 2). A GPU sweep planned where torch sees no GPU counts one."""
    kind = args.executor
    if kind is None:  # --jobs asks for worker processes whatever the environment's default
        default = os.environ.get("BENCH_EXECUTOR") or "local"
        if default not in EXECUTORS:  # a typo ran a sweep meant for a Ray cluster here, silently
            raise ExecutorError(f"$BENCH_EXECUTOR is {brief(default)}: expected one of {', '.join(EXECUTORS)} "
                                "(or unset: local)")
        inline = default == "inline" and args.jobs == 1 and not args.jobs_per_gpu
        kind = "local" if default == "inline" and not inline else default
    if kind == "ray":
        return kind, None
    if args.jobs_per_gpu:
        gpus = _visible_gpus()
        if device != "cuda" or not (gpus or getattr(args, "dry_run", False)):  # (bench reproduce has none)
            raise ExecutorError("--jobs-per-gpu needs CUDA devices, and torch sees none (use --jobs on the CPU)")
        return "local", args.jobs_per_gpu * max(1, len(gpus))
    if kind == "inline" and args.jobs > 1:
        raise ExecutorError("--executor inline runs one run at a time in this process: not with --jobs")
    return kind, args.jobs


def make_executor(args: argparse.Namespace, device: str) -> Executor:
    """The executor the options ask for (`_executor_slots`); usage errors raise ExecutorError (exit 2)."""
    from bench.executors import InlineExecutor, LocalExecutor, RayExecutor
    from tqdm import tqdm

    kind, slots = _executor_slots(args, device)
    if kind == "ray":
        gpus = args.gpus_per_run if args.gpus_per_run is not None else (1.0 if device == "cuda" else 0.0)
        return RayExecutor(args.ray_address, gpus, args.cpus_per_run)
    if args.jobs_per_gpu:
        return LocalExecutor(slots, _visible_gpus(), args.threads)
    if kind == "inline":
        return InlineExecutor(echo=tqdm.write, threads=args.threads)
    return LocalExecutor(args.jobs, _visible_gpus() if device == "cuda" else None, args.threads, echo=tqdm.write)


def run_records(args: argparse.Namespace) -> tuple[Suite, list[dict[str, Any]]]:
    """What `bench run` does before it prints its summary: the suite and the records of the
    command's runs (none for --dry-run). Shared with the Python API (bench.api.run). A suite
    file that breaks the schema is refused before torch is imported (bench.resolve), in a
    fraction of a second rather than the seconds torch's import takes."""
    from bench.resolve import resolved_suite

    if warning := provenance.foreign_checkout(Path.cwd()):
        print(warning, file=sys.stderr)
    _refuse_unregistered(args.methods)
    suite = resolved_suite(args.suite)
    budget = {"epochs": args.epochs, "finetune_epochs": args.finetune_epochs, "limit_train": args.limit_train,
              "limit_test": args.limit_test, "precision": args.precision}
    if args.results_dir is None:  # quick runs stay out of the committed results (README: The two commands)
        args.results_dir = Path(layout.QUICK_RESULTS if suite.with_budget(**budget).training != suite.training else "results")
    names = registry.select(args.methods)
    plugins = [f"{n} ({registry.SOURCES[n].origin})" for n in names
               if n in registry.SOURCES and not registry.SOURCES[n].builtin]
    if plugins:  # `all` grows when a plugin is installed: say so
        print(f"{len(plugins)} of the {len(names)} methods selected come from installed plugins: {', '.join(plugins)}")
    for name in sorted({link for n in names for link in links(n)} & set(registry.BROKEN) - set(registry.METHODS)):
        # said before the plan (and its --dry-run), whose runs of it have no parameters: they fail
        print(f"bench: warning: plugin '{name}' failed to import: {first_line(registry.BROKEN[name])}; its runs "
              "fail, and its finished records stand", file=sys.stderr)
    for name in sorted({link for n in names for link in links(n)} & set(registry.BROKEN) & set(registry.METHODS)):
        # a plugin refused the name it registers (DuplicateMethodError): the author expects their method to run
        print(f"bench: warning: '{name}' runs {registry.SOURCES[name]}, not the plugin of that name, which failed "
              f"to import: {first_line(registry.BROKEN[name])}", file=sys.stderr)
    overrides = _overrides(args.overrides, names)
    _check_overrides(overrides, names, suite)
    import torch

    from bench import leaderboard
    from bench.fused import DEFAULT_FUSE
    from bench.runner import run_suite

    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available() and not args.dry_run:
        raise DataError("--device cuda was asked for, but torch sees no CUDA device")
    else:
        device = args.device
    fuse = DEFAULT_FUSE[device] if args.fuse == "auto" else args.fuse
    if args.fuse_layout != "model" and fuse == 1:  # it would do nothing, and the user thinks it did
        raise registry.ParameterError(f"--fuse-layout {args.fuse_layout} lays out the tensors of runs trained fused, and "
                                      f"--fuse {args.fuse}{' (on ' + device + ')' if args.fuse == 'auto' else ''} "
                                      "fuses none: give --fuse K, K above 1")
    executor = None if args.dry_run else make_executor(args, device)
    jobs = executor.slots if executor else _executor_slots(args, device)[1]  # a dry run refuses what the run would
    try:
        done = run_suite(suite, names, seeds=args.seeds or suite.seeds, results_dir=args.results_dir,
                         data_dir=args.data_dir, device=device, overrides=overrides,
                         executor=executor,
                         budget_overrides=budget,
                         force=args.force, refresh=args.refresh, recorded=args.recorded, compile=args.compile,
                         order=args.order,
                         max_minutes=args.max_minutes, dry_run=args.dry_run, allow_dirty=args.allow_dirty,
                         fuse=fuse, fuse_layout=args.fuse_layout,
                         run_timeout=args.run_timeout, jobs=jobs,
                         publish=lambda: leaderboard.write(args.results_dir, suite.name))
    finally:
        if executor is not None:
            executor.close()
    return suite, done


def cmd_run(args: argparse.Namespace) -> int:
    """`bench run`: the sweep (run_records), then this command's rows fitted to the terminal, or
    its records as JSON; exit 1 when a run did not finish, naming each with its log."""
    from bench import board, leaderboard, render

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        suite, done = run_records(args)  # with --json, the progress goes to stderr
    if args.dry_run:
        return 0
    if args.json:  # the records of this command's runs, for tools
        print(json.dumps(done, indent=1, sort_keys=True))
    else:  # the runs of this command, aggregated over seeds like the leaderboard, fitted to the terminal
        print("\n" + render.terminal(done, shutil.get_terminal_size().columns, board.families(done)))
        tables = sorted({str(leaderboard.table_path(args.results_dir, suite.name, True)) if r.get("standard_budget")
                         else f"{leaderboard.table_path(args.results_dir, suite.name, False)} (overridden budgets)"
                         for r in done})
        if tables:
            print(f"\nfull leaderboard{'s' if len(tables) > 1 else ''}: {', '.join(tables)}")
        if note := _unmatched_training(done):
            print(f"\n{note}")
    failed = [r for r in done if r["status"] not in (Status.OK, Status.SKIPPED)]
    if failed:
        print(f"\n{len(failed)} of {counted(len(done), 'run')} did not finish:", file=sys.stderr)
        for r in failed:
            c = r["config"]
            path = layout.record_path(args.results_dir, suite.name, c["method"], c["seed"], r["config_hash"])
            print(f"  {c['method']} {setting_label(c['params'])} seed {c['seed']}: {r['status']}, "
                  f"{first_line(r.get('error'), 100)} (log: {layout.log_path(path)})",
                  file=sys.stderr)
        return 1
    return 0


def _unmatched_training(done: list[records.Record]) -> str | None:
    """A note for runs at an overridden budget that trained longer than their `dense` row
    without a `dense-ft` row to match them (the standard leaderboard always has one): `Δ acc`
    then credits the method with its extra epochs (1 dense epoch against 1 + 10 fine-tuning)."""
    ok = [r for r in done if r["status"] == Status.OK and not r.get("standard_budget")]
    dense = [r["metrics"]["train_epochs"] for r in ok if r["config"]["method"] == "dense"]
    longest = max((r["metrics"]["train_epochs"] for r in ok if r["config"]["method"] not in ("dense", "dense-ft")),
                  default=0)
    if not dense or longest <= max(dense) or any(r["config"]["method"] == "dense-ft" for r in ok):
        return None
    return (f"note: methods trained up to {longest} epochs here and dense {max(dense)}, so Δ acc (the .md's column) "
            "includes their extra training; add dense-ft to --methods (the dense model trained as long, nothing "
            "compressed) for the matched control, or run with --finetune-epochs 0 (no fine-tuning: a post-training "
            "method then trains as long as dense)")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Rerun a seeded random sample of a suite's stored records into a scratch folder, print the
    stored rows they belong to, then each figure beside the stored one with its verdict (see
    bench.reproduce). Exit 1 when a run fails, an exact figure differs or a figure lies outside
    its noise."""
    import tempfile

    import torch

    from bench import board, leaderboard, render
    from bench.executors import cores

    suite = load_suite(args.suite)
    if args.into is not None and args.into.resolve().is_relative_to(Path(args.results_dir).resolve()):
        raise registry.ParameterError(f"--into {args.into}: inside the results folder {args.results_dir}, where the "
                                      "reruns would replace the records they are judged against; choose another folder")
    drawing = [option for option, given in (("--sample", args.sample != 3), ("--methods", args.methods is not None),
                                            ("--seed", args.seed != 0),
                                            ("--max-seconds", args.max_seconds != reproduce.DEFAULT_MAX_SECONDS))
               if given]
    if args.records and drawing:
        raise registry.ParameterError(f"--record names the records to rerun; {', '.join(drawing)} shape a random "
                                      "draw: choose one")
    found = records.reported_records(args.results_dir, suite.name, "the reproduction")
    stored = [r for _, r in found]
    if not stored:  # run outside the checkout, say: the same advice as `bench leaderboard`'s
        from bench.cli_leaderboard import no_records

        raise reproduce.ReproduceError(no_records(Path(args.results_dir), suite.name, budget_option=False))
    if args.records:
        chosen = reproduce.named(found, args.records)
    else:
        pool = stored
        if args.methods is not None:
            methods = records.methods_named(args.methods, {r["config"]["method"] for r in stored})
            pool = [r for r in stored if r["config"]["method"] in methods]
        chosen = reproduce.sample(pool, args.sample, args.seed, args.max_seconds)
    for r in chosen:
        registry.select(r["config"]["method"])
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    by_row = records.rows(stored)
    results = []
    executors = {}  # one per thread count: the sample's records were mostly made with one
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        into = args.into or Path(tmp)
        seconds = reproduce.stored_seconds(chosen, stored)
        took = "" if seconds is None else (f": they took {duration(seconds)} to make on "
                                          f"{printable(chosen[0]['env']['device_name'])}, their dense model's training "
                                          "included")
        print(f"rerunning {len(chosen)} of {len(stored)} records of {suite.name} "
              f"({'named' if args.records else f'drawn with --seed {args.seed}'}) into {into}{took}"
              f"{reproduce.limit_note(chosen, args.run_timeout)}")
        try:
            for r in sorted(chosen, key=lambda r: (r["config"]["seed"], r["config"]["method"])):
                # the record's threads, as far as this machine's cores go (a planted 10**12 started no worker)
                threads = args.threads or (min(r["env"]["threads"], cores())
                                           if device == "cpu" and r["env"].get("threads") else None)
                if threads not in executors:
                    executors[threads] = make_executor(argparse.Namespace(**{**vars(args), "threads": threads}), device)
                again = reproduce.rerun(r, suite, results_dir=into, data_dir=args.data_dir, device=device,
                                        executor=executors[threads], run_timeout=args.run_timeout)
                results.append((r, again, reproduce.judge(r, again, by_row[records.row_id(r)])))
        finally:
            for executor in executors.values():
                executor.close()
    methods = {r["config"]["method"] for r in chosen} | set(board.REFERENCES)
    shown = [r for r in stored if r["standard_budget"] == chosen[0]["standard_budget"]
             and r["config"]["method"] in methods]
    table = leaderboard.table_path(args.results_dir, suite.name, chosen[0]["standard_budget"])
    print(f"\n# {suite.name}: the stored rows of the methods drawn ({table} has them all)\n")
    print(render.terminal(shown, shutil.get_terminal_size().columns, board.families(shown)))
    failures = 0
    for stored_record, again, checks in results:
        c, env = stored_record["config"], stored_record["env"]
        print(printable(f"\n{c['method']} {setting_label(c['params'])} seed {c['seed']}\n"
                        f"  stored: commit {(env.get('git_commit') or 'unrecorded')[:12]}, {env['device_name']}, "
                        f"{counted(env['threads'], 'thread')}\n  rerun:  {again['env']['device_name']}, "
                        f"{counted(again['env']['threads'], 'thread')}"))
        print(tabulate([[k.figure, _figure(k.figure, k.stored), _figure(k.figure, k.rerun), k.verdict] for k in checks],
                       headers=["figure", "stored", "rerun", "verdict"], disable_numparse=True))
        failures += not all(k.ok for k in checks)
    print(f"\nnoise: {reproduce.NOISE_SDS:g} standard deviations of the figure over the stored row's seeds; for "
          f"accuracy plus {records.MACHINE_MARGIN:g} pts, the most it moves between machine models (README: "
          "Reproducing a row)")
    print(f"\n{len(results) - failures} of {len(results)} records reproduced"
          + (f"; {failures} did not (above)" if failures else ""))
    return 1 if failures else 0


def _figure(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "accuracy":
        return f"{100 * value:.2f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)
