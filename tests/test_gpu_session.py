"""The GPU session script, dry-run on the CPU with tiny budgets: the same steps a GPU window
takes (set-up, gpu tests, training speed, the sweep, the archive), so a window is never spent
finding a broken script."""

from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import ROOT


def small_cifar(cifar_dir: Path, into: Path, per_class: int = 60) -> Path:
    """A CIFAR-10 JPEG copy of `per_class` images per class and split, linked from the full one:
    the script's steps are the same, without decoding 60,000 images first. The official layout
    needs no decoding, so it is used whole."""
    full = cifar_dir / "cifar10-jpeg"
    if (cifar_dir / "cifar-10-batches-py").is_dir() or not full.is_dir():
        return cifar_dir
    for split in ("train", "test"):
        for cls in sorted(p for p in (full / split).iterdir() if p.is_dir()):
            (into / "cifar10-jpeg" / split / cls.name).mkdir(parents=True)
            for image in sorted(cls.iterdir())[:per_class]:
                (into / "cifar10-jpeg" / split / cls.name / image.name).symlink_to(image)
    return into


@pytest.mark.session
@pytest.mark.stack
def test_gpu_session_dry_run_on_cpu(tmp_path, cifar_dir):
    out, results = tmp_path / "out", tmp_path / "results"
    data = small_cifar(cifar_dir, tmp_path / "data")
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(out), "--data", str(data),
         "--results", str(results), "--minutes", "10", "--methods", "dense,magnitude", "--seeds", "0", "--quick"],
        capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "fused-bench.json", "fused-bench.log", "results.tar.gz",
                                                      "session.log", "sweep.log"]
    bench = json.loads((out / "fused-bench.json").read_text())
    assert {"alone K=1", "fused K=2", "fused nchw K=2"} <= bench["rates"].keys()
    assert "choice for the sweep:" in (out / "fused-bench.log").read_text()
    session = (out / "session.log").read_text()
    assert "--order breadth --refresh device --max-minutes" in session and f"--fuse {bench['fuse'] or 1} --fuse-layout {bench['fuse_layout'] or 'model'}" in session
    assert "bench run: exit 0 (4 runs finished)" in session
    with tarfile.open(out / "results.tar.gz") as tar:
        names = tar.getnames()
        recs = [json.load(tar.extractfile(n)) for n in names if n.startswith("cifar/runs/") and n.endswith(".json")]
    assert sorted(r["config"]["method"] for r in recs) == ["dense", "magnitude", "magnitude", "magnitude"]
    assert all(r["status"] == "ok" for r in recs)
    assert any(n.startswith("cifar/cache/dense-s0-") and n.endswith(".safetensors") for n in names)  # it travels back
    # the bench ran whole: kept with the results (archived, to commit), a later window on the same
    # GPU, torch and code takes its choice and gives the bench's minutes to the sweep
    assert "cifar/fused-bench.json" in names and json.loads((results / "cifar" / "fused-bench.json").read_text()) == bench
    again = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out2"), "--data", str(data),
         "--results", str(results), "--minutes", "3", "--methods", "dense,magnitude", "--seeds", "0", "--quick",
         "--", "--dry-run"], capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert again.returncode == 0, again.stdout + again.stderr
    session = (tmp_path / "out2" / "session.log").read_text()
    choice = f"--fuse {bench['fuse'] or 1} --fuse-layout {bench['fuse_layout'] or 'model'}"
    assert f"fused bench not run: the one kept in {results}/cifar/fused-bench.json holds for this GPU, torch and " \
           f"code: {choice}" in session and "fused bench (at most" not in session, session
    assert choice in session.split("bench run --methods")[1], session


