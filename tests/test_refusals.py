"""A corpus of bad input, as users write it: broken suite files and command lines. Each must be
refused before any training: exit 2, one line naming the file, key or flag and what was
expected, no traceback, and nothing written under the results folder.

The commands run in this process (`bench.cli.main`), which is what `python -m bench` runs; a few
run as real processes at the end, to show the same refusal from outside.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench import registry
from bench.cli import main
from conftest import FAST, run_bench

registry.discover()  # the plugins' import warnings belong to no test's output

VALID = """\
version: 1
name: tiny
description: a tiny suite
data: {dataset: MNIST, mean: [0.1307], std: [0.3081]}
model: {name: lenet300}
student: {name: lenet300, kwargs: {hidden: [30, 10]}}
training: {epochs: 1, finetune_epochs: 1, batch_size: 64, lr: 0.1, finetune_lr: 0.01}
seeds: [0]
sparsities: [0.5]
latency_batches: [1, 8]
"""

# (what is wrong, the edit of VALID, what the message says after the file name)
SUITES = [
    ("dense epochs 0", ("epochs: 1,", "epochs: 0,"), "key 'training.epochs': expected a number >= 1, got 0"),
    ("fine-tuning epochs -1", ("finetune_epochs: 1,", "finetune_epochs: -1,"),
     "key 'training.finetune_epochs': expected a number >= 0, got -1"),
    ("batch size 0", ("batch_size: 64", "batch_size: 0"), "key 'training.batch_size': expected a number >= 1, got 0"),
    ("learning rate 0", ("lr: 0.1,", "lr: 0,"), "key 'training.lr': expected a number > 0, got 0.0"),
    ("negative learning rate", ("lr: 0.1,", "lr: -0.1,"), "key 'training.lr': expected a number > 0, got -0.1"),
    ("NaN learning rate", ("lr: 0.1,", "lr: .nan,"), "key 'training.lr': expected a number > 0, got nan"),
    ("infinite learning rate", ("lr: 0.1,", "lr: .inf,"), "key 'training.lr': expected a number > 0, got inf"),
    ("fine-tuning rate 0", ("finetune_lr: 0.01", "finetune_lr: 0"), "key 'training.finetune_lr': expected a number > 0"),
    ("momentum 1", ("lr: 0.1,", "lr: 0.1, momentum: 1.0,"), "key 'training.momentum': expected a number in [0, 1), got 1.0"),
    ("Nesterov without momentum", ("lr: 0.1,", "lr: 0.1, momentum: 0,"),
     "key 'training.momentum': Nesterov SGD needs a momentum > 0"),
    ("negative weight decay", ("lr: 0.1,", "lr: 0.1, weight_decay: -1.0e-4,"), "key 'training.weight_decay': expected a number >= 0"),
    ("a rate YAML reads as text", ("lr: 0.1,", "lr: 1e-3,"),
     "key 'training.lr': expected float, got str '1e-3' (YAML reads 1e-3 as text: write it with a dot and a signed "
     "exponent, e.g. 1.0e-03)"),
    ("a seed beyond numpy's", ("seeds: [0]", "seeds: [4294967296]"), "key 'seeds': expected numbers in [0, "),
    ("a YAML set", ("model: {name: lenet300}", "model: {name: lenet300, kwargs: {hidden: !!set {30, 10}}}"),
     "key 'model.kwargs.hidden': expected plain data (finite numbers within ±1e+18, text, true/false, null, lists, mappings with text "
     "keys; at most 100 levels deep), got "),
    ("a value nested deeper than a record is read", ("model: {name: lenet300}",  # (YAML itself reads ~300 levels)
                                                     "model: {name: lenet300, kwargs: {hidden: " + "[" * 150 + "]" * 150 + "}}"),
     "key 'model.kwargs.hidden': expected plain data (finite numbers within ±1e+18, text, true/false, null, lists, mappings with "
     "text keys; at most 100 levels deep), got [[[["),
    ("negative warm-up", ("lr: 0.1,", "lr: 0.1, warmup_epochs: -1,"), "key 'training.warmup_epochs': expected a number >= 0"),
    ("label smoothing 1", ("lr: 0.1,", "lr: 0.1, label_smoothing: 1,"), "key 'training.label_smoothing': expected a number in [0, 1)"),
    ("limit_train 0", ("lr: 0.1,", "lr: 0.1, limit_train: 0,"), "key 'training.limit_train': expected a number >= 1, got 0"),
    ("negative crop padding", ("std: [0.3081]", "std: [0.3081], crop_padding: -4"), "key 'data.crop_padding': expected a number >= 0"),
    ("std 0", ("std: [0.3081]", "std: [0]"), "key 'data.std': expected numbers > 0, got 0.0 (item 0)"),
    ("mean and std of different lengths", ("std: [0.3081]", "std: [0.3, 0.3]"),
     "keys 'data.mean', 'data.std': expected one value per image channel in each, got 1 and 2"),
    ("no seeds", ("seeds: [0]", "seeds: []"), "key 'seeds': expected a non-empty list, got []"),
    ("a repeated seed", ("seeds: [0]", "seeds: [0, 1, 0]"), "key 'seeds': expected distinct values, got 0 more than once"),
    ("a negative seed", ("seeds: [0]", "seeds: [-1]"), "key 'seeds': expected numbers in [0, 4294967296), got -1 (item 0)"),
    ("sparsity 1", ("sparsities: [0.5]", "sparsities: [0.5, 1]"), "key 'sparsities': expected numbers in [0, 1), got 1.0 (item 1)"),
    ("a percent for a sparsity", ("sparsities: [0.5]", "sparsities: [0.5, 90]"),  # as the tables head it sparsity_%
     "key 'sparsities': expected numbers in [0, 1), got 90.0 (item 1): a fraction, 0.9 for 90%"),
    ("negative sparsity", ("sparsities: [0.5]", "sparsities: [-0.1]"), "key 'sparsities': expected numbers in [0, 1), got -0.1"),
    ("a repeated sparsity", ("sparsities: [0.5]", "sparsities: [0.5, 0.9, 0.5]"),
     "key 'sparsities': expected distinct values, got 0.5 more than once"),
    ("no sparsities", ("sparsities: [0.5]", "sparsities: []"), "key 'sparsities': expected a non-empty list"),
    ("latency batch 0", ("latency_batches: [1, 8]", "latency_batches: [0, 8]"),
     "key 'latency_batches': expected numbers >= 1, got 0 (item 0)"),
    ("a repeated latency batch", ("latency_batches: [1, 8]", "latency_batches: [8, 8]"),
     "key 'latency_batches': expected distinct values, got 8 more than once"),
    ("a name that climbs out", ("name: tiny", "name: ../../outside"), "key 'name': expected a plain folder name"),
    ("an absolute name", ("name: tiny", "name: /tmp/outside"), "key 'name': expected a plain folder name"),
    ("a name with a separator", ("name: tiny", "name: a/b"), "key 'name': expected a plain folder name"),
    ("the name ..", ("name: tiny", "name: '..'"), "key 'name': expected a plain folder name"),
    ("a hidden name", ("name: tiny", "name: .tiny"), "key 'name': expected a plain folder name"),
    ("an empty name", ("name: tiny", "name: ''"), "key 'name': expected a plain folder name"),
    ("an unknown model", ("model: {name: lenet300}", "model: {name: lenet301}"),
     "key 'model': cannot build model 'lenet301' with kwargs {}: UnknownName: unknown model 'lenet301'; did you "
     "mean lenet300?"),
    ("a model keyword it does not take", ("model: {name: lenet300}", "model: {name: lenet300, kwargs: {hiden: [3, 3]}}"),
     "key 'model': cannot build model 'lenet300' with kwargs {'hiden': [3, 3]}: TypeError: lenet300() got an "
     "unexpected keyword argument 'hiden'"),
    ("a bad student keyword", ("kwargs: {hidden: [30, 10]}", "kwargs: {depth: 3}"),
     "key 'student': cannot build model 'lenet300' with kwargs {'depth': 3}: TypeError"),
    ("an unknown timm model", ("model: {name: lenet300}", "model: {name: 'timm:resnet-nope'}"),
     "key 'model': cannot build model 'timm:resnet-nope' with kwargs {}: RuntimeError: Unknown model (resnet-nope)"),
    ("an unknown dataset class", ("dataset: MNIST", "dataset: MNIST2"),
     "key 'data.dataset': torchvision.datasets has no dataset class 'MNIST2'"),
    ("a dataset class without splits", ("dataset: MNIST", "dataset: ImageFolder"),
     "key 'data.dataset': torchvision.datasets.ImageFolder has neither a train nor a split argument"),
    ("not a dataset class", ("dataset: MNIST", "dataset: utils"), "key 'data.dataset': torchvision.datasets has no dataset class 'utils'"),
    ("an unknown method in methods", ("seeds: [0]", "seeds: [0]\nmethods: {magnitud: {sparsity: 0.5}}"),
     "key 'methods.magnitud': unknown method 'magnitud'; did you mean magnitude, magnitude-oneshot?"),
    ("a method parameter out of range", ("seeds: [0]", "seeds: [0]\nmethods: {magnitude: {sparsity: 1.5}}"),
     "key 'methods.magnitude': method 'magnitude' parameter 'sparsity': expected a number in [0, 1), got 1.5"),
    ("a NaN parameter without a range", ("seeds: [0]", "seeds: [0]\nmethods: {gptq: {dampening: .nan}}"),
     "key 'methods.gptq.dampening': expected plain data (finite numbers within ±1e+18, text, true/false, null, lists, mappings "
     "with text keys; at most 100 levels deep), got nan"),
    ("an unknown method parameter", ("seeds: [0]", "seeds: [0]\nmethods: {magnitude: {sparsty: 0.5}}"),
     "key 'methods.magnitude': method 'magnitude' has no parameter 'sparsty'"),
    ("a method parameter of another type", ("seeds: [0]", "seeds: [0]\nmethods: {imp: {rounds: 2.5}}"),
     "key 'methods.imp': method 'imp' parameter 'rounds' expects int, got float 2.5"),
    ("a value outside a parameter's choices", ("seeds: [0]", "seeds: [0]\nmethods: {magnitude: {scope: row}}"),
     "key 'methods.magnitude': method 'magnitude' parameter 'scope': expected one of global, layer, got 'row'"),
    ("a method's own check across parameters",
     ("seeds: [0]", "seeds: [0]\nmethods: {gmp: {begin_fraction: 0.9, end_fraction: 0.5}}"),
     "key 'methods.gmp': gmp: needs begin_fraction <= end_fraction, got 0.9 and 0.5"),
    ("an unknown key", ("seeds: [0]", "seeds: [0]\nseed: [1]"), "key '<top level>': unknown key 'seed'"),
    ("a string for a number", ("epochs: 1,", "epochs: '1',"), "key 'training.epochs': expected int, got str '1'"),
    ("not YAML", ("seeds: [0]", "seeds: [0"),
     "not valid YAML: line 9, column 11: while parsing a flow sequence; expected ',' or ']', but got ':'"),
    ("a stray list item", ("version: 1\n", "- version: 1\n"), "not valid YAML: line 2, column 1: "),
    ("a model too large for the machine's memory",
     ("model: {name: lenet300}", "model: {name: lenet300, kwargs: {hidden: [100000000, 100]}}"),
     "key 'model': cannot build model 'lenet300' with kwargs {'hidden': [100000000, 100]}: ValueError: "
     "88,500,001,110 parameters: training them takes about 1,319 GiB"),
    ("a suite named site", ("name: tiny", "name: site"), "key 'name': 'site' names what the results folder holds"),
    ("a number of 5,000 digits", ("epochs: 1,", "epochs: " + "9" * 5000 + ","),
     "not a suite file: Exceeds the limit (4300 digits) for integer string conversion"),
    # A run's record holds its suite's numbers, and its readers refuse one beyond 1e18: such a
    # suite's runs trained, then every command left their records out (and reran them).
    ("a version beyond what a record holds", ("version: 1", "version: 100000000000000000000"),
     "key 'version': expected a number within ±1e+18, the largest a run's record holds, got 100000000000000000000"),
    ("a batch size beyond what a record holds", ("batch_size: 64", "batch_size: 100000000000000000000"),
     "key 'training.batch_size': expected a number within ±1e+18, the largest a run's record holds"),
    ("a rate of 400 digits", ("lr: 0.1,", f"lr: {10**400},"),  # float() of it raised OverflowError
     "key 'training.lr': expected a number within ±1e+18, the largest a run's record holds, got 1000"),
    ("terminal escapes in a name", ("dataset: MNIST", 'dataset: "MNIST\\e]0;retitled\\a"'),  # printed as they were
     "key 'data.dataset': torchvision.datasets has no dataset class 'MNIST\\x1b]0;retitled\\x07'"),  # (bounds.brief)
    ("keys that are a number and null", ("seeds: [0]", "seeds: [0]\n1: x\nnull: y\nfoo: z"),
     "key '<top level>': unknown key 1; expected keys: "),
]

FILES = [
    ("an empty file", b"", "key '<top level>': expected a mapping, got NoneType"),
    ("a top-level list", b"- 1\n- 2\n", "key '<top level>': expected a mapping, got list"),
    ("bytes that are no text", b"version: 1\nname: \xff\xfe\n", "cannot read the suite file"),
    ("nesting 5,000 deep", b"version: 1\ndescription: " + b"[" * 5000 + b"]" * 5000 + b"\n",
     "nested too deeply to be a suite file"),
]


def refused(argv: list[str], capsys, results) -> str:
    """Run `bench ARGV` here; check exit 2, one line on stderr and no traceback, nothing under
    `results`; return the line."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's refusals
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not results.exists(), sorted(results.rglob("*"))
    return lines[0]


