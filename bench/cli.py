"""The `bench` command: run suites, rebuild leaderboards, list what is registered.

Only what a command needs is imported, when it needs it: `bench --help` and `bench list` answer
without importing torch or the plugins, and `bench leaderboard` without torch.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml
from tabulate import tabulate

from bench import files, layout, provenance, records, registry, reproduce
from bench.bounds import Bounds
from bench.chain import links
from bench.errors import DataError, ExecutorError, Interrupted, ResultsFolderError, counted, first_line, printable
from bench.plan import setting_label
from bench.provenance import ProvenanceError
from bench.records import Status
from bench.suite import SEED_LIMIT, Suite, SuiteError, available_suites, is_plain_name, load_suite, yaml_value

if TYPE_CHECKING:  # the executors import torch, which the refusals and listings do without
    from bench.compare import RowChange
    from bench.executors import Executor


QUICK_RESULTS = "results-quick"  # where runs at an overridden budget go by default: git-ignored


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage of `bench run` is longer than the message), and
    without abbreviated options: `--finetune 1` (meant for a method's `finetune` parameter) ran as
    `--finetune-epochs 1`, and `--epoch` as `--epochs`; a run of minutes or hours should start
    from the options as written, as a repeated seed is refused rather than merged."""

    commands: dict[str, argparse.ArgumentParser]  # the subcommands' parsers, by name (set by `parser`)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """--version: the installed distribution's version and the checkout's commit, worked out
    only when asked (git costs a subprocess)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and the code's commit, and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib import metadata

        try:
            version = metadata.version("compression-bench")
        except metadata.PackageNotFoundError:
            version = "(not installed)"
        print(f"bench {version}, commit {provenance.git_commit() or 'unknown (no git checkout)'}")
        parser.exit(0)


def _seeds(text: str) -> list[int]:
    """--seeds: distinct integers >= 0, below SEED_LIMIT, in digits 0-9. A repeated seed is
    refused rather than merged: it is more likely a typo for another seed than a wish to run
    one twice."""
    items = [s.strip() for s in text.split(",")]
    items = [] if not any(items) else items  # "," is an empty list; "0,,1" a typo
    if not all(s.isascii() and s.removeprefix("-").isdigit() for s in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'")
    seeds = [int(s) for s in items]
    why = Bounds(ge=0, lt=SEED_LIMIT, distinct=True).problem(seeds)
    if why:
        raise argparse.ArgumentTypeError(why)
    return seeds


def _number(tp: type, **limits: float) -> Callable[[str], Any]:
    """An argparse type: a `tp` within `limits` (ge, gt, le, lt: see bench.bounds)."""
    bounds = Bounds(**limits)

    def parse(text: str) -> Any:
        try:
            value = tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if tp is int else 'a number'}, "
                                             f"got '{text}'") from None
        why = bounds.problem(value)
        if why:
            raise argparse.ArgumentTypeError(why)
        return value

    return parse


def _fuse(text: str) -> int | str:
    """--fuse: a group size >= 1, `off` (1) or `auto` (resolved per device kind by cmd_run)."""
    if text in ("auto", "off"):
        return {"auto": "auto", "off": 1}[text]
    return _number(int, ge=1)(text)


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set METHOD.PARAM=VALUE, values parsed as YAML scalars (0.9, true, text); numbers that
    YAML 1.1 leaves as text (2e-5) are read as floats."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, param = key.partition(".")
        if not (sep and dot and method and param):
            raise registry.ParameterError(f"--set expects METHOD.PARAM=VALUE, got '{item}'")
        try:
            parsed = yaml_value(value)
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            raise registry.ParameterError(f"--set {key}: the value is no YAML scalar: "
                                          f"{' '.join(str(e).split())[:200] or type(e).__name__}") from None
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        if param in out.get(method, {}):  # the last would win silently: more likely a slip than a wish
            raise registry.ParameterError(f"--set {key} is given twice ({out[method][param]!r}, then {parsed!r})")
        out.setdefault(method, {})[param] = parsed
    return out