def _commit_of_this_tree(into: Path) -> str:
    """A one-commit repository holding this checkout's code as it is now (uncommitted changes
    too, so that the test checks the scripts being written), without results/."""
    into.mkdir()
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        if not name.startswith("results/") and (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_bytes((ROOT / name).read_bytes())
    git = ["git", "-C", str(into), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "code"]):
        subprocess.run([*git, *args], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.session
def test_a_copy_sent_without_its_git_names_its_commit_verified_and_stops_when_it_differs(tmp_path, cifar_dir):
    """The device tool copies the tree without .git (and may drop executable bits): the carried
    shallow clone lets bench check the copy against its commit, as in a checkout; a copy that
    differs stops the session within seconds rather than spend the window on refused runs."""
    commit = _commit_of_this_tree(tmp_path / "repo")
    carry = subprocess.run(["bash", "benchmarks/gpu_carry.sh", "--data", "none", "--wheels", "none"],
                           cwd=tmp_path / "repo", capture_output=True, text=True, timeout=120)
    assert carry.returncode == 0, carry.stderr
    assert f"(commit {commit[:12]})" in carry.stdout and '"--data", ".gpudata' not in carry.stdout
    copy = tmp_path / "copy"  # what the device machine gets: the files, then the carried .gpugit
    copy.mkdir()
    archive = subprocess.run(["git", "-C", str(tmp_path / "repo"), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
    (copy / "benchmarks" / "gpu_session.sh").chmod(0o644)
    data = small_cifar(cifar_dir, tmp_path / "data", per_class=2)

    def session(out: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "benchmarks/gpu_session.sh", "--out", str(tmp_path / out), "--data", str(data),
                               "--minutes", "0", "--fused-bench", "none"], cwd=copy, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHON": sys.executable})

    unnamed = session("unnamed")  # .gpugit left behind
    assert unnamed.returncode == 3 and "no commit names this code" in (tmp_path / "unnamed" / "session.log").read_text()
    shutil.copytree(tmp_path / "repo" / ".gpugit", copy / ".gpugit")
    clean = session("clean")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"code: {commit}\n" in (tmp_path / "clean" / "session.log").read_text()

    # The next call on a machine kept warm: the last call's .git is still there, a new commit's arrives
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "repo" / "NEWS").write_text("a second commit\n")
    subprocess.run([*git, "add", "NEWS"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "second"], check=True)
    second = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert subprocess.run(["bash", "benchmarks/gpu_carry.sh", "--data", "none", "--wheels", "none"],
                          cwd=tmp_path / "repo", capture_output=True, timeout=120).returncode == 0
    archive = subprocess.run([*git, "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
    shutil.copytree(tmp_path / "repo" / ".gpugit", copy / ".gpugit")
    warm = session("warm")
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert f"code: {second}\n" in (tmp_path / "warm" / "session.log").read_text()

    (copy / "methods" / "magnitude.py").write_text((copy / "methods" / "magnitude.py").read_text() + "# changed\n")
    changed = session("changed")
    assert changed.returncode == 3
    log = (tmp_path / "changed" / "session.log").read_text()
    assert f"code: {second}-dirty" in log and "M methods/magnitude.py" in log
    assert not (tmp_path / "changed" / "results.tar.gz").exists()


@pytest.mark.parametrize("option, value", [("--minutes", "7.5"), ("--fused-bench", "90.5")])
def test_a_number_bash_cannot_count_with_is_refused_before_anything_runs(tmp_path, option, value):
    """bash's arithmetic takes whole numbers only: `--minutes 7.5` stopped the script with a
    syntax error, and `--fused-bench 90.5` did so only after the set-up, leaving the window
    without its sweep and its archive."""
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out"),
                           "--data", str(tmp_path), option, value, "--quick"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2 and f"not '{value}'" in proc.stderr, proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_quick_dry_run_is_refused_the_repositorys_results(tmp_path):
    """--quick trains at tiny budgets on the CPU: without --results its records, leaderboards and
    CPU-timed fused bench went into the repository's results/, which a GPU window continues and
    which are committed (the bench over the window's)."""
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out"),
                           "--data", str(tmp_path), "--quick"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2 and "--quick needs --results DIR (a scratch folder)" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.session
def test_the_gpu_tests_take_a_k_expression_of_several_words(tmp_path, cifar_dir):
    """`--tests "not compile"` reached pytest as `-k not compile`: pytest took `compile` for a
    test file, found none, and ran no test at all (exit 4)."""
    data = small_cifar(cifar_dir, tmp_path / "data", per_class=2)
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out"), "--data", str(data),
         "--results", str(tmp_path / "results"), "--minutes", "3", "--fused-bench", "none", "--tests",
         "not compile and not deploy", "--quick", "--", "--dry-run"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = (tmp_path / "out" / "gpu-tests.log").read_text()
    assert "gpu tests: exit 0 (" in (tmp_path / "out" / "session.log").read_text(), tests
    assert "SKIPPED [1] tests/test_gpu.py" in tests and "test_gpu_deploy.py" not in tests, tests  # deploy: deselected


@pytest.mark.session
def test_the_steps_before_the_sweep_end_with_the_budget_and_the_archive_is_made(tmp_path, cifar_dir):
    """The script must end within --minutes + 2 whatever happens (the device call's limit is 10
    minutes; past it nothing is archived). The fused bench was given its budget plus two minutes
    and each training-speed mode 90 s, whatever was left: with a bench and a mode that hang, a
    session of 0 minutes ran 420 s; and `--tests` got `timeout 0`, no limit at all,
    when less than 3 s were left. A bench cut short leaves the choice of the cells it timed."""
    fake = tmp_path / "python"  # the real interpreter, except for the two steps, which hang
    fake.write_text("#!/usr/bin/env bash\n"  # the bench hangs once it has written a cell's result, as it does each
                    'if [[ "$1" == benchmarks/fused_gpu.py && " $* " == *" --out "* ]]; then\n'  # (--choice-of runs)
                    '  while [[ "$1" != --out ]]; do shift; done\n'
                    '  echo \'{"fuse": 2, "complete": false, "rates": {}}\' > "$2"; exec sleep 600; fi\n'
                    'case "$1" in benchmarks/train_speed.py) exec sleep 600 ;; esac\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    results = tmp_path / "results"
    (results / "cifar").mkdir(parents=True)
    (results / "cifar" / "kept.txt").write_text("a finished record\n")
    data = small_cifar(cifar_dir, tmp_path / "data", per_class=2)
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out"), "--data", str(data),
         "--results", str(results), "--minutes", "0", "--fused-bench", "120", "--speed", "eager,default", "--quick"],
        capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHON": str(fake)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - start < 0 + 120, (time.monotonic() - start, proc.stdout)
    log = (tmp_path / "out" / "session.log").read_text()
    assert "fused bench: exit 124" in log and "train_speed eager: exit 124" in log, log
    # what the bench measured before it was cut short chooses, and the log says so
    assert "the fused bench was cut short: --fuse 2 --fuse-layout model, chosen from the cells it timed" in log, log
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert "cifar/kept.txt" in tar.getnames()


@pytest.mark.session
def test_a_fused_bench_that_fails_at_once_leaves_the_sweep_unfused_and_the_archive_made(tmp_path, cifar_dir):
    """The fused bench's GPU ways have never run on CUDA: one that fails before writing anything
    (here it exits 1 at once, with a traceback) must leave the window its sweep, unfused, and
    its archive, with the traceback in fused-bench.log."""
    fake = tmp_path / "python"
    fake.write_text("#!/usr/bin/env bash\n"
                    'if [[ "$1" == benchmarks/fused_gpu.py ]]; then\n'
                    '  echo "Traceback (most recent call last):" >&2; echo "RuntimeError: CUDA error: simulated" >&2; exit 1\n'
                    'fi\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    data = small_cifar(cifar_dir, tmp_path / "data", per_class=2)
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(tmp_path / "out"), "--data", str(data),
         "--results", str(tmp_path / "results"), "--minutes", "2", "--methods", "dense,magnitude", "--seeds", "0",
         "--quick", "--", "--dry-run"],
        capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHON": str(fake)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "out" / "session.log").read_text()
    assert "fused bench: exit 1" in log and "--fuse 1" in log and "bench run: exit 0" in log, log
    assert "RuntimeError: CUDA error: simulated" in (tmp_path / "out" / "fused-bench.log").read_text()
    assert (tmp_path / "out" / "results.tar.gz").exists()


@pytest.mark.session
def test_a_link_planted_in_the_results_is_not_written_through_when_the_bench_is_kept(tmp_path, cifar_dir):
    """A whole bench is kept in <results>/cifar, a folder that is committed and carried to the
    window: `cp` to a planted `fused-bench.json.tmp` link wrote the bench's JSON over the file it
    named (~/.bashrc, say), and the kept file became a link to it. Now the bench is kept as a
    file of its own, the link's target untouched; in a cifar folder that is itself a link, it
    is not kept, and the log says why."""
    fake = tmp_path / "python"  # the real interpreter, but a bench that runs whole at once
    fake.write_text("#!/usr/bin/env bash\n"
                    'if [[ "$1" == benchmarks/fused_gpu.py && " $* " == *" --out "* ]]; then\n'  # (--choice-of runs)
                    '  while [[ "$1" != --out ]]; do shift; done\n'
                    '  echo \'{"fuse": 2, "fuse_layout": "nchw", "complete": true, "rates": {}}\' > "$2"; exit 0; fi\n'
                    f'exec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    data = small_cifar(cifar_dir, tmp_path / "data", per_class=2)
    victim, elsewhere = tmp_path / "victim", tmp_path / "elsewhere"
    victim.write_text("not the harness's\n")
    elsewhere.mkdir()

    def session(results: Path, out: Path) -> str:
        proc = subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "--out", str(out), "--data", str(data),
             "--results", str(results), "--minutes", "0", "--fused-bench", "60", "--quick"],
            capture_output=True, text=True, timeout=400, env={**os.environ, "PYTHON": str(fake)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return (out / "session.log").read_text()

    results = tmp_path / "results"
    (results / "cifar").mkdir(parents=True)
    (results / "cifar" / "fused-bench.json.tmp").symlink_to(victim)
    log = session(results, tmp_path / "out")
    assert victim.read_text() == "not the harness's\n"
    kept = results / "cifar" / "fused-bench.json"
    assert not kept.is_symlink() and json.loads(kept.read_text())["fuse_layout"] == "nchw", log
    assert f"the fused bench ran whole: kept in {kept}" in log, log

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "cifar").symlink_to(elsewhere)
    log = session(linked, tmp_path / "out2")
    assert list(elsewhere.iterdir()) == []
    assert f"the fused bench ran whole, but is not kept: {linked / 'cifar'} is a symbolic link" in log, log
