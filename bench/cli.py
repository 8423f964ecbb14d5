"""The `bench` command: run suites, rebuild leaderboards, list what is registered.

This module is the command line: its parser (`parse`, shared with bench.api.run) and `main`,
which hands the options to a command and turns what the command raises into an exit status and
one line. Each command has a module of its own: bench.cli_run (`bench run`, `bench reproduce`),
bench.cli_compare, bench.cli_leaderboard and bench.cli_list.

Only what a command needs is imported, when it needs it: `bench --help` and `bench list` answer
without importing torch or the plugins, and `bench leaderboard` without torch.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

from bench import cli_compare, cli_leaderboard, cli_list, cli_run, layout, provenance, registry, reproduce
from bench.bounds import Bounds
from bench.errors import DataError, ExecutorError, Interrupted, ResultsFolderError, printable
from bench.provenance import ProvenanceError
from bench.suite import SEED_LIMIT, SuiteError


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
    """--fuse: a group size >= 1, `off` (1) or `auto` (resolved per device kind by bench.cli_run)."""
    if text in ("auto", "off"):
        return {"auto": "auto", "off": 1}[text]
    return _number(int, ge=1)(text)


DESCRIPTION = """\
Which compression method wins: each method gets a suite's trained dense model and the same
training budget, and the leaderboards show the accuracy it keeps at what size, speed, memory
and training cost, over several seeds."""

START_HERE = f"""\
start here:
  bench leaderboard --show --suite mlp       the committed results, in the terminal
  bench leaderboard --show --suite mlp --min-compression 10
                                             which method wins at >= 10x smaller: the best first
  bench list                                 the methods, their families and parameters
  bench list magnitude                       one method in full: its parameters, their ranges, --set
  {layout.FIRST_QUICK_RUN}
                                             a quick run of your own, the README's first session
                                             (about a minute on 2 cores; rows in ./results-quick)
  bench reproduce --suite mlp --sample 3     rerun three committed records, judged against them
  bench COMMAND --help                       a command's options"""