def _refuse_unregistered(spec: str) -> None:
    """A --methods name that no plugin's source registers, nor this process (a method defined in
    a script that calls bench.api.run), is refused before torch and every plugin are imported to
    look for it: a misspelt name costs a fraction of a second, not the 10-20 s of those imports.
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
        setting = f"--set {method}.{next(iter(params))}"
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


DESCRIPTION = """\
Which compression method wins: each method gets a suite's trained dense model and the same
training budget, and the leaderboards show the accuracy it keeps at what size, speed, memory
and training cost, over several seeds."""

START_HERE = """\
start here:
  bench leaderboard --show --suite mlp       the committed results, in the terminal
  bench list                                 the methods, their families and parameters
  bench run --suite mlp --methods magnitude --seeds 0 --epochs 2 --finetune-epochs 1
                                             a quick run of your own (rows in ./results-quick)
  bench reproduce --suite mlp --sample 3     rerun three committed records, judged against them
  bench COMMAND --help                       a command's options"""


def parser() -> _Parser:
    p = _Parser(prog="bench", description=DESCRIPTION, epilog=START_HERE,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run methods on a suite and update its leaderboard")
    run.add_argument("--suite", required=True, help="a shipped suite name (bench list suites) or a .yaml path")
    run.add_argument("--methods", required=True, help="'all', comma list, or glob patterns, e.g. 'magnitude,l*'")
    run.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: the suite's)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                     help="set a method parameter (repeatable)")
    run.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"),
                     help="dataset root (default: $BENCH_DATA_DIR, else ~/.cache/bench/data with download)")
    run.add_argument("--results-dir", type=Path, default=os.environ.get("BENCH_RESULTS_DIR"),
                     help="where records and leaderboards go (default: $BENCH_RESULTS_DIR, else ./results, "
                          f"and ./{QUICK_RESULTS} for runs at an overridden budget)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="where runs train and are measured (default auto: CUDA when torch sees it)")
    run.add_argument("--epochs", type=_number(int, ge=1), help="override dense training epochs (non-standard budget)")
    run.add_argument("--finetune-epochs", type=_number(int, ge=0),
                     help="override fine-tuning epochs (non-standard budget; 0: no fine-tuning)")
    run.add_argument("--limit-train", type=_number(int, ge=1),
                     help="use N training images (non-standard budget)")
    run.add_argument("--limit-test", type=_number(int, ge=1),
                     help="evaluate on N test images (non-standard budget)")
    run.add_argument("--precision", choices=["fp32", "bf16"],
                     help="override the training precision (non-standard budget), e.g. fp32 for cifar on a CPU "
                          "without bf16 units")
    run.add_argument("--compile", nargs="?", const="default", choices=["default", "reduce-overhead", "max-autotune"],
                     help="train through torch.compile in this mode (reduce-overhead: CUDA graphs); "
                          "compile time is recorded apart")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--force", action="store_true", help="rerun runs that already have a finished record")
    again.add_argument("--refresh", nargs="?", const="commit", choices=["commit", "device"],
                       help="rerun finished runs whose record another commit or device made (a --force "
                            "that resumes: rerun the same command to continue); --refresh device keeps "
                            "records of any commit a checkout vouched for, made on this device")
    run.add_argument("--recorded", action="store_true",
                     help="also run every setting of the methods that the suite's records at this budget hold "
                          "(rows made with --set): with --refresh, every record is rerun, not only the sweep")
    run.add_argument("--order", choices=["depth", "breadth"], default="depth",
                     help="depth: each setting at every seed in turn; breadth: every setting at the first "
                          "seed before any second seed, so a sweep cut short still covers every row")
    run.add_argument("--max-minutes", type=_number(float, gt=0), metavar="M",
                     help="start no new run after M minutes; runs in flight finish; rerun to continue")
    run.add_argument("--json", action="store_true",
                     help="end by printing this command's run records as a JSON list (the progress goes to stderr)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan and its expected cost; train nothing, write nothing")
    run.add_argument("--allow-dirty", action="store_true",
                     help="write standard-budget records from uncommitted code (recorded in each record)")
    run.add_argument("--run-timeout", type=_number(float, gt=0), metavar="MINUTES",
                     help="stop a run after this long, as a failed row (TimedOut) (default: ten times what "
                          "its epochs took in the suite's records on this device, at least 15 minutes)")
    run.add_argument("--fuse", type=_fuse, default="auto", metavar="K|off|auto",
                     help="train up to K runs' compatible training calls as one model (README: Fused "
                          "training); auto: what measured fastest on this kind of device")
    ex = run.add_argument_group("executors (README: Executors)")
    ex.add_argument("--jobs", type=_number(int, ge=1), default=1, metavar="N",
                    help="N runs at once, each in its own worker process (default 1)")
    ex.add_argument("--jobs-per-gpu", type=_number(int, ge=1), metavar="K",
                    help="K runs at once on each visible GPU")
    ex.add_argument("--threads", type=_number(int, ge=1), metavar="T",
                    help="torch threads per run (default: the cores divided between the jobs)")
    ex.add_argument("--executor", choices=["local", "ray", "inline"],
                    help="local: worker processes (the default, or $BENCH_EXECUTOR's); ray: a Ray cluster; "
                         "inline: in this process, one run at a time, unprotected (for a debugger)")
    ex.add_argument("--ray-address", metavar="auto|HOST:PORT",
                    help="join this Ray cluster (default: start a one-machine cluster)")
    ex.add_argument("--gpus-per-run", type=_number(float, ge=0), default=None, metavar="G",
                    help="Ray: GPUs per run, e.g. 0.25 packs 4 runs per GPU (default 1 with --device cuda)")
    ex.add_argument("--cpus-per-run", type=_number(float, gt=0), default=1.0, metavar="C",
                    help="Ray: CPUs per run")

    rep = sub.add_parser("reproduce", help="rerun stored records at random into a scratch folder and judge "
                                           "each figure against the stored one")
    rep.add_argument("--suite", required=True, help="a shipped suite name or a .yaml path")
    rep.add_argument("--sample", type=_number(int, ge=1), default=3, metavar="N",
                     help="how many records to rerun (default 3)")
    rep.add_argument("--seed", type=_number(int, ge=0), default=0,
                     help="draws the sample: the same seed reruns the same records (default 0)")
    rep.add_argument("--max-seconds", type=_number(float, gt=0), default=reproduce.DEFAULT_MAX_SECONDS,
                     metavar="S", help="draw among records whose run took at most S seconds (default "
                                       f"{reproduce.DEFAULT_MAX_SECONDS:g}); each seed drawn also trains "
                                       "its dense model once")
    rep.add_argument("--results-dir", type=Path, default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                     help="where the stored records are (default: $BENCH_RESULTS_DIR or ./results)")
    rep.add_argument("--into", type=Path, metavar="DIR",
                     help="where the reruns go (default: a temporary folder, removed afterwards)")
    rep.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"),
                     help="dataset root (default: $BENCH_DATA_DIR, else ~/.cache/bench/data with download)")
    rep.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                     help="where the reruns train and are measured (default auto: CUDA when torch sees it)")
    rep.add_argument("--threads", type=_number(int, ge=1), metavar="T",
                     help="torch threads per run (default: on the CPU, each record's own, so that its sums "
                          "run in the same order)")
    rep.add_argument("--run-timeout", type=_number(float, gt=0), metavar="MINUTES",
                     help="stop a rerun (and its dense model's training) after this long, as a failed row "
                          "(default: ten times the record's run and training time, between 15 minutes and a day)")
    rep.add_argument("--executor", choices=["local", "inline"],
                     help="local: a worker process (default); inline: in this process")
    rep.set_defaults(jobs=1, jobs_per_gpu=None, ray_address=None, gpus_per_run=None, cpus_per_run=1.0)

    cmp = sub.add_parser("compare", help="per row both result sets hold, the change in accuracy with its 95%% "
                                         "CI and a verdict (better, worse, no change)")
    cmp.add_argument("a", metavar="A", help="the baseline: a results folder, or a git commit (its results/)")
    cmp.add_argument("b", metavar="B", nargs="?",
                     help="the candidate: a results folder, or a git commit (its results/); none with --methods")
    cmp.add_argument("--methods", metavar="X,Y", help="two methods in A instead: Y's rows against X's, paired where "
                                                      "their shared parameters agree (e.g. magnitude,wanda)")
    cmp.add_argument("--suite", help="one suite (default: every suite both hold)")
    cmp.add_argument("--only-changed", action="store_true",
                     help="show only the rows whose verdict is better or worse, or whose exact figures (counts, "
                          "sizes) moved; the others are counted")
    cmp.add_argument("--fail-on", choices=["regression"],
                     help="exit 1 when a row is significantly worse in B (with --methods: Y worse than X) (for CI)")

    lb = sub.add_parser("leaderboard", help="rebuild leaderboards from the stored run records")
    lb.add_argument("--suite", help="one suite (default: every suite with records)")
    lb.add_argument("--results-dir", type=Path, default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                    help="the results folder to read (default: $BENCH_RESULTS_DIR, else ./results; quick runs at "
                         "overridden budgets are in ./results-quick)")
    lb.add_argument("--show", action="store_true",
                    help="print the standard leaderboard in the terminal instead of writing files")
    lb.add_argument("--sparsity", type=_number(float, ge=0, lt=1), help="with --show: rows at this sparsity")
    lb.add_argument("--family", help="with --show: rows of this method family (e.g. pruning, quantization)")
    lb.add_argument("--sort", metavar="COL", help="with --show: sort by this column of the CSV (e.g. accuracy_mean_%%, "
                                                  "compression_x, size_KiB), best first; dense and dense-ft stay on top")
    lb.add_argument("--budget", choices=["standard", "custom"], default="standard",
                    help="with --show: the standard-budget rows (default) or those of overridden budgets")
    lb.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table",
                    help="with --show: a table fitted to the terminal (default), or every column as CSV, JSON "
                         "(a list of rows) or Markdown, for other tools")
    lb.add_argument("--html", action="store_true",
                    help="also write a static site (sortable, filterable tables, plots, run records)")
    lb.add_argument("--serve", nargs="?", const=8000, type=_number(int, ge=0, le=65535), metavar="PORT",
                    help="write the site (as --html) and serve it on this machine (127.0.0.1, port 8000 by default; "
                         "0: any free port) until Ctrl-C")
    lb.add_argument("--out", type=Path, metavar="DIR", help="with --html: where the site goes "
                    "(default: RESULTS_DIR/site)")
    lb.add_argument("--check", action="store_true",
                    help="rebuild every table, plot and site page in a temporary folder and compare them with "
                         "the stored ones; exit 1 naming each stale file (like black --check)")

    ls = sub.add_parser("list", help="list registered methods or shipped suites")
    ls.add_argument("what", nargs="?", choices=["methods", "suites"], default="methods",
                    help="what to list (default: methods)")
    ls.add_argument("--json", action="store_true", help="print a JSON list of objects (for tools) instead of a table")
    ls.add_argument("--check", action="store_true",
                    help="import every plugin (as bench run does) and show those that fail to import")
    p.commands = dict(sub.choices)
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, as `bench` and bench.api.run read it. Options the command does not take
    are refused as that command's error, naming a close option or, for `bench run --sparsity 0.9`
    (a method's parameter), the --set that sets it: argparse refused them as `bench: error: ...
    (see bench --help)`, a help that lists no option of the command."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if not extra:
        return args
    sub = p.commands.get(args.command, p)
    at = next((i for i, a in enumerate(extra) if a.startswith("--")), None)
    name, _, value = extra[at].partition("=") if at is not None else ("", "", "")
    hint = ""
    if args.command == "run" and name:
        from bench.catalog import catalog

        param = name[2:].replace("-", "_")
        having = [i.name for i in catalog() if i.problem is None and param in i.parameters]
        if having:  # the example: a selected method that has it, with the value given
            selected = [n for n in args.methods.replace("+", ",").split(",") if n in having]
            value = value or next((a for a in extra[at + 1:at + 2] if not a.startswith("--")), "...")
            hint = (f"; a method's parameter is set with --set METHOD.{param}=VALUE "
                    f"(e.g. --set {(selected or having)[0]}.{param}={value})")
    options = [o for action in sub._actions for o in action.option_strings if o.startswith("--")]
    if not hint and (close := difflib.get_close_matches(name, options, n=1, cutoff=0.75)):
        hint = f"; did you mean {close[0]}?"
    sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    raise AssertionError("unreachable: ArgumentParser.error exits")


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries for the workers."""
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def make_executor(args: argparse.Namespace, device: str) -> Executor:
    """The executor the options ask for; usage errors raise ExecutorError (exit 2)."""
    from bench.executors import InlineExecutor, LocalExecutor, RayExecutor
    from tqdm import tqdm

    if args.executor is None:  # --jobs asks for worker processes whatever the environment's default
        inline = os.environ.get("BENCH_EXECUTOR") == "inline" and args.jobs == 1 and not args.jobs_per_gpu
        args.executor = "inline" if inline else os.environ.get("BENCH_EXECUTOR", "local").replace("inline", "local")
    if args.executor == "ray":
        gpus = args.gpus_per_run if args.gpus_per_run is not None else (1.0 if device == "cuda" else 0.0)
        return RayExecutor(args.ray_address, gpus, args.cpus_per_run)
    if args.jobs_per_gpu:
        gpus = _visible_gpus()
        if device != "cuda" or not gpus:
            raise ExecutorError("--jobs-per-gpu needs CUDA devices, and torch sees none (use --jobs on the CPU)")
        return LocalExecutor(args.jobs_per_gpu * len(gpus), gpus, args.threads)
    if args.executor == "inline":
        if args.jobs > 1:
            raise ExecutorError("--executor inline runs one run at a time in this process: not with --jobs")
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
        args.results_dir = Path(QUICK_RESULTS if suite.with_budget(**budget).training != suite.training else "results")
    names = registry.select(args.methods)
    plugins = [f"{n} ({registry.SOURCES[n].origin})" for n in names
               if n in registry.SOURCES and not registry.SOURCES[n].builtin]
    if plugins:  # `all` grows when a plugin is installed: say so
        print(f"{len(plugins)} of the {len(names)} methods selected come from installed plugins: {', '.join(plugins)}")
    overrides = _overrides(args.overrides)
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
    executor = None if args.dry_run else make_executor(args, device)
    try:
        done = run_suite(suite, names, seeds=args.seeds or suite.seeds, results_dir=args.results_dir,
                         data_dir=args.data_dir, device=device, overrides=overrides,
                         executor=executor,
                         budget_overrides=budget,
                         force=args.force, refresh=args.refresh, recorded=args.recorded, compile=args.compile,
                         order=args.order,
                         max_minutes=args.max_minutes, dry_run=args.dry_run, allow_dirty=args.allow_dirty,
                         fuse=DEFAULT_FUSE[device] if args.fuse == "auto" else args.fuse, run_timeout=args.run_timeout,
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
    return (f"note: methods trained up to {longest} epochs here and dense {max(dense)}, so Δ acc includes their extra "
            "training; add dense-ft to --methods (the dense model trained as long, nothing compressed) for the "
            "matched control, or set --finetune-epochs")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Rerun a seeded random sample of a suite's stored records into a scratch folder, print the
    stored rows they belong to, then each figure beside the stored one with its verdict (see
    bench.reproduce). Exit 1 when a run fails, an exact figure differs or a figure lies outside
    its noise."""
    import tempfile

    import torch

    from bench import board, leaderboard, render

    suite = load_suite(args.suite)
    if args.into is not None and args.into.resolve().is_relative_to(Path(args.results_dir).resolve()):
        raise registry.ParameterError(f"--into {args.into}: inside the results folder {args.results_dir}, where the "
                                      "reruns would replace the records they are judged against; choose another folder")
    stored = [r for _, r in records.reported_records(args.results_dir, suite.name, "the reproduction")]
    if not stored:
        raise reproduce.ReproduceError(f"no records of suite '{suite.name}' under "
                                       f"{layout.runs_dir(args.results_dir, suite.name)}")
    chosen = reproduce.sample(stored, args.sample, args.seed, args.max_seconds)
    for r in chosen:
        registry.select(r["config"]["method"])
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    by_row = records.rows(stored)
    results = []
    executors = {}  # one per thread count: the sample's records were mostly made with one
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        into = args.into or Path(tmp)
        print(f"rerunning {len(chosen)} of {len(stored)} records of {suite.name} (--seed {args.seed}) into {into}")
        try:
            for r in sorted(chosen, key=lambda r: (r["config"]["seed"], r["config"]["method"])):
                # the record's threads, as far as this machine's cores go (a planted 10**12 started no worker)
                threads = args.threads or (min(r["env"]["threads"], os.cpu_count() or 1)
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
                        f"{env['threads']} threads\n  rerun:  {again['env']['device_name']}, {again['env']['threads']} "
                        "threads"))
        print(tabulate([[k.figure, _figure(k.figure, k.stored), _figure(k.figure, k.rerun), k.verdict] for k in checks],
                       headers=["figure", "stored", "rerun", "verdict"], disable_numparse=True))
        failures += not all(k.ok for k in checks)
    print(f"\n{len(results) - failures} of {len(results)} records reproduced"
          + (f"; {failures} did not (above)" if failures else ""))
    return 1 if failures else 0


def _figure(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key == "accuracy":
        return f"{100 * value:.2f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
        worse = 0
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
            print(_compare_table(table, ["method", "setting", "budget", "seeds A/B", "acc A (%)", "acc B (%)",
                                         "change (pts) [95% CI]", "verdict", "exact figures that moved"]) + "\n")
            worse += sum(c.verdict == "worse" for c in changes)
    print(f"{counted(worse, 'row')} significantly worse in B (Welch's t over seeds, 95%)")
    return 1 if worse and args.fail_on == "regression" else 0


def _shown(changes: list[RowChange], only_changed: bool) -> list[RowChange]:
    """The rows to print: all, or (--only-changed) those significantly better or worse or whose
    exact figures moved, after a line counting the rest, as asv's `compare --only-changed`."""
    if not only_changed:
        return changes
    shown = [c for c in changes if c.verdict in ("better", "worse") or c.exact_changes]
    print(f"{counted(len(changes) - len(shown), 'row')} without a significant change in accuracy or a moved "
          "exact figure not shown (--only-changed)\n")
    return shown


def _compare_table(rows: list[list[str]], headers: list[str]) -> str:
    """`bench compare`'s table, its text printable: a setting or a budget is a record's text,
    which a tampered record fills with terminal escape sequences (ESC ] 0 ; ... retitles it)."""
    return tabulate([[printable(cell) for cell in row] for row in rows], headers=headers, disable_numparse=True)


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
        worse, total = 0, 0
        for name in suites:
            changes = compare.across_methods(stored[name], x, y)
            if not changes:
                continue
            total += len(changes)
            print(f"# {name}: {y} against {x}, {counted(len(changes), 'setting')} both have\n")
            table = [[c.setting, *c.others, *_change_cells(c)] for c in _shown(changes, args.only_changed)]
            print(_compare_table(table, ["shared setting", f"{x}'s other", f"{y}'s other", "budget",
                                         f"seeds {x}/{y}", f"{x} acc (%)", f"{y} acc (%)", "change (pts) [95% CI]",
                                         "verdict"]) + "\n")
            worse += sum(c.verdict == "worse" for c in changes)
    if not total:
        raise registry.ParameterError(f"{args.a} holds no finished rows of {x} and {y} with the same budget, data, "
                                      f"device type and shared parameters{f' in suite {args.suite}' if args.suite else ''}")
    print(f"{y} significantly worse than {x} in {worse} of {counted(total, 'setting')} (Welch's t "
          "over seeds, 95%, each setting on its own: no correction for comparing several)")
    return 1 if worse and args.fail_on == "regression" else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """`bench leaderboard`: rebuild each suite's files from its records (and the site with
    --html), or print a table (--show), or compare the stored files with a rebuild (--check).
    Option combinations that mean nothing are refused before anything is read."""
    from bench import board, leaderboard, render

    root = Path(args.results_dir)
    if args.suite is not None and not is_plain_name(args.suite):
        raise SuiteError(f"--suite {args.suite!r}: expected a suite name, a plain folder name under {root}")
    if not args.show and (args.sparsity is not None or args.family is not None or args.sort is not None
                          or args.budget != "standard" or args.format != "table"):
        raise registry.ParameterError("--sparsity, --family, --sort, --budget and --format shape --show's table: "
                                      "add --show")
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
    if args.family is not None and args.family not in known:
        raise registry.ParameterError(f"--family {args.family!r}: expected one of {', '.join(known)}")
    suites = [args.suite] if args.suite else layout.suites_with_records(root)
    lacking = next((name for name in suites if not layout.runs_dir(root, name).is_dir()), None)
    if not suites or lacking is not None:
        print(_no_records(root, lacking), file=sys.stderr)
        return 1
    if args.check:
        return _check(root, suites, site=args.suite is None and (root / layout.SITE).is_dir())
    if args.show:
        standard = args.budget == "standard"
        if args.format != "table":
            return _show(root, suites, standard, args)
        for name in suites:
            loaded = board.load(root, name)
            recs = [r for r in loaded if r.get("standard_budget") == standard]
            text = render.terminal(recs, shutil.get_terminal_size().columns, board.families(recs),
                                   args.sparsity, args.family, args.sort)  # refusals before any output
            print(f"# {name}: {args.budget} budget ({leaderboard.table_path(root, name, standard)} has every column)"
                  f"\n\n{text}\n")
            if note := _elsewhere(root, name, loaded, standard):
                print(f"{note}\n")
        return 0
    if args.html:  # a site folder it would refuse is refused before the tables are rewritten
        from bench import site

        site.check_out(root, layout.suites_with_records(root), args.out or root / layout.SITE)
    for name in suites:
        written = leaderboard.write(root, name)
        if not written:
            print(_no_records(root, name), file=sys.stderr)
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
            and any(layout.runs_dir(QUICK_RESULTS, suite).glob("*.json")):
        notes.append(f"note: quick runs go to ./{QUICK_RESULTS} by default: add --results-dir {QUICK_RESULTS}")
    return "\n".join(notes) or None


def _no_records(root: Path, suite: str | None) -> str:
    """Why `bench leaderboard` has nothing to read, with what there is: a results folder that
    does not exist (a command run outside the checkout), or a suite without records (a typo)."""
    if not root.is_dir():
        return (f"no results folder {root.resolve()}: run bench where the results folder is (the checkout), "
                "or pass --results-dir")
    if suite is None:
        return f"no run records under {root}"
    there = layout.suites_with_records(root)
    if suite in there:  # a runs folder, none of whose files is a usable record (each named above)
        return f"no usable run records for suite '{suite}' in {layout.runs_dir(root, suite)}"
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


def _show(root: Path, suites: list[str], standard: bool, args: argparse.Namespace) -> int:
    """`leaderboard --show --format csv|json|markdown`: the selected rows of every suite asked
    for, every column (the CSV's, and `suite`), as one table for other tools."""
    import pandas as pd

    from bench import board

    tables = []
    for name in suites:
        recs = [r for r in board.load(root, name) if r.get("standard_budget") == standard]
        table, cols = board.table(recs)
        if not table.empty:
            tables.append(board.select(table, cols, board.families(recs), args.sparsity, args.family, args.sort)
                          .assign(suite=name))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["suite"])
    table = table[["suite", *(c for c in table.columns if c not in ("suite", "setting_params"))]]
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        print(table.to_markdown(index=False))
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
        refresh = " --html" if site else f" --suite {suites[0]}" if len(suites) == 1 else ""
        print(f"{len(stale)} of {len(rebuilt | stored)} files are stale; refresh them with: "
              f"bench leaderboard{refresh} --results-dir {root}", file=sys.stderr)
        return 1
    print(f"{len(rebuilt)} files match their records ({', '.join(suites)}{', site' if site else ''})")
    return 0


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
    rows = [[e["method"], e.get("family", ""), e.get("origin", ""), e["problem"] or e["description"],
             _parameters(e.get("parameters", {}), e.get("sweep"))] for e in entries]
    headers = ["method", "family", "origin", "description", "parameters (defaults)"]
    if all(row[2] in ("built in", "") for row in rows):  # the column says something only beside a plugin
        rows, headers = [[r[0], r[1], *r[3:]] for r in rows], [headers[0], headers[1], *headers[3:]]
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        print(_wrapped(rows, headers, shutil.get_terminal_size().columns))
    else:  # piped: a line per method, for grep
        print(tabulate(rows, headers=headers))
    return 0


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


USAGE_ERRORS = (SuiteError, DataError, registry.UnknownMethodError, registry.ParameterError, ExecutorError,
                ProvenanceError, ResultsFolderError, reproduce.ReproduceError)  # bad input: exit 2


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll says POLLERR), rather than
    another pipe breaking (a worker's, which is a fault to report)."""
    import select

    poll = select.poll()
    poll.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command is None:  # `bench` alone: what it is and where to start, not an argparse error
        parser().print_help(sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a sweep as cleanly as Ctrl-C
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where it started ignored (`... &`)
        signal.signal(signal.SIGINT, _interrupt)  # the user's, told apart from a plugin's KeyboardInterrupt
    sweep = args.command == "run" and not args.dry_run  # the command that records runs, and resumes where it stopped
    commands = {"run": cmd_run, "reproduce": cmd_reproduce, "compare": cmd_compare, "leaderboard": cmd_leaderboard, "list": cmd_list}
    try:
        return commands[args.command](args)
    except Exception as e:
        if isinstance(e, BrokenPipeError) and _reader_gone():  # `bench ... | head`: it has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141  # what a command ended by SIGPIPE reports
        if isinstance(e, USAGE_ERRORS):  # bad input, refused up front (quoting a suite file's text: printable)
            print(printable(f"bench: error: {e}"), file=sys.stderr)
            return 2
        if isinstance(e, OSError):  # a fault while working (a full disk): its own message
            print(f"bench: error: {e}\nbench: "
                  + ("finished runs are recorded; fix the cause and rerun to resume" if sweep else "fix the cause and rerun"),
                  file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("\nbench: interrupted" + ("; finished runs are recorded, rerun to resume" if sweep else ""), file=sys.stderr)
        return 130
