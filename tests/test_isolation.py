"""No run can corrupt another, hang the sweep, take the command down, or be ranked as nonsense.

Plugins do the worst they can reach: corrupt the shared dense weights and data and torch's global
state, hang, exit or kill their worker process, return models that are no answer to the suite.
The next row must not notice, and each bad run must be one row that says why.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import FAST, make_distribution

TINY = ["--suite", FAST, "--seeds", "0", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "2000",
        "--limit-test", "500", "--threads", "1"]

PLUGINS = '''
    import os
    import subprocess
    import tempfile
    import time

    import torch
    from torch import nn

    from bench import Method, register_method

    @register_method("corrupter")
    class Corrupter(Method):
        """Corrupts everything a run can reach: the dense weights, the data, torch's global state
        and hooks on every module, the working directory."""

        def run(self, ctx):
            model = ctx.pretrained()
            for t in ctx._dense.state_dict.values():
                t.zero_()
            for t in (ctx.data.train.x, ctx.data.train.y, ctx.data.test.x, ctx.data.test.y):
                t.zero_()
            torch.set_grad_enabled(False)
            torch.set_default_dtype(torch.float64)
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(2)
            torch.set_default_device("meta")
            os.chdir(tempfile.mkdtemp())
            torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: out * 0)
            return model

    @register_method("rebinder")
    class Rebinder(Method):
        """Rebinds the code that measures every run, and reseeds the global random generators."""

        def run(self, ctx):
            import random

            import numpy

            import bench.measure

            bench.measure.count_nonzeros = lambda model: 1
            torch.count_nonzero = lambda t, *args, **kwargs: torch.tensor(1)
            torch.Tensor.count_nonzero = lambda self, *args, **kwargs: torch.tensor(1)
            torch.set_float32_matmul_precision("medium")
            random.seed(1)
            numpy.random.seed(1)
            return ctx.pretrained()

    @register_method("rebinds-then-trains")
    class RebindsThenTrains(Method):
        """Rebinds the code that measures every run, then fine-tunes: in a fused task, the run
        that resumes first after the training measured with it."""

        def run(self, ctx):
            import bench.measure

            bench.measure.count_nonzeros = lambda model: 1
            model = ctx.pretrained()
            ctx.finetune(model)
            return model

    @register_method("hangs")
    class Hangs(Method):
        """Starts a process of its own, then never returns."""

        def run(self, ctx):
            child = subprocess.Popen(["sleep", "3600"])
            print(f"child {child.pid}", flush=True)
            time.sleep(3600)

    @register_method("exits")
    class Exits(Method):
        """Ends its process without a word, as os._exit does (at seed 0; at others it returns the
        dense model, so that a fused task can hold one run that ends it and one that does not)."""

        def run(self, ctx):
            model = ctx.pretrained()
            if ctx.seed == 0:
                os._exit(0)
            return model

    class Head(nn.Module):
        def __init__(self, inner, out):
            super().__init__()
            self.inner, self.out = inner, nn.Linear(10, out)

        def forward(self, x):
            return self.out(self.inner(x))

    @register_method("five-classes")
    class FiveClasses(Method):
        """Answers a 10-class suite with 5 scores."""

        def run(self, ctx):
            return Head(ctx.pretrained(), 5)

    @register_method("unused-weights")
    class UnusedWeights(Method):
        """Carries a large parameter its forward never reads."""

        def run(self, ctx):
            model = ctx.pretrained()
            model.ballast = nn.Parameter(torch.zeros(100_000))
            return model

    class Hidden(nn.Module):
        def __init__(self, inner, in_buffer):
            super().__init__()
            self.inner = inner
            weight = inner[1].weight.detach().clone()
            del inner[1].weight
            if in_buffer:
                self.register_buffer("w", weight)
            else:
                self.w = weight
            inner[1].weight = None

        def forward(self, x):
            h = torch.relu(torch.nn.functional.linear(x.flatten(1), self.w, self.inner[1].bias))
            return self.inner[5](torch.relu(self.inner[3](h)))

    @register_method("attribute-weights")
    class AttributeWeights(Method):
        """Keeps its first layer's weights in a plain attribute."""

        def run(self, ctx):
            return Hidden(ctx.pretrained(), in_buffer=False)

    @register_method("buffer-weights")
    class BufferWeights(Method):
        """Keeps its first layer's weights in a buffer."""

        def run(self, ctx):
            return Hidden(ctx.pretrained(), in_buffer=True)

    @register_method("hooker")
    class Hooker(Method):
        """Registers a hook on every module, then fine-tunes: under --fuse the task's other runs
        take their turns while it trains."""

        def run(self, ctx):
            model = ctx.pretrained()
            torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None)
            ctx.finetune(model)
            return model

    @register_method("unsettler")
    class Unsettler(Method):
        """Leaves autocast on in fp16, oneDNN and cuDNN off, and denormals flushed to zero."""

        def run(self, ctx):
            for device in ("cpu", "cuda"):
                torch.set_autocast_enabled(device, True)
                torch.set_autocast_dtype(device, torch.float16)
            torch.backends.mkldnn.enabled = torch.backends.cudnn.enabled = torch.backends.cudnn.allow_tf32 = False
            torch.set_flush_denormal(True)
            return ctx.pretrained()

    @register_method("settings-reader")
    class SettingsReader(Method):
        """Records the settings that the unsettler changes, as its run finds them."""

        def run(self, ctx):
            ctx.record(autocast=[torch.is_autocast_enabled(d) for d in ("cpu", "cuda")],
                       autocast_dtype=[str(torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")],
                       backends=[torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled,
                                 torch.backends.cudnn.allow_tf32],
                       denormal=torch.tensor([1e-40]).item())
            return ctx.pretrained()

    @register_method("suite-editor")
    class SuiteEditor(Method):
        """Edits the suite it is handed, whose lists are mutable: the normalization, the layers kept dense."""

        def run(self, ctx):
            ctx.suite.data.mean[0], ctx.suite.data.std[0] = 0.9, 5.0
            ctx.suite.dense_layers.append("first")
            return ctx.pretrained()

    @register_method("unfolded-masks")
    class UnfoldedMasks(Method):
        """Prunes with torch.nn.utils.prune and forgets make_permanent: measured, it was 0% sparse."""

        def run(self, ctx):
            from torch.nn.utils import prune

            from bench.sparsity import prunable_weights, prune_unstructured

            model = ctx.pretrained()
            prune_unstructured(prunable_weights(model), prune.L1Unstructured, amount=0.9)
            return model
'''
NAMES = ("corrupter", "rebinder", "rebinds-then-trains", "hangs", "exits", "five-classes", "unused-weights", "attribute-weights", "buffer-weights",
         "unfolded-masks", "hooker", "unsettler", "settings-reader", "suite-editor")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    return make_distribution(tmp_path_factory.mktemp("site"), "hostile", PLUGINS, {n: "hostile" for n in NAMES})


def recs(results: Path) -> dict[str, dict]:
    return {r["config"]["method"]: r for r in
            (json.loads(p.read_text()) for p in (results / "mlp-fast" / "runs").glob("*.json"))}


@pytest.mark.xdist_group("processes")
def test_what_a_run_corrupts_reaches_no_other_run(tmp_path, data_dir, hostile, plugins, bench, monkeypatch):
    """The corrupter runs first; dense and magnitude after it give the records of a sweep without
    it, both where the runs share the command's own process (inline) and where they share one
    worker process. The results folders are relative: the corrupter changes the working
    directory."""
    plugins(hostile)
    monkeypatch.chdir(tmp_path)
    clean = bench(["run", *TINY, "--methods", "dense,magnitude", "--data-dir", data_dir,
                   "--results-dir", tmp_path / "clean"])
    assert clean.returncode == 0, clean.stderr
    reference = {m: r["metrics"] for m, r in recs(tmp_path / "clean").items()}
    for executor in (["--executor", "inline"], ["--executor", "local", "--jobs", "1"]):
        proc = bench(["run", *TINY, "--methods", "corrupter,dense,magnitude", *executor,
                      "--data-dir", data_dir, "--results-dir", executor[1]])
        assert proc.returncode == 0, proc.stderr
        got = recs(tmp_path / executor[1])
        assert got["corrupter"]["status"] == "ok"
        for method in ("dense", "magnitude"):
            for key in ("accuracy", "nonzeros", "size_bytes", "train_epochs"):
                assert got[method]["metrics"][key] == reference[method][key], (executor, method, key)
        assert {r["env"]["threads"] for r in got.values()} == {1}  # the corrupter's threads stayed its own


@pytest.mark.xdist_group("processes")
def test_code_a_run_rebinds_is_put_back_and_the_run_not_ranked(tmp_path, data_dir, hostile, plugins, bench):
    """A plugin that rebinds the harness's measuring code (and torch's) gave the next run in its
    worker 100% sparsity: the functions are bound again after the run, which fails saying what it
    rebound, and the runs after it measure as in a sweep without it; the random generators and
    matmul precision it set are its own too."""
    import random

    import numpy
    import torch

    from bench import measure

    plugins(hostile)
    clean = bench(["run", *TINY, "--methods", "dense,magnitude", "--data-dir", data_dir,
                   "--results-dir", tmp_path / "clean"])
    assert clean.returncode == 0, clean.stderr
    reference = {m: r["metrics"] for m, r in recs(tmp_path / "clean").items()}
    count_nonzeros, python_random, numpy_random = measure.count_nonzeros, random.getstate(), numpy.random.get_state()
    for executor in (["--executor", "inline"], ["--executor", "local", "--jobs", "1"]):
        results = tmp_path / executor[1]
        proc = bench(["run", *TINY, "--methods", "rebinder,dense,magnitude", *executor,
                      "--data-dir", data_dir, "--results-dir", results])
        assert proc.returncode == 1, proc.stderr  # the rebinder's failed row
        got = recs(results)
        assert got["rebinder"]["status"] == "failed"
        assert got["rebinder"]["error"].startswith("PluginError: the method rebound bench.measure.count_nonzeros, "
                                                   "torch.count_nonzero, torch.Tensor.count_nonzero")
        for method in ("dense", "magnitude"):
            for key in ("accuracy", "nonzeros", "sparsity", "size_bytes"):
                assert got[method]["metrics"][key] == reference[method][key], (executor, method, key)
    # in this process (the inline executor's), everything is as it was
    assert measure.count_nonzeros is count_nonzeros and "count_nonzero" not in vars(torch.Tensor)
    assert torch.count_nonzero(torch.ones(3)) == 3 and torch.get_float32_matmul_precision() == "highest"
    assert random.getstate() == python_random and numpy.random.get_state()[1].tolist() == numpy_random[1].tolist()


@pytest.mark.xdist_group("processes")
def test_a_run_that_hangs_or_ends_its_process_is_one_failed_row_and_not_retried_forever(
        tmp_path, data_dir, hostile, plugins, bench):
    plugins(hostile)
    # 15 s: a run's limit also covers its worker's start (imports, data) when it is the first
    args = ["run", *TINY, "--executor", "local", "--run-timeout", "0.25", "--data-dir", data_dir,
            "--results-dir", tmp_path]
    first = bench([*args, "--methods", "dense,hangs,exits"])
    assert first.returncode == 1, first.stderr
    got = recs(tmp_path)
    assert got["dense"]["status"] == "ok"
    assert got["hangs"]["status"] == "failed" and got["hangs"]["error"].startswith(
        "TimedOut: the run took longer than its limit of 15 s (--run-timeout); its worker process was killed")
    (log,) = (tmp_path / "mlp-fast" / "logs").glob("hangs-*.log")
    child = int(re.search(r"child (\d+)", log.read_text()).group(1))
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2], \
        "the plugin's own process outlived its killed worker"
    assert got["exits"]["error"] == "WorkerDied: the worker process running this task exited with code 0"
    assert got["exits"]["worker_deaths"] == 1

    again = bench([*args, "--methods", "dense,exits"])  # the second death in a row
    assert again.returncode == 1 and "1 to run, 1 finished before" in again.stdout, again.stderr
    assert recs(tmp_path)["exits"]["worker_deaths"] == 2
    assert "2 times running: not retried any more; --force retries it" in recs(tmp_path)["exits"]["error"]
    third = bench([*args, "--methods", "dense,exits", "--dry-run"])
    assert "0 to run, 2 finished before" in third.stdout, third.stdout
    forced = bench([*args, "--methods", "exits", "--force", "--dry-run"])
    assert "1 to run, 0 finished before" in forced.stdout


@pytest.mark.xdist_group("processes")
def test_a_run_that_ends_its_fused_tasks_process_fails_alone_and_the_others_finish(
        tmp_path, data_dir, hostile, plugins, bench):
    """With --fuse 2, `exits` at seed 0 shares a task with its run at seed 1 (a fused task holds
    one method's runs): its os._exit ended the worker, and both runs failed as WorkerDied; fused
    again on the retry, both died a second time and neither was retried any more. The task's runs
    run again alone: only the run at seed 0 fails."""
    plugins(hostile)
    proc = bench(["run", *TINY, "--seeds", "0,1", "--executor", "local", "--fuse", "2", "--methods", "exits",
                  "--data-dir", data_dir, "--results-dir", tmp_path])
    assert proc.returncode == 1, proc.stderr
    assert ("2 runs trained as one task lost their worker (WorkerDied: the worker process running this task "
            "exited with code 0): each runs again alone, so that only the run that caused it fails") in proc.stdout
    got = [json.loads(p.read_text()) for p in (tmp_path / "mlp-fast" / "runs").glob("*.json")]
    assert sorted((r["config"]["seed"], r["status"], r.get("worker_deaths")) for r in got) == [
        (0, "failed", 1), (1, "ok", None)]


def test_models_that_are_no_answer_to_the_suite_are_invalid_rows_never_ranked(tmp_path, data_dir, hostile,
                                                                               plugins, bench):
    plugins(hostile)
    proc = bench(["run", *TINY, "--methods",
                  "dense,five-classes,unused-weights,attribute-weights,buffer-weights,unfolded-masks",
                  "--data-dir", data_dir, "--results-dir", tmp_path])
    assert proc.returncode == 1, proc.stderr
    got = recs(tmp_path)
    assert {m: r["status"] for m, r in got.items()} == {
        "dense": "ok", "five-classes": "invalid", "unused-weights": "invalid", "attribute-weights": "invalid",
        "buffer-weights": "invalid", "unfolded-masks": "invalid"}
    assert got["five-classes"]["error"] == ("the returned model gives (16, 5) for 16 test images; the suite has 10 "
                                            "classes, so each image needs 10 scores")
    assert got["unused-weights"]["error"].startswith("the returned model has parameters its forward pass never "
                                                     "uses (ballast)")
    assert got["attribute-weights"]["error"].startswith("the returned model's forward pass uses a (300, 784) "
                                                        "tensor that is neither a parameter nor a buffer")
    assert got["buffer-weights"]["error"].startswith("the returned model holds float weights in buffers (w)")
    assert got["unfolded-masks"]["error"] == (  # the fix within the console's first 100 characters
        "the returned model still has pruning masks: call bench.sparsity.make_permanent(model) before returning it "
        "(torch.nn.utils.prune on 1.weight, 3.weight, 5.weight: weight_orig keeps the pruned values, which would "
        "count as dense)")
    ranked = pd.read_csv(tmp_path / "mlp-fast" / "leaderboard-custom.csv")
    assert list(ranked.method) == ["dense"]


@pytest.fixture
def mixed_tasks(monkeypatch):
    """Fused tasks of the next runs in plan order, whatever their methods: a task holds one
    method's runs (bench.plan.fusion_key), and what one run of a task does to another needs two."""
    from bench import runner, sweep

    monkeypatch.setattr(runner, "fusion_key", lambda spec, suite, history: "one kind")
    tasks: list[int] = []
    submit = sweep.Sweep._submit
    monkeypatch.setattr(sweep.Sweep, "_submit", lambda self, group: (tasks.append(len(group)), submit(self, group))[1])
    yield
    assert any(n > 1 for n in tasks), f"no task held two runs ({tasks}): the test did not test what it says"


def test_a_fused_task_leaves_no_setting_of_its_runs_behind(tmp_path, data_dir, hostile, plugins, bench, mixed_tasks):
    """The runs of a fused task take turns in one process, each saving torch's settings as it
    starts: the run that started second saved the first one's hook on every module, and put it
    back when it ended last, so the hook outlived the task (in this process: inline). The task
    puts back what was there before it."""
    import torch.nn.modules.module as module_hooks

    plugins(hostile)
    before = dict(module_hooks._global_forward_hooks)
    ran = bench(["run", *TINY, "--methods", "hooker,magnitude", "--set", "magnitude.sparsity=0.5", "--fuse", "2",
                 "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    assert {m: r["status"] for m, r in recs(tmp_path).items()} == {"hooker": "ok", "magnitude": "ok"}
    assert dict(module_hooks._global_forward_hooks) == before


def test_in_a_fused_task_a_rebinding_fails_the_run_that_made_it_not_the_one_that_ends_first(
        tmp_path, data_dir, hostile, plugins, bench, mixed_tasks):
    """The runs of a fused task take turns: magnitude runs to its training call, then the plugin
    rebinds bench.measure.count_nonzeros and calls its own, and after the training magnitude
    resumes first. It measured with the plugin's function (its nonzeros: 1) and was failed for
    it, while the plugin, whose rebinding was put back before it measured, was ranked. What a run
    rebinds is now put back as it hands on its turn, and fails that run."""
    plugins(hostile)
    args = ["run", *TINY, "--set", "magnitude.sparsity=0.5", "--data-dir", data_dir]
    clean = bench([*args, "--methods", "dense,magnitude", "--results-dir", tmp_path / "clean"])
    assert clean.returncode == 0, clean.stderr
    ran = bench([*args, "--methods", "magnitude,rebinds-then-trains", "--fuse", "2",
                 "--results-dir", tmp_path / "fused"])
    got = recs(tmp_path / "fused")
    assert ran.returncode == 1 and got["magnitude"]["status"] == "ok", got["magnitude"].get("error")
    assert got["magnitude"]["metrics"]["nonzeros"] == recs(tmp_path / "clean")["magnitude"]["metrics"]["nonzeros"]
    assert got["rebinds-then-trains"]["error"].startswith("PluginError: the method rebound bench.measure.count_nonzeros")


def test_autocast_onednn_cudnn_and_denormal_flushing_a_run_leaves_reach_no_later_run(tmp_path, data_dir, hostile,
                                                                                       plugins, bench):
    """A plugin that left autocast on had the next run of its process evaluated and timed in
    fp16, and one that turned oneDNN off, timed without it: the next run finds torch's defaults,
    and the command's process its own settings again."""
    import torch

    def settings() -> list:
        return [*(torch.is_autocast_enabled(d) for d in ("cpu", "cuda")), *(torch.get_autocast_dtype(d) for d in ("cpu", "cuda")),
                torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32,
                torch.tensor([1e-40]).item()]

    plugins(hostile)
    before = settings()
    ran = bench(["run", *TINY, "--methods", "unsettler,settings-reader", "--data-dir", data_dir,
                 "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    figures = recs(tmp_path)["settings-reader"]["figures"]
    assert figures["autocast"] == [False, False]
    assert figures["autocast_dtype"] == [str(torch.bfloat16), str(torch.float16)]
    assert figures["backends"] == [True, True, True] and figures["denormal"] > 0
    assert settings() == before


def test_a_suite_a_run_edits_is_its_own(tmp_path, data_dir, hostile, plugins, bench):
    """The suite a run's context holds is its own copy: a plugin that edited its lists (the
    normalization's mean and std, the layers kept dense) in the inline executor, whose runs share
    the command's suite, had the next run's magnitude pruning score 14% at 6% sparsity, recorded
    as ok under the unchanged configuration, where it scores 68% at 50% alone."""
    plugins(hostile)
    args = ["run", *TINY, "--set", "magnitude.sparsity=0.5", "--data-dir", data_dir]
    clean = bench([*args, "--methods", "magnitude", "--results-dir", tmp_path / "clean"])
    assert clean.returncode == 0, clean.stderr
    ran = bench([*args, "--methods", "suite-editor,magnitude", "--results-dir", tmp_path / "edited"])
    assert ran.returncode == 0, ran.stderr
    reference, got = recs(tmp_path / "clean")["magnitude"], recs(tmp_path / "edited")["magnitude"]
    for key in ("accuracy", "nonzeros", "sparsity"):
        assert got["metrics"][key] == reference["metrics"][key], key
    assert got["config"] == reference["config"]


def test_the_settings_a_run_resets_are_the_callers_again_after_it():
    """The inline executor runs in the caller's process (a script calling bench.api.run): each
    run starts from the harness's settings, and the caller's are put back after it, its default
    device too (it was left at none: the script's later tensors went to the CPU)."""
    import torch

    from bench.worker import _torch_defaults

    torch.set_default_device("meta")
    try:
        with _torch_defaults(None):
            assert torch.empty(1).device.type == "cpu"
            torch.set_default_device("meta")  # a plugin's, for its own run
        assert torch.empty(1).device.type == "meta"
        torch.set_default_device(None)
        with _torch_defaults(None):
            torch.set_default_device("meta")
        assert torch.empty(1).device.type == "cpu"
        environ = dict(os.environ)
        with _torch_defaults(None):  # the environment: the harness reads $BENCH_GIT_COMMIT as it goes
            os.environ["BENCH_GIT_COMMIT"] = "0" * 40
            os.environ.pop("PATH")
        assert dict(os.environ) == environ
    finally:
        torch.set_default_device(None)


@pytest.mark.stack  # (switches that newer torch versions added)
def test_cublas_reduced_precision_switches_a_run_flips_reach_no_later_run():
    """cuBLAS's switches for fp16 and bf16 matmuls (reduced-precision reduction, fp16
    accumulation) are process-wide: a plugin that flipped them had every later run of its worker
    trained, evaluated and timed under them. Each run starts from torch's defaults, and the
    caller's settings are back after it. They read and set on a torch without a GPU. (TF32
    matmuls are the float32 matmul precision's, reset already: torch.backends.cuda.matmul.allow_tf32
    is that precision read another way.)"""
    import torch

    from bench.worker import _torch_defaults

    matmul = torch.backends.cuda.matmul
    names = ("allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction",
             "allow_fp16_accumulation")
    before = [getattr(matmul, name) for name in names]
    try:
        for name, value in zip(names, (False, False, True)):  # the caller's own
            setattr(matmul, name, value)
        with _torch_defaults(None):
            assert [getattr(matmul, name) for name in names] == [True, True, False]
            for name, value in zip(names, (False, False, True)):  # a plugin's
                setattr(matmul, name, value)
            torch.set_float32_matmul_precision("high")
            assert matmul.allow_tf32
        assert [getattr(matmul, name) for name in names] == [False, False, True] and not matmul.allow_tf32
    finally:
        for name, value in zip(names, before):
            setattr(matmul, name, value)


@pytest.mark.stack  # the two APIs' interplay is torch's, and differs between versions
def test_float32_precision_a_run_sets_in_torchs_newer_api_reaches_no_later_run():
    """torch 2.9's per-backend `fp32_precision` holds the older API's settings too, and once a
    plugin set one, the older getters raise ("mix of the legacy and new APIs"): the harness read
    the float32 matmul precision and cudnn.allow_tf32 as each run began, so every later run of the
    worker failed; and oneDNN's convolutions left at bf16 stayed so for them. Each run starts from
    torch's defaults in that API, and the caller's settings, mixed or not, are back after it."""
    import torch

    from bench.worker import FP32_PRECISIONS, _torch_defaults

    owners = [owner for owner, _ in FP32_PRECISIONS]
    before = [owner.fp32_precision for owner in owners]
    try:
        torch.backends.mkldnn.conv.fp32_precision = "bf16"  # the caller's own
        with _torch_defaults(None):
            assert [owner.fp32_precision for owner in owners] == [d for _, d in FP32_PRECISIONS]
            assert torch.get_float32_matmul_precision() == "highest" and torch.backends.cudnn.allow_tf32
            torch.backends.cuda.matmul.fp32_precision = "tf32"  # a plugin's, in the newer API
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            with pytest.raises(RuntimeError, match="mix of the legacy and new APIs"):
                torch.get_float32_matmul_precision()
        with _torch_defaults(None):  # the next run starts, and finds torch's defaults
            assert torch.get_float32_matmul_precision() == "highest" and torch.backends.cudnn.allow_tf32
            assert torch.backends.mkldnn.conv.fp32_precision == "none"
        assert torch.backends.mkldnn.conv.fp32_precision == "bf16"  # the caller's, back
        assert torch.backends.cuda.matmul.fp32_precision == before[1]
    finally:
        for owner, value in zip(owners, before):
            owner.fp32_precision = value


def test_a_callers_denormal_flushing_is_read_whatever_its_default_dtype():
    """torch has no getter for denormal flushing: the worker reads it from a float that is
    denormal in float32. Read in the caller's default dtype, a script (the inline executor's
    caller) working in float64, where that float is a normal number, read as not flushing, and
    its run ended with the caller's flushing turned off."""
    import torch

    from bench.worker import _torch_defaults

    dtype = torch.get_default_dtype()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        torch.set_default_dtype(torch.float64)
        with _torch_defaults(None):
            assert torch.tensor([1e-40], dtype=torch.float32).item() > 0  # the harness's: not flushed
        assert torch.get_default_dtype() == torch.float64
        assert torch.tensor([1e-40], dtype=torch.float32).item() == 0.0  # the caller's flushing, back
    finally:
        torch.set_flush_denormal(False)
        torch.set_default_dtype(dtype)