def parser() -> _Parser:
    """Every command's options, in one parser: `bench --help` lists the commands, and bench.api.run
    reads its keyword arguments through the same options as `bench run`."""
    p = _Parser(prog="bench", description=DESCRIPTION, epilog=START_HERE,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run methods on a suite and update its leaderboard")
    run.add_argument("--suite", required=True, help="a shipped suite name (bench list suites) or a .yaml path")
    run.add_argument("--methods", required=True, help="'all', comma list, or glob patterns, e.g. 'magnitude,l*'")
    run.add_argument("--seeds", type=_seeds, help="comma-separated seeds (default: the suite's)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                     help="set a method parameter (repeatable; bench list METHOD shows its parameters "
                          "and their ranges)")
    run.add_argument("--data-dir", type=Path, default=os.environ.get("BENCH_DATA_DIR"),
                     help="dataset root (default: $BENCH_DATA_DIR, else ~/.cache/bench/data with download)")
    run.add_argument("--results-dir", type=Path, default=os.environ.get("BENCH_RESULTS_DIR"),
                     help="where records and leaderboards go (default: $BENCH_RESULTS_DIR, else ./results, "
                          f"and ./{layout.QUICK_RESULTS} for runs at an overridden budget)")
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
                       help="rerun finished runs whose record another commit (the harness's or an editable plugin's) or device made (a --force "
                            "that resumes: rerun the same command to continue); --refresh device keeps "
                            "records of any commit a checkout vouched for, made on this device")
    run.add_argument("--recorded", action="store_true",
                     help="also run every setting of the methods that the suite's records at this budget hold "
                          "(rows made with --set): with --refresh, every record is rerun, not only the sweep")
    run.add_argument("--order", choices=["depth", "breadth"], default="depth",
                     help="depth: each setting at every seed in turn; breadth: every setting at the first "
                          "seed before any second seed, so a sweep cut short still covers every row (with "
                          "--fuse, a task takes a method's runs at the other seeds along)")
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
    run.add_argument("--fuse-layout", choices=["model", "nchw"], default="model",
                     help="the memory layout fused runs' stacked weights and images take: the models' own "
                          "(channels-last), or NCHW, for a device whose grouped convolutions run faster so "
                          "(benchmarks/fused_gpu.py times both)")
    ex = run.add_argument_group("executors (README: Executors)")
    ex.add_argument("--jobs", type=_number(int, ge=1), default=1, metavar="N",
                    help="N runs at once, each in its own worker process (default 1)")
    ex.add_argument("--jobs-per-gpu", type=_number(int, ge=1), metavar="K",
                    help="K runs at once on each visible GPU")
    ex.add_argument("--threads", type=_number(int, ge=1), metavar="T",
                    help="torch threads per run (default: the cores divided between the jobs)")
    ex.add_argument("--executor", choices=cli_run.EXECUTORS,
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
    rep.add_argument("--methods", help="draw only among the records of these methods: a comma list or glob "
                                       "patterns, e.g. 'my-method'")
    rep.add_argument("--record", dest="records", action="append", metavar="NAME",
                     help="rerun this stored record instead of a random sample: its file name under the suite's "
                          "runs/ folder (repeatable; not with --sample, --methods, --seed or --max-seconds)")
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
                                         "CI and a verdict over all rows, Holm-corrected (better, worse, not significant; "
                                         "unclear after Holm or where machines differ)")
    cmp.add_argument("a", metavar="A", help="the baseline: a results folder, or a git commit (its results/)")
    cmp.add_argument("b", metavar="B", nargs="?",
                     help="the candidate: a results folder, or a git commit (its results/); none with --methods")
    cmp.add_argument("--methods", metavar="X,Y", help="two methods in A instead: Y's rows against X's, paired where "
                                                      "their shared parameters agree (e.g. magnitude,wanda); a side "
                                                      "METHOD[PARAM=VALUE,...] keeps its rows of those values and pairs "
                                                      "whatever they are (e.g. 'sparsegpt[finetune=false],"
                                                      "sparsegpt[finetune=true]')")
    cmp.add_argument("--ignore", action="append", default=[], metavar="PARAM",
                     help="with --methods: leave PARAM out of the pairing, its values shown beside (repeatable; "
                          "e.g. scope, for magnitude,magnitude-oneshot)")
    cmp.add_argument("--match", choices=["parameters", "compression"],
                     help="with --methods, how rows pair: parameters (default: where the parameters both have "
                          "agree), or compression (by size, whatever the parameters: in one budget, data source "
                          "and device type, rows at most --within apart in mean compression, one-to-one, nearest "
                          "first on a log scale; the rows left unpaired are named; no --ignore)")
    cmp.add_argument("--within", type=_number(float, ge=0), metavar="FRACTION",
                     help="with --match compression: how far apart two rows' compressions may be, the larger over "
                          "the smaller less one (default 0.1: 10%%)")
    cmp.add_argument("--suite", help="one suite, by name or suite file (default: every suite both hold)")
    cmp.add_argument("--only-changed", action="store_true",
                     help="show only the rows whose verdict is better, worse or unclear, or whose exact figures "
                          "(counts, sizes) moved, or too few seeds to judge a mean that moved; the others "
                          "are counted")
    cmp.add_argument("--fail-on", choices=["regression"],
                     help="exit 1 when a row is significantly worse in B (with --methods: Y worse than X) (for CI)")

    lb = sub.add_parser("leaderboard", help="rebuild leaderboards from the stored run records")
    lb.add_argument("--suite", help="one suite, by name or suite file (default: every suite with records)")
    lb.add_argument("--results-dir", type=Path, default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                    help="the results folder to read (default: $BENCH_RESULTS_DIR, else ./results; quick runs at "
                         "overridden budgets are in ./results-quick)")
    lb.add_argument("--show", action="store_true",
                    help="print the standard leaderboard in the terminal instead of writing files")
    lb.add_argument("--sparsity", type=_number(float, ge=0, lt=1), help="with --show: rows at this sparsity")
    lb.add_argument("--family", help="with --show: rows of this method family (e.g. pruning, quantization)")
    lb.add_argument("--methods", help="with --show: rows of these methods, a comma list or glob patterns "
                                      "(e.g. 'magnitude,gmp', 'magnitude*')")
    lb.add_argument("--min-compression", type=_number(float, gt=0), metavar="X",
                    help="with --show: rows at least X times smaller than the dense model (compression_x, as "
                         "shown: 3.97 reads 4.0), most accurate first unless --sort says otherwise: e.g. 10 "
                         "for the most accurate model a tenth of dense's size, and the rows tied with it")
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
    ls.add_argument("what", nargs="?", default="methods", metavar="methods|suites|METHOD",
                    help="what to list (default: methods); a method's name shows it in full: its "
                         "description, parameters, their defaults and ranges (e.g. bench list magnitude)")
    ls.add_argument("names", nargs="*", metavar="METHOD", help="more methods to show in full (names or glob patterns)")
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
    _misspelt_required(p, [str(a) for a in (sys.argv[1:] if argv is None else argv)])
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
    if not hint and not extra[0].startswith("-"):
        hint = _stray_hint([str(a) for a in (sys.argv[1:] if argv is None else argv)], extra[0])
    sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    raise AssertionError("unreachable: ArgumentParser.error exits")


def _misspelt_required(p: _Parser, argv: list[str]) -> None:
    """Refuse a command whose required option is missing and written close to it (`bench run
    --method magnitude`): argparse checks required options first, and said "the following
    arguments are required: --methods" of a command line that holds it, misspelt."""
    words = [a.partition("=")[0] for a in argv]
    sub = p.commands.get(next((w for w in words if not w.startswith("-")), ""))
    if sub is None:
        return
    for action in sub._actions:
        if action.required and action.option_strings and not set(action.option_strings) & set(words):
            for word in (w for w in words if w.startswith("--")):
                if difflib.get_close_matches(word, action.option_strings, n=1, cutoff=0.75):
                    sub.error(f"unrecognized arguments: {word}; did you mean {action.option_strings[0]}?")


LISTS = ("--seeds", "--methods")  # options whose value is one comma list


def _stray_hint(argv: list[str], word: str) -> str:
    """The option a stray `word` was meant for, written as that option takes it: `--seeds 0 1`
    (--seeds 0,1), `--methods magnitude, gmp` (--methods magnitude,gmp), `--set magnitude.sparsity
    0.9` (--set magnitude.sparsity=0.9), which argparse refused as "unrecognized arguments: 1",
    naming neither the option nor the form; '' where the word follows no such option."""
    for j in range(len(argv) - 2):
        option, value = argv[j], argv[j + 1]
        if argv[j + 2] != word:
            continue
        if option in LISTS:
            words = [value, *itertools.takewhile(lambda w: not w.startswith("-"), argv[j + 2:])]
            joined = ",".join(w.strip(",") for w in words if w.strip(","))
            return f"; {option} takes one comma list without spaces: {option} {joined}"
        if option == "--set" and "=" not in value:
            return f"; --set takes METHOD.PARAM=VALUE as one word: --set {value}={word}"
    return ""


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
    """`bench ARGV` (sys.argv[1:] when None): its command's exit status. What a command raises ends
    here in one line where the user can act on it: bad input exits 2, a fault while working (a
    full disk) 1, Ctrl-C or `kill` 130, a closed pipe 141; anything else is a bug, and keeps its
    traceback."""
    args = parse(argv)
    if args.command is None:  # `bench` alone: what it is and where to start, not an argparse error
        parser().print_help(sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops a sweep as cleanly as Ctrl-C
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where it started ignored (`... &`)
        signal.signal(signal.SIGINT, _interrupt)  # the user's, told apart from a plugin's KeyboardInterrupt
    sweep = args.command == "run" and not args.dry_run  # the command that records runs, and resumes where it stopped
    commands = {"run": cli_run.cmd_run, "reproduce": cli_run.cmd_reproduce, "compare": cli_compare.cmd_compare,
                "leaderboard": cli_leaderboard.cmd_leaderboard, "list": cli_list.cmd_list}
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
        resume = ("rerun without --force to resume (the same command runs every run again)"
                  if getattr(args, "force", False) else "rerun to resume")
        print("\nbench: interrupted" + (f"; finished runs are recorded, {resume}" if sweep else ""), file=sys.stderr)
        return 130
