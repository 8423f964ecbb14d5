import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

from bench.resolve import resolved_suite
from bench.suite import SuiteError, available_suites, load_suite

VALID = """
version: 1
name: tiny
description: a tiny suite
data: {dataset: MNIST, mean: [0.1307], std: [0.3081]}
model: {name: lenet300}
training: {epochs: 1, finetune_epochs: 1, batch_size: 64, lr: 0.1, finetune_lr: 0.01}
seeds: [0]
sparsities: [0.5]
latency_batches: [1, 8]
"""


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_suites_load():
    suites = {name: resolved_suite(name) for name in available_suites()}
    assert set(suites) == {"mlp", "mnist", "cifar"}
    assert suites["cifar"].data.image_folder == "cifar10-jpeg"
    assert suites["mlp"].training.weight_decay == pytest.approx(1e-4)


def test_valid_file_parses_with_defaults(tmp_path):
    suite = load_suite(str(write(tmp_path, VALID)))
    assert suite.training.optimizer == "sgd" and suite.training.lr == 0.1
    assert suite.model.kwargs == {} and suite.methods == {}
    assert suite.runtimes == ["torch", "torch_csr", "onnxruntime", "openvino", "torch_2to4"]


@pytest.mark.parametrize("edit, message", [
    (("seeds: [0]", "seeds: [0]\ncolour: blue"), "key '<top level>': unknown key 'colour'"),
    (("lr: 0.1, ", ""), "missing key 'training.lr' (float)"),
    (("epochs: 1,", "epochs: one,"), "key 'training.epochs': expected int, got str 'one'"),
    (("epochs: 1,", "epochs: true,"), "key 'training.epochs': expected int, got bool"),
    (("seeds: [0]", "seeds: 0"), "key 'seeds': expected a list"),
    (("mean: [0.1307]", "mean: [x]"), "key 'data.mean[0]': expected float"),
    (("lr: 0.1,", "lr: 0.1, optimizer: rmsprop,"), "key 'training.optimizer': expected one of sgd, adam, adamw"),
    (("lr: 0.1,", "lr: 0.1, precision: fp16,"), "key 'training.precision': expected one of fp32, bf16"),
    (("seeds: [0]", "seeds: [0]\nruntimes: [torch, tensorrt]"),
     "key 'runtimes': unknown runtime 'tensorrt'; expected some of torch, torch_compile, torch_csr"),
    (("seeds: [0]", "seeds: [0]\nruntimes: [onnxruntime]"), "key 'runtimes': must include torch"),
    (("lr: 0.1, ", "lr: 0.1, lr: 5.0, "), "key 'lr' is given twice in one mapping"),  # YAML would keep the last
])
def test_errors_name_file_key_and_expectation(tmp_path, edit, message):
    path = write(tmp_path, VALID.replace(*edit))
    with pytest.raises(SuiteError) as err:
        resolved_suite(str(path))
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unknown_suite_and_bad_yaml(tmp_path):
    with pytest.raises(SuiteError, match="unknown suite 'nope'; shipped suites: cifar, mlp, mnist"):
        load_suite("nope")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(str(write(tmp_path, "a: [1,")))


def test_parsing_is_apart_from_resolving_names(tmp_path):
    """A suite naming a method that no plugin registers parses (listing suites, reading a
    budget), without torch; resolving refuses it, naming the key."""
    path = write(tmp_path, VALID + "methods: {no-such-method: {x: 1}}\n")
    code = ("import sys; from bench.suite import load_suite; "
            f"s = load_suite({str(path)!r}); assert s.methods == {{'no-such-method': {{'x': 1}}}}; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(SuiteError, match=r"key 'methods.no-such-method': unknown method 'no-such-method'"):
        resolved_suite(str(path))


def test_a_copy_of_a_shipped_suite_that_trains_otherwise_must_take_another_name(tmp_path):
    """Its records would go to results/mlp and be averaged into the shipped rows (a new user's
    copy of mlp.yaml at another learning rate was). A copy that only measures otherwise (the GPU
    session's quick dry run: other runtimes and batches) keeps the name."""
    shipped = available_suites()["mlp"].read_text()
    copy = write(tmp_path, shipped.replace("lr: 0.05", "lr: 0.04"))
    with pytest.raises(SuiteError, match=r"named 'mlp', as a shipped suite is, but trains otherwise \(training.lr 0.04 "
                                         r"here, 0.05 in mlp\).*name: my-mlp"):
        load_suite(str(copy))
    assert load_suite(str(write(tmp_path, copy.read_text().replace("name: mlp", "name: my-mlp")))).training.lr == 0.04
    measured = write(tmp_path, shipped.replace("latency_batches: [1, 256]", "latency_batches: [1, 16]"))
    assert load_suite(str(measured)).latency_batches == [1, 16]
    assert load_suite(str(available_suites()["mlp"])) == load_suite("mlp")