def run_args(suite: str, results, data_dir, *extra: str) -> list[str]:
    return ["run", "--suite", suite, "--methods", "dense,magnitude", "--data-dir", str(data_dir),
            "--results-dir", str(results), *extra]


@pytest.mark.parametrize("what, edit, message", SUITES, ids=[s[0] for s in SUITES])
def test_broken_suite_files_are_refused(tmp_path, data_dir, capsys, what, edit, message):
    assert edit[0] in VALID, what
    path = tmp_path / "suite.yaml"
    path.write_text(VALID.replace(*edit))
    line = refused(run_args(str(path), tmp_path / "results", data_dir), capsys, tmp_path / "results")
    assert line.startswith(f"bench: error: {path}: ") and message in line, line


@pytest.mark.parametrize("what, content, message", FILES, ids=[f[0] for f in FILES])
def test_unreadable_suite_files_are_refused(tmp_path, data_dir, capsys, what, content, message):
    path = tmp_path / "suite.yaml"
    path.write_bytes(content)
    line = refused(run_args(str(path), tmp_path / "results", data_dir), capsys, tmp_path / "results")
    assert line.startswith(f"bench: error: {path}: ") and message in line, line


def test_a_folder_a_fifo_or_a_missing_file_as_suite_is_refused(tmp_path, data_dir, capsys):
    """Each is named for what it is (a FIFO is refused without being opened: reading it would block)."""
    (tmp_path / "folder.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    for name, what in (("folder", "is a folder"), ("fifo", "is not a regular file"), ("missing", "does not exist")):
        suite = tmp_path / f"{name}.yaml"
        line = refused(run_args(str(suite), tmp_path / "results", data_dir), capsys, tmp_path / "results")
        assert line == f"bench: error: suite file {suite} {what}", line


def test_the_valid_suite_and_its_edge_values_are_accepted(tmp_path, data_dir, capsys):
    """The corpus's base file, and the smallest legal values, pass every check (--dry-run)."""
    edges = (("finetune_epochs: 1,", "finetune_epochs: 0,"), ("sparsities: [0.5]", "sparsities: [0, 0.99]"),
             ("seeds: [0]", "seeds: [0, 7]"), ("std: [0.3081]", "std: [0.3081], crop_padding: 0"),
             ("lr: 0.1,", "lr: 0.1, momentum: 0, nesterov: false,"))
    for edit in [("", ""), *edges]:
        path = tmp_path / "suite.yaml"
        path.write_text(VALID.replace(*edit))
        assert main(run_args(str(path), tmp_path / "results", data_dir, "--dry-run")) == 0, edit
        assert "plan for suite tiny" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def test_a_dry_run_names_the_folder_its_records_would_go_to(tmp_path, data_dir, capsys, monkeypatch):
    """By default the budget picks the folder: a suite file of one's own at its own budget writes
    into ./results, beside the committed suites, and a quick run into ./results-quick. The plan
    did not say which, so a newcomer learnt it from the files a run left."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(VALID)
    argv = ["run", "--suite", "suite.yaml", "--methods", "dense", "--data-dir", str(data_dir), "--allow-dirty", "--dry-run"]
    assert main(argv) == 0
    assert "\n  records go to results/tiny/runs\n" in capsys.readouterr().out
    assert main([*argv, "--epochs", "2"]) == 0  # (the suite's is 1)
    assert "\n  records go to results-quick/tiny/runs\n" in capsys.readouterr().out
    assert not (tmp_path / "results").exists() and not (tmp_path / "results-quick").exists()


# (what is wrong, the arguments after `bench run --suite mlp --methods dense,magnitude`, the message)
COMMAND_LINES = [
    ("--epochs 0", ["--epochs", "0"], "argument --epochs: expected a number >= 1, got 0"),
    ("--epochs -3", ["--epochs", "-3"], "argument --epochs: expected a number >= 1, got -3"),
    ("--epochs 1.5", ["--epochs", "1.5"], "argument --epochs: expected an integer, got '1.5'"),
    ("--finetune-epochs -1", ["--finetune-epochs", "-1"], "argument --finetune-epochs: expected a number >= 0, got -1"),
    ("--limit-train 0", ["--limit-train", "0"], "argument --limit-train: expected a number >= 1, got 0"),
    ("--limit-test -5", ["--limit-test", "-5"], "argument --limit-test: expected a number >= 1, got -5"),
    # its runs trained, and every reader then left their records out as malformed
    ("--limit-train beyond what a record holds", ["--limit-train", str(10**20)],
     "argument --limit-train: expected a number >= 1 and within ±1e+18, got 100000000000000000000"),
    ("--epochs of 400 digits", ["--epochs", str(10**400)],  # math.isfinite() of it raised OverflowError
     "argument --epochs: expected a number >= 1 and within ±1e+18, got 1000"),
    ("--seeds -1", ["--seeds", "-1"], "argument --seeds: expected numbers in [0, 4294967296), got -1 (item 0)"),
    ("--seeds 0,1,0", ["--seeds", "0,1,0"], "argument --seeds: expected distinct values, got 0 more than once"),
    ("--seeds ,", ["--seeds", ","], "argument --seeds: expected a non-empty list, got []"),
    ("--seeds one", ["--seeds", "one"], "argument --seeds: expected comma-separated integers, got 'one'"),
    ("--seeds 0,,1", ["--seeds", "0,,1"], "argument --seeds: expected comma-separated integers, got '0,,1'"),
    ("--seeds 1_000", ["--seeds", "1_000"], "argument --seeds: expected comma-separated integers, got '1_000'"),
    ("--seeds beyond numpy's", ["--seeds", str(2**64)], "argument --seeds: expected numbers in [0, 4294967296), got 18446744073709551616"),
    ("--set of a YAML mapping", ["--set", "magnitude.scope=a: b: c"],
     "--set magnitude.scope: the value is no YAML scalar: mapping values are not allowed here"),
    ("--set of a Python tag", ["--set", "magnitude.scope=!!python/name:os.system"],
     "--set magnitude.scope: the value is no YAML scalar: could not determine a constructor for the tag"),
    ("--set of YAML aliases", ["--set", "magnitude.sparsity=[&a [x, x], *a, *a]"],
     "--set magnitude.sparsity: the value is no YAML scalar: anchors and aliases (&name, *name) are not allowed in "
     "a suite file or a --set value"),
    ("--set of a number of 5,000 digits", ["--set", "magnitude.sparsity=" + "9" * 5000],
     "--set magnitude.sparsity: the value is no YAML scalar: Exceeds the limit (4300 digits)"),
    ("--jobs 0", ["--jobs", "0"], "argument --jobs: expected a number >= 1, got 0"),
    ("--threads 0", ["--threads", "0"], "argument --threads: expected a number >= 1, got 0"),
    ("--max-minutes 0", ["--max-minutes", "0"], "argument --max-minutes: expected a number > 0, got 0.0"),
    ("--max-minutes nan", ["--max-minutes", "nan"], "argument --max-minutes: expected a number > 0, got nan"),
    ("--cpus-per-run 0", ["--cpus-per-run", "0"], "argument --cpus-per-run: expected a number > 0, got 0.0"),
    ("--gpus-per-run -1", ["--gpus-per-run", "-1"], "argument --gpus-per-run: expected a number >= 0, got -1.0"),
    ("--device tpu", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    ("--order wide", ["--order", "wide"], "argument --order: invalid choice: 'wide'"),
    ("an unknown option", ["--epochz", "1"],
     "bench run: error: unrecognized arguments: --epochz 1; did you mean --epochs? (see bench run --help)"),
    ("an abbreviated option", ["--epoch", "1"], "unrecognized arguments: --epoch 1; did you mean --epochs?"),
    ("a method's parameter as an option", ["--sparsity", "0.9"], "unrecognized arguments: --sparsity 0.9; a method's "
     "parameter is set with --set METHOD.sparsity=VALUE (e.g. --set magnitude.sparsity=0.9)"),
    # a list written with spaces: argparse said "unrecognized arguments: 2", naming neither the
    # option nor the form it takes
    ("--seeds with spaces", ["--seeds", "1", "2"],
     "unrecognized arguments: 2; --seeds takes one comma list without spaces: --seeds 1,2"),
    ("--methods with a space", ["--methods", "dense,", "magnitude"],
     "unrecognized arguments: magnitude; --methods takes one comma list without spaces: --methods dense,magnitude"),
    ("--methods quoted with a space", ["--methods", "dense magnitude"],
     "unknown method 'dense magnitude'; did you mean dense,magnitude (a comma list, without spaces)?"),
    ("--set with a space for its =", ["--set", "magnitude.sparsity", "0.9"],
     "unrecognized arguments: 0.9; --set takes METHOD.PARAM=VALUE as one word: --set magnitude.sparsity=0.9"),
    ("a method's parameter that abbreviates an option", ["--finetune=true"],  # not --finetune-epochs
     "unrecognized arguments: --finetune=true; a method's parameter is set with --set METHOD.finetune=VALUE"),
    ("--set of an unknown method", ["--set", "magnitud.sparsity=0.5"],
     "--set magnitud.sparsity: unknown method 'magnitud'; did you mean magnitude, magnitude-oneshot?"),
    ("--set twice", ["--set", "magnitude.sparsity=0.5", "--set", "magnitude.sparsity=0.7"],
     "--set magnitude.sparsity is given twice (0.5, then 0.7)"),
    ("--set of a method not selected", ["--set", "random.sparsity=0.5"],
     "--set random.sparsity: method 'random' is not selected (--methods selects dense, magnitude)"),
    ("--set out of range", ["--set", "magnitude.sparsity=1.5"],
     "--set: method 'magnitude' parameter 'sparsity': expected a number in [0, 1), got 1.5"),
    ("--set of a percent", ["--set", "magnitude.sparsity=90"],  # the tables head it sparsity_%
     "--set: method 'magnitude' parameter 'sparsity': expected a number in [0, 1), got 90.0: a fraction, 0.9 for 90%"),
    ("--set of NaN", ["--set", "magnitude.sparsity=.nan"],
     "--set: method 'magnitude' parameter 'sparsity': expected a finite number, got nan"),
    ("--set of NaN without a range", ["--methods", "dense,gptq", "--set", "gptq.dampening=nan"],
     "--set: method 'gptq' parameter 'dampening': expected a finite number, got nan"),
    ("--set beyond what a record holds", ["--methods", "dense,gptq", "--set",
                                                    f"gptq.calibration_samples={10**19}"],
     "--set: method 'gptq' parameter 'calibration_samples': expected a number within ±1e+18, got 10000000000000000000"),
    ("--set of 400 digits for a float", ["--set", f"magnitude.sparsity={10**400}"],  # float() raised OverflowError
     "--set: method 'magnitude' parameter 'sparsity': expected a number within ±1e+18, got 1000"),
    ("--set of a negative learning-rate scale", ["--methods", "dense,kd", "--set", "kd.lr_scale=-1"],  # it trained first
     "--set: method 'kd' parameter 'lr_scale': expected a number >= 0, got -1.0"),
    ("--set of a negative sparsity", ["--set", "magnitude.sparsity=-0.5"],
     "--set: method 'magnitude' parameter 'sparsity': expected a number in [0, 1), got -0.5"),
    ("--set without a value", ["--set", "magnitude.sparsity="],  # read as null: "expects float, got NoneType None"
     "--set magnitude.sparsity: no value after '=' (--set magnitude.sparsity=VALUE; `null` where the parameter "
     "takes none)"),
    ("--set of a wrong type", ["--set", "magnitude.sparsity=high"],
     "--set: method 'magnitude' parameter 'sparsity' expects float, got str 'high'"),
    ("--set of an unknown parameter", ["--set", "magnitude.sparsty=0.5"],
     "--set: method 'magnitude' has no parameter 'sparsty'"),
    ("--set without a method", ["--set", "sparsity=0.5"],  # said only what it expects, not which method
     "--set expects METHOD.PARAM=VALUE, got 'sparsity=0.5'; did you mean --set magnitude.sparsity=0.5?"),
    ("--set without a method, of a parameter two methods have", ["--methods", "random,magnitude+ptq-int8", "--set",
                                                                   "sparsity=0.5"],
     "got 'sparsity=0.5'; did you mean --set random.sparsity=0.5 or --set magnitude.sparsity=0.5?"),
    ("--set rejected by the method", ["--set", "magnitude.scope=row"],
     "--set: method 'magnitude' parameter 'scope': expected one of global, layer, got 'row'"),
    ("--device cuda without CUDA", ["--device", "cuda"], "--device cuda was asked for, but torch sees no CUDA device"),
    ("--jobs-per-gpu on the CPU", ["--jobs-per-gpu", "2", "--device", "cpu"], "--jobs-per-gpu needs CUDA devices"),
    ("--fuse-layout without fusion", ["--fuse-layout", "nchw", "--device", "cpu"],  # --fuse auto is 1 on a CPU
     "--fuse-layout nchw lays out the tensors of runs trained fused, and --fuse auto (on cpu) fuses none: give --fuse K"),
    ("--fuse-layout with --fuse 1", ["--fuse-layout", "nchw", "--fuse", "off"], "and --fuse 1 fuses none"),
]


@pytest.mark.parametrize("what, extra, message", COMMAND_LINES, ids=[c[0] for c in COMMAND_LINES])
def test_bad_command_lines_are_refused(tmp_path, data_dir, capsys, what, extra, message):
    line = refused(run_args("mlp", tmp_path / "results", data_dir, "--seeds", "0", *extra), capsys, tmp_path / "results")
    assert message in line, line


def test_a_required_option_misspelt_or_a_suite_named_as_its_file_is_refused_with_the_form_meant(tmp_path, capsys):
    """`--method magnitude` was told "the following arguments are required: --methods" (argparse
    checks those first), and `--suite mlp.yaml`, run outside suites/, that the file does not exist;
    a percent for a fraction named neither."""
    for argv, message in (
            (["run", "--suite", "mlp", "--method", "magnitude"],
             "bench run: error: unrecognized arguments: --method; did you mean --methods? (see bench run --help)"),
            (["run", "--suit", "mlp", "--methods", "magnitude"], "unrecognized arguments: --suit; did you mean --suite?"),
            (["reproduce", "--suites", "mlp"], "unrecognized arguments: --suites; did you mean --suite?"),
            (["leaderboard", "--show", "--sparsity", "90"],
             "argument --sparsity: expected a number in [0, 1), got 90.0: a fraction, 0.9 for 90%")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err, argv
    assert main(["run", "--suite", "mlp.yaml", "--methods", "magnitude", "--results-dir", str(tmp_path), "--dry-run"]) == 2
    assert ("suite file mlp.yaml does not exist; the shipped suite mlp is --suite mlp "
            f"({Path(registry.__file__).parents[1] / 'suites' / 'mlp.yaml'})") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--methods", "magnitude"])  # nothing close to --suite: argparse's own words
    assert "the following arguments are required: --suite" in capsys.readouterr().err


def test_a_dry_run_refuses_the_executor_options_its_command_would(tmp_path, data_dir, capsys):
    """The dry run priced `--executor inline --jobs 2` and `--jobs-per-gpu` on the CPU as sweeps in
    2 jobs, which the command itself refuses; it now refuses them alike (exit 2). A GPU sweep may
    be planned where torch sees no GPU (priced for one)."""
    base = ["run", "--suite", "mlp", "--methods", "magnitude", "--data-dir", str(data_dir), "--results-dir",
            str(tmp_path), "--dry-run"]
    for extra, message in ((["--executor", "inline", "--jobs", "2"], "--executor inline runs one run at a time"),
                           (["--jobs-per-gpu", "2", "--device", "cpu"], "--jobs-per-gpu needs CUDA devices")):
        assert main([*base, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert main([*base, "--device", "cuda", "--jobs-per-gpu", "2"]) == 0
    assert "plan for suite mlp on cuda" in capsys.readouterr().out


def test_a_bench_executor_that_names_no_executor_is_refused_naming_the_variable(tmp_path, data_dir, capsys,
                                                                               monkeypatch):
    """$BENCH_EXECUTOR=rayy (or Inline) ran the sweep in local worker processes without a word: a
    sweep meant for a Ray cluster ran on the machine at hand. It is refused naming the variable
    (exit 2), unless --executor names one; empty, it is unset."""
    base = ["run", "--suite", "mlp", "--methods", "magnitude", "--data-dir", str(data_dir), "--results-dir",
            str(tmp_path), "--dry-run"]
    for value in ("rayy", "Inline"):
        monkeypatch.setenv("BENCH_EXECUTOR", value)
        assert main(base) == 2, value
        assert f"$BENCH_EXECUTOR is '{value}': expected one of local, ray, inline (or unset: local)" in \
            capsys.readouterr().err
    assert main([*base, "--executor", "local"]) == 0
    monkeypatch.setenv("BENCH_EXECUTOR", "")
    assert main(base) == 0


def test_set_of_a_selected_chain_link_is_accepted(tmp_path, data_dir, capsys):
    argv = ["run", "--suite", "mlp", "--methods", "magnitude+ptq-int8", "--set", "magnitude.sparsity=0.95",
            "--data-dir", str(data_dir), "--results-dir", str(tmp_path), "--dry-run"]
    assert main(argv) == 0
    assert "sparsity=0.95" in capsys.readouterr().out


def test_a_dry_run_of_a_command_that_would_be_refused_says_so(tmp_path, data_dir, capsys, monkeypatch):
    """A standard-budget run from uncommitted code is refused; its --dry-run printed the plan and
    its cost, and exited 0, as if the command could run. It now ends by saying it cannot."""
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc-dirty")
    argv = run_args("mlp", tmp_path / "results", data_dir, "--seeds", "0")
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == ("note: without --dry-run this command is refused: the checkout has uncommitted "
                                    "changes (0123abc-dirty): standard-budget records must come from a commit; commit "
                                    "first, or pass --allow-dirty (recorded in every record)")
    assert out.splitlines()[-1].removeprefix("note: without --dry-run this command is refused: ") in \
        refused(argv, capsys, tmp_path / "results")
    for fine in (["--allow-dirty"], ["--epochs", "1"]):  # allowed, or a quick run (no standard records)
        assert main([*argv, *fine, "--dry-run"]) == 0
        assert "note:" not in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def test_unknown_names_are_refused(tmp_path, data_dir, capsys):
    results = tmp_path / "results"
    line = refused(["run", "--suite", "mlp", "--methods", "magnitde", "--results-dir", str(results)], capsys, results)
    assert "unknown method 'magnitde'; did you mean magnitude" in line
    line = refused(["run", "--suite", "nope", "--methods", "dense", "--results-dir", str(results)], capsys, results)
    assert "unknown suite 'nope'" in line
    line = refused(["run", "--suite", "mlp", "--methods", ",", "--results-dir", str(results)], capsys, results)
    assert "no method selected" in line
    line = refused(["leaderboard", "--suite", "../mlp", "--results-dir", str(results)], capsys, results)
    assert line == f"bench: error: --suite '../mlp': expected a suite name, a plain folder name under {results}"


def test_a_name_as_long_as_a_command_line_allows_is_quoted_cut_short(tmp_path, data_dir, capsys):
    """Refusals quote what they were given cut to about 200 characters, as a suite file's values
    are: an unknown method, a --set key, a suite, a dataset or a --methods pattern of 5,000
    characters was quoted whole, a screenful (the command line allows 128 KiB an argument)."""
    long = "a" * 5000
    results = tmp_path / "results"
    suite = tmp_path / "suite.yaml"
    suite.write_text(VALID.replace("dataset: MNIST", f"dataset: {long}"))
    commands = [run_args("mlp", results, data_dir, *extra) for extra in (
        ["--methods", long], ["--methods", f"magnitude,{long}*"], ["--set", long], ["--set", f"{long}.sparsity=1"],
        ["--set", f"magnitude.{long}=1"], ["--set", f"magnitude.s{long}=["],
        ["--set", f"magnitude.{long}=1", "--set", f"magnitude.{long}=2"])]
    commands += [run_args(long, results, data_dir), run_args(str(suite), results, data_dir),
                 ["leaderboard", "--suite", f"../{long}", "--results-dir", str(results)]]
    for argv in commands:
        line = refused(argv, capsys, results)
        assert len(line) < 1000, line[:1000]


def test_a_results_folder_that_is_a_file_is_refused(tmp_path, data_dir, capsys):
    results = tmp_path / "results"
    results.write_text("not a folder\n")
    try:
        code = main(run_args("mlp", results, data_dir, "--seeds", "0", "--epochs", "1"))
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err == f"bench: error: cannot write run records under {results / 'mlp'}: {results} is not a folder\n"
    assert results.read_text() == "not a folder\n"


def test_a_suites_folder_given_as_the_results_folder_names_the_results_folder(tmp_path, data_dir, bench):
    """`results/mlp` (where leaderboard.md is) or its runs/ given as the results folder: `bench
    leaderboard` and `bench reproduce` said it held no records, `bench compare` that it shared no
    suite or held no run of the method, and `bench run` wrote into results/mlp/mlp/. Each names
    the results folder to pass."""
    results = tmp_path / "results"
    quick = ["--seeds", "0", "--epochs", "1", "--limit-train", "512", "--limit-test", "200", "--data-dir", data_dir]
    ran = bench(["run", "--suite", FAST, "--methods", "dense", *quick, "--results-dir", results])
    assert ran.returncode == 0, ran.stderr
    suite, runs = results / "mlp-fast", results / "mlp-fast" / "runs"
    why = f"is the folder of suite 'mlp-fast' in the results folder {results}, not a results folder itself: pass "
    shown = bench(["leaderboard", "--show", "--results-dir", suite])
    assert shown.returncode == 1 and shown.stderr == f"{suite} {why}--results-dir {results}\n"
    for argv in (["reproduce", "--suite", FAST, "--results-dir", suite],
                 ["run", "--suite", FAST, "--methods", "dense", *quick, "--results-dir", suite, "--dry-run"]):
        refused = bench(argv)
        assert refused.returncode == 2 and refused.stderr == f"bench: error: {suite} {why}--results-dir {results}\n"
    assert not (suite / "mlp-fast").exists()
    compared = bench(["compare", suite, results])
    assert compared.returncode == 2 and compared.stderr == f"bench: error: {suite} {why}{results}\n"
    within = bench(["compare", runs, "--methods", "dense,dense-ft"])
    assert within.returncode == 2 and within.stderr == (
        f"bench: error: {runs} {why.replace('the folder', 'the records folder')}{results}\n")
    assert bench(["leaderboard", "--show", "--results-dir", results, "--budget", "custom"]).returncode == 0


def test_a_suites_folder_named_from_inside_it_names_the_results_folder_above(tmp_path, monkeypatch):
    """`runs` typed in results/mlp (or `.` in its runs/) was called the records folder of suite ''
    in the results folder `.`, which is the suite's folder: a refusal naming another refused
    folder. The suite is named by the folder's own name, and the results folder is the one above."""
    from bench import layout

    runs = tmp_path / "results" / "mlp" / "runs"
    runs.mkdir(parents=True)
    (runs / "a.json").write_text("{}")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "link").symlink_to(runs.parent)
    for cwd, given, what, results in ((runs.parent, "runs", "the records folder", ".."),
                                      (runs.parent, ".", "the folder", ".."),
                                      (runs, ".", "the records folder", "../.."),
                                      (runs, "..", "the folder", "../.."),
                                      (tmp_path / "results", "mlp", "the folder", "."),
                                      (tmp_path, "elsewhere/link", "the folder", tmp_path / "results")):
        monkeypatch.chdir(cwd)
        assert layout.folder_too_deep(given, "--results-dir ") == (
            f"{given} is {what} of suite 'mlp' in the results folder {results}, not a results folder itself: "
            f"pass --results-dir {results}"), (cwd, given)


def test_refusals_look_the_same_from_a_real_process(tmp_path, data_dir):
    path = tmp_path / "suite.yaml"
    path.write_text(VALID.replace("name: tiny", "name: ../../outside"))
    stderr = []
    for argv in (run_args(str(path), tmp_path / "results", data_dir),
                 run_args("mlp", tmp_path / "results", data_dir, "--seeds", "0,0"),
                 # a registered method whose plugin this process has not imported: named as not selected
                 run_args("mlp", tmp_path / "results", data_dir, "--set", "random.sparsity=0.5")):
        proc: subprocess.CompletedProcess = run_bench(argv)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
        stderr.append(proc.stderr)
    assert f"bench: error: {path}: key 'name': expected a plain folder name" in stderr[0]
    assert "bench run: error: argument --seeds: expected distinct values" in stderr[1]
    assert "bench: error: --set random.sparsity: method 'random' is not selected (--methods selects dense, magnitude)" \
        in stderr[2]
    assert not (tmp_path / "results").exists() and not (tmp_path.parent / "outside").exists()


def test_no_fine_tuning_is_legal_and_means_none(tmp_path, data_dir, capsys):
    """--finetune-epochs 0 (finetune_epochs: 0): a post-training method returns its compressed
    model without fine-tuning, and its cost is the dense model's epochs alone."""
    argv = ["run", "--suite", str(FAST), "--executor", "inline", "--methods", "magnitude",
            "--set", "magnitude.sparsity=0.5", "--seeds", "0",
            "--epochs", "1", "--finetune-epochs", "0", "--limit-train", "2000", "--limit-test", "500",
            "--data-dir", str(data_dir), "--results-dir", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    (path,) = (tmp_path / "mlp-fast" / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["metrics"]["train_epochs"] == 1
    assert record["config"]["budget"]["finetune_epochs"] == 0


def test_bench_alone_says_what_it_is_and_where_to_start(capsys):
    """`bench` with no command printed one argparse error line; a new user gets the help, with
    the commands to start from, and the exit code of a usage error."""
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bench") and "Which compression method wins" in err
    assert "start here:\n  bench leaderboard --show --suite mlp" in err and "run        run methods" in err


def test_the_helps_quick_run_is_the_readmes_first_session():
    """`bench --help` offered a quick run without `--limit-train 5000` and without `dense`: another
    budget than the README's first session (its own dense model on all 60,000 images, no
    reference row), so following both trained twice. The two name one command."""
    from pathlib import Path

    from bench.cli import START_HERE

    (quick,) = [line.strip() for line in START_HERE.splitlines() if line.strip().startswith("bench run")]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    session = readme.split("### A first session", 1)[1].split("###", 1)[0]
    assert f"    {quick}\n" in session, quick
    assert "--limit-train 5000" in quick and "dense" in quick.split("--methods ")[1].split()[0].split(",")


def test_a_method_name_with_spaces_is_hinted_as_a_comma_list_only_of_registered_names_and_bounded():
    """`--methods 'magnitude gmp'` is hinted as magnitude,gmp; words that name no method are not
    offered as a list of methods, and a name of thousands of words is not echoed whole in the hint
    (the name itself is cut to 200 characters)."""
    from bench import registry

    assert "did you mean magnitude,gmp (a comma list" in registry.unknown_method("magnitude gmp")
    assert "foo,bar" not in registry.unknown_method("foo bar")
    assert len(registry.unknown_method("magnitude " * 20000)) < 2000
