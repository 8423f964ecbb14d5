"""A tampered results folder meets a clear message naming the problem: the site never removes a
folder it did not write, a link, a FIFO, a folder or a huge file among the records (or the plots)
is refused rather than followed, waited on or read into memory, and a record whose numbers are
not finite or absurd, or whose fields the readers use are mistyped, is left out with its reason
rather than crashing a command. Records are written as strict JSON."""

from __future__ import annotations

import json
import math
import os
import threading

import pytest

from bench import files, layout, leaderboard, records, site
from bench.data import find_source
from bench.plan import run_key
from bench.suite import load_suite
from conftest import FAST
from test_leaderboard import populate, record


def edited(edit, method="magnitude", params=None):
    """A usable record of `method` in the suite of FAST, changed by `edit` (on a copy: the
    helper's records share their budget and env)."""
    r = json.loads(json.dumps(record(method, params if params is not None else {"sparsity": 0.5}, 0, 0.97, 500)))
    r["config"]["suite"] = "mlp-fast"
    edit(r)
    return r


def write_loose(path, data):
    """Write `data` as Python's json writes by default (NaN, Infinity): what a tamperer can write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


# -- the site's folder ------------------------------------------------------------------------------


def test_the_site_never_removes_a_folder_it_did_not_write(tmp_path, bench):
    results = tmp_path / "results"
    populate(results)
    kept = sorted(p.name for p in (results / "mlp" / "runs").iterdir())
    # The results folder, a folder holding it, a folder inside a suite's: refused before anything.
    for out in (results, tmp_path, results / "mlp" / "site"):
        ran = bench(["leaderboard", "--html", "--results-dir", results, "--out", out])
        assert ran.returncode == 2, ran.stderr
        assert ran.stderr.startswith(f"bench: error: the site cannot be written into {out}: ") and \
            ran.stderr.count("\n") == 1, ran.stderr
        assert sorted(p.name for p in (results / "mlp" / "runs").iterdir()) == kept
        assert not (results / "mlp" / "leaderboard.md").exists()  # the tables neither: refused before anything
    assert not (results / "index.html").exists() and not (tmp_path / "index.html").exists()
    # A folder named like a suite that the site did not write is neither removed nor written into.
    www = tmp_path / "www"
    mine = www / "mlp" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine\n")
    ran = bench(["leaderboard", "--html", "--results-dir", results, "--out", www])
    assert ran.returncode == 2
    assert ran.stderr == (f"bench: error: {www / 'mlp'} is not a folder the site wrote (it holds no .bench-site "
                          "file), so it is not replaced; remove it yourself if it is an old site's, or choose "
                          "another --out\n")
    assert mine.read_text() == "mine\n" and sorted(os.listdir(www)) == ["mlp"]
    # An empty one is taken, and marked; a folder the site wrote is rebuilt from scratch.
    mine.unlink()
    assert bench(["leaderboard", "--html", "--results-dir", results, "--out", www]).returncode == 0
    assert (www / "mlp" / site.MARKER).is_file() and (www / "mlp" / "runs.html").is_file()
    stale = www / "mlp" / "stale.html"
    stale.write_text("from an older build\n")
    assert bench(["leaderboard", "--html", "--results-dir", results, "--out", www]).returncode == 0
    assert not stale.exists() and (www / "mlp" / "runs.html").is_file()
    # A site built before the marker (its pages and plots alone) is taken over, marked.
    (www / "mlp" / site.MARKER).unlink()
    assert bench(["leaderboard", "--html", "--results-dir", results, "--out", www]).returncode == 0
    assert (www / "mlp" / site.MARKER).is_file()


def test_plots_that_are_links_or_fifos_are_left_out_of_the_site_with_a_warning(tmp_path, capsys):
    results = tmp_path / "results"
    populate(results)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:secret\n")
    (results / "mlp" / "frontier.png").symlink_to(secret)
    os.mkfifo(results / "mlp" / "pareto.png")
    site.build(results, ["mlp"], tmp_path / "site")
    err = capsys.readouterr().err
    assert f"bench: warning: left out of the site: {results / 'mlp' / 'frontier.png'}: a symbolic link, " \
           "not a regular file" in err
    assert f"bench: warning: left out of the site: {results / 'mlp' / 'pareto.png'}: a FIFO, not a regular file" in err
    built = tmp_path / "site" / "mlp"
    assert not (built / "frontier.png").exists() and not (built / "pareto.png").exists()
    assert all(b"secret" not in p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert 'src="frontier.png"' not in (built / "index.html").read_text()


# -- files among the records ---------------------------------------------------------------------


def test_links_fifos_folders_and_huge_files_among_the_records_are_refused_not_read(tmp_path):
    results = tmp_path / "results"
    populate(results)
    runs = results / "mlp" / "runs"
    elsewhere = tmp_path / "elsewhere.json"
    files.write_json_atomic(elsewhere, record("magnitude", {"sparsity": 0.7}, 0, 0.9, 300))
    (runs / "zz-zero.json").symlink_to("/dev/zero")  # followed, it fills the memory
    (runs / "zz-link.json").symlink_to(elsewhere)
    os.mkfifo(runs / "zz-fifo.json")  # opened, it waits for a writer for ever
    (runs / "zz-folder.json").mkdir()
    (runs / "zz-huge.json").write_bytes(b" " * records.MAX_RECORD_BYTES + b"{}")
    problems: list[str] = []
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(records.named_records(results, "mlp", problems)),
                              daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "reading the records waits on the FIFO"
    assert len(got) == 10  # populate's records
    assert problems == [f"{runs / 'zz-fifo.json'}: refused: a FIFO, not a regular file",
                        f"{runs / 'zz-folder.json'}: refused: a folder, not a regular file",
                        f"{runs / 'zz-huge.json'}: refused: larger than 16,777,216 bytes",
                        f"{runs / 'zz-link.json'}: refused: a symbolic link, not a regular file",
                        f"{runs / 'zz-zero.json'}: refused: a symbolic link, not a regular file"]


def test_read_json_gives_one_exception_with_why_on_one_line_for_any_unusable_file(tmp_path):
    """The records, the site's checks and a kept fused bench are read by files.read_json: each
    caught the errors of reading and parsing its own way, and named them differently (the site
    called a FIFO "unreadable (RefusedFile: ...)"). Whatever is wrong, read_json raises
    UnreadableFile with why on one line, and FileNotFoundError only where there is no file."""
    (tmp_path / "target.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "huge.json").write_text(" " * 2**20 + "{}")
    (tmp_path / "cut.json").write_text('{"status": "ok", "run_ti')
    (tmp_path / "utf8.json").write_bytes(b'"\xff"')
    (tmp_path / "digits.json").write_text("1" * 5000)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    whys = {"link": "refused: a symbolic link, not a regular file", "fifo": "refused: a FIFO, not a regular file",
            "huge": f"refused: larger than {2**20:,} bytes", "cut": "unreadable (JSONDecodeError: ",
            "utf8": "unreadable (UnicodeDecodeError: ", "digits": "unreadable (ValueError: Exceeds the limit (4300 digits)",
            "deep": "nested too deeply"}
    whys["target.json/under-a-file"] = "unreadable (NotADirectoryError: Not a directory)"  # an OSError
    for name, why in whys.items():
        with pytest.raises(files.UnreadableFile) as e:
            files.read_json(tmp_path / f"{name}.json", 2**20)
        assert str(e.value).startswith(why) and "\n" not in str(e.value), (name, str(e.value))
    assert files.read_json(tmp_path / "target.json", 2**20) == {}
    with pytest.raises(FileNotFoundError):
        files.read_json(tmp_path / "nothing.json", 2**20)


def test_bench_run_reruns_a_record_that_is_a_link_and_leaves_the_link_alone(tmp_path, data_dir, bench):
    suite = load_suite(str(FAST)).with_budget(epochs=1)
    config = records.run_config(suite, "dense", {}, 0, find_source(suite.data, data_dir))
    planned = layout.record_path(tmp_path, suite.name, "dense", 0, run_key(config))
    planned.parent.mkdir(parents=True)
    planned.symlink_to("/dev/zero")
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--dry-run",
                 "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    assert f"unusable record, to run again: {planned}: refused: a symbolic link, not a regular file" in ran.stdout
    assert "1 run: 1 to run, 0 finished before" in ran.stdout
    assert os.readlink(planned) == "/dev/zero"


def test_a_results_folder_whose_own_folders_are_links_is_refused_before_anything_is_written(tmp_path, data_dir, bench):
    """A results folder from elsewhere (a clone: git keeps symbolic links) holding `runs`,
    `logs`, `cache` or the suite's folder as a link would have bench run write records, logs
    and models wherever it points, and bench leaderboard its tables: both refuse, naming it,
    and the link's target stays empty. The plan (--dry-run) refuses as the run does."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = tmp_path / "results"
    run = ["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--limit-train", "200",
           "--limit-test", "100", "--data-dir", data_dir, "--results-dir", results]
    for name in ("runs", "logs", "cache"):
        (results / "mlp-fast").mkdir(parents=True, exist_ok=True)
        link = results / "mlp-fast" / name
        link.symlink_to(elsewhere)
        for plan in (["--dry-run"], []):
            ran = bench([*run, *plan])
            assert ran.returncode == 2, ran.stdout
            assert ran.stderr.strip() == (f"bench: error: {link} is a symbolic link: the harness writes only into "
                                          "folders of its own, where a link could send its files anywhere; replace "
                                          "it with a folder"), ran.stderr
        link.unlink()
    assert list(elsewhere.iterdir()) == []
    populate(tmp_path / "other")
    (results / "mlp-fast").rmdir()
    (results / "mlp").symlink_to(tmp_path / "other" / "mlp")
    before = sorted(p.name for p in (tmp_path / "other" / "mlp").iterdir())
    shown = bench(["leaderboard", "--suite", "mlp", "--results-dir", results])
    assert shown.returncode == 2 and f"bench: error: {results / 'mlp'} is a symbolic link" in shown.stderr, shown.stderr
    assert sorted(p.name for p in (tmp_path / "other" / "mlp").iterdir()) == before


def test_a_fault_in_a_command_that_records_no_runs_does_not_speak_of_runs(tmp_path, bench):
    """A table's path taken by a folder stops `bench leaderboard` with the system's error; the
    advice after it is the command's own (`bench run`'s speaks of finished runs and resuming)."""
    populate(tmp_path)
    (tmp_path / "mlp" / "leaderboard.csv").mkdir()
    ran = bench(["leaderboard", "--suite", "mlp", "--results-dir", tmp_path])
    assert ran.returncode == 1
    first, advice = ran.stderr.strip().splitlines()
    assert first.startswith("bench: error: [Errno 21] Is a directory: ") and first.endswith(
        f"-> '{tmp_path / 'mlp' / 'leaderboard.csv'}'"), first
    assert advice == "bench: fix the cause and rerun"


# -- numbers and fields ----------------------------------------------------------------------------

# Name -> (a record with an unusable value, what the warning says about it).
UNUSABLE = {
    "accuracy-infinite": (edited(lambda r: r["metrics"].update(accuracy=math.inf)),
                          "metrics.accuracy is not a finite number within ±1e+18"),
    "accuracy-nan": (edited(lambda r: r["metrics"].update(accuracy=math.nan)),
                     "metrics.accuracy is not a finite number within ±1e+18"),
    "accuracy-percent": (edited(lambda r: r["metrics"].update(accuracy=97.0)), "metrics.accuracy is 97, outside [0, 1]"),
    "params-huge": (edited(lambda r: r["metrics"].update(params=10**400)),
                    "metrics.params is not a finite number within ±1e+18"),
    "params-beyond-int64": (edited(lambda r: r["metrics"].update(params=1e20)),
                            "metrics.params is not a finite number within ±1e+18"),  # stopped every rebuild
    "time-near-float-max": (edited(lambda r: r["metrics"].update(train_time_s=1e308)),
                            "metrics.train_time_s is not a finite number within ±1e+18"),  # overflowed in render
    "sparsity-huge": (edited(lambda r: r["config"]["params"].update(sparsity=10**400)),
                      "config.params holds a number that is not finite or not within ±1e+18, or is nested more than "
                      "100 levels deep"),
    "params-deep": (edited(lambda r: r["config"]["params"].update(levels=json.loads("[" * 400 + "]" * 400))),
                    "config.params holds a number that is not finite or not within ±1e+18, or is nested more than "
                    "100 levels deep"),  # JSON reads it; the check of its numbers stopped every reader (RecursionError)
    "method-glob": (edited(lambda r: r["config"].update(method="mag*")), "config.method 'mag*' is no method name"),
    "method-path": (edited(lambda r: r["config"].update(method="../x")), "config.method '../x' is no method name"),
    "seed-huge": (edited(lambda r: r["config"].update(seed=2**40 + 1)), "config.seed is outside [0, 4294967296)"),
    "nonzeros-negative": (edited(lambda r: r["metrics"].update(nonzeros=-1)), "metrics.nonzeros is -1, a negative count"),
    "size-negative": (edited(lambda r: r["metrics"].update(size_bytes=-4.5)),
                      "metrics.size_bytes is -4.5, a size no model has"),
    # (a size of 0 passed: the leaderboard showed it, and `bench compare --match compression` divided by it)
    "size-zero": (edited(lambda r: r["metrics"].update(size_bytes=0)), "metrics.size_bytes is 0, a size no model has"),
    "compression-zero": (edited(lambda r: r["metrics"].update(compression=0)),
                         "metrics.compression is 0, a size no model has"),
    "compression-negative": (edited(lambda r: r["metrics"].update(compression=-2.5)),
                             "metrics.compression is -2.5, a size no model has"),
    "memory-zero": (edited(lambda r: r["metrics"].update(memory_bytes=0)),
                    "metrics.memory_bytes is 0, a size no model has"),
    "artifact-zero": (edited(lambda r: r["metrics"].update(artifact_onnxruntime_bytes=0)),
                      "metrics.artifact_onnxruntime_bytes is 0, a size no model has"),
    "memory-nan": (edited(lambda r: r["metrics"].update(memory_bytes=math.nan)),
                   "metrics.memory_bytes is not a finite number within ±1e+18"),
    "time-infinite": (edited(lambda r: r.update(run_time_s=math.inf)),
                      "run_time_s is not a finite number within ±1e+18"),
    "measure-time-nan": (edited(lambda r: r.update(measure_time_s=math.nan)),  # the plan's median: a traceback
                         "measure_time_s is not a finite number within ±1e+18"),
    "method-info-text": (edited(lambda r: r.update(method_info="pruning")), "method_info is str, expected dict"),
    "method-info-number": (edited(lambda r: r.update(method_info={"family": 3})),
                           "method_info holds a value that is no string"),
    "origin-list": (edited(lambda r: r["env"].update(method_origin=["built in"])),
                    "env.method_origin is list, expected dict"),  # stopped bench run with a traceback
    "origin-dict": (edited(lambda r: r["env"].update(method_origin={"magnitude": {"built": "in"}})),
                    "env.method_origin holds a value that is no string"),
    "plugin-commit-text": (edited(lambda r: r["env"].update(method_commit="abc")),
                           "env.method_commit is str, expected dict"),  # --refresh reads it
    "plugin-commit-number": (edited(lambda r: r["env"].update(method_commit={"magnitude": 3})),
                             "env.method_commit holds a value that is no string"),
    "kept-layers-number": (edited(lambda r: r["config"].update(dense_layers=[3])),  # a traceback in every view
                           "config.dense_layers holds a value that is none of first, classifier"),
    "kept-layers-unknown": (edited(lambda r: r["config"].update(dense_layers=["first", "<b>x</b>"])),
                            "config.dense_layers holds a value that is none of first, classifier"),
    "deaths-text": (edited(lambda r: r.update(worker_deaths="2")), "worker_deaths is str, expected int"),
    "deaths-negative": (edited(lambda r: r.update(worker_deaths=-1)), "worker_deaths is negative"),
    "suite-number": (edited(lambda r: r["config"].update(suite=3)), "config.suite is int, expected str"),
    "hash-number": (edited(lambda r: r.update(config_hash=5)), "config_hash is int, expected str"),
    "threads-zero": (edited(lambda r: r["env"].update(threads=0)), "env.threads is below 1"),
    "threads-text": (edited(lambda r: r["env"].update(threads="2")), "env.threads is str, expected int or null"),
    "chain-flat": (edited(lambda r: None, "magnitude+ptq-int8", {"magnitude": 0.5}),
                   "config.params of a chain holds a link whose parameters are no dict"),
}


def test_a_record_without_sizes_or_with_0_params_stays_usable():
    """A size of 0 (metrics.size_bytes, compression, memory, a deployed file) is refused (UNUSABLE);
    a record without them (a failed run's metrics are empty) and a model without weights (params
    0: a constant output, which the checks of a returned model let through) stay usable."""
    failed = edited(lambda r: r.update(status="failed", error="RuntimeError: boom", metrics={}))
    assert records.record_problem(failed) is None
    weightless = edited(lambda r: r["metrics"].update(params=0, nonzeros=0, flops=0, flops_effective=0))
    assert records.record_problem(weightless) is None


def test_records_with_unusable_numbers_or_fields_are_named_and_left_out_by_every_reader(tmp_path, data_dir, bench):
    suite = load_suite(str(FAST)).name
    runs = layout.runs_dir(tmp_path, suite)
    good = edited(lambda r: None)
    assert records.record_problem(good) is None
    files.write_json_atomic(runs / "good.json", good)
    for name, (r, why) in UNUSABLE.items():
        assert records.record_problem(r) == f"malformed record: {why}", name
        write_loose(runs / f"{name}.json", r)
    (runs / "deep.json").write_text("[" * 100000)
    (runs / "digits.json").write_text('{"schema": ' + "1" * 5000 + "}")
    unreadable = {"deep": "nested too deeply", "digits": "unreadable (ValueError: Exceeds the limit (4300 digits)"}

    ran = bench(["leaderboard", "--html", "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    for name, (_, why) in UNUSABLE.items():
        assert f"bench: warning: left out of the leaderboard: {runs / name}.json: malformed record: {why}\n" \
               in ran.stderr, name
    for name, why in unreadable.items():
        assert f"bench: warning: left out of the leaderboard: {runs / name}.json: {why}" in ran.stderr, name
    assert len((tmp_path / suite / "leaderboard.csv").read_text().splitlines()) == 2  # header and the good row

    compared = bench(["compare", tmp_path, tmp_path])
    assert compared.returncode == 0 and "1 row in both" in compared.stdout, compared.stderr
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0", "--epochs", "1", "--dry-run",
                 "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0 and "1 run: 1 to run, 0 finished before" in ran.stdout, ran.stderr


def test_records_are_written_as_strict_json(tmp_path):
    path = tmp_path / "runs" / "r.json"
    files.write_json_atomic(path, {"metrics": {"accuracy": 0.5}})
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            files.write_json_atomic(path, {"metrics": {"accuracy": value}})
    assert json.loads(path.read_text()) == {"metrics": {"accuracy": 0.5}}
    assert os.listdir(path.parent) == ["r.json"]


def test_a_commit_whose_results_hold_a_link_out_is_not_followed_by_compare(tmp_path, monkeypatch, capsys):
    """`bench compare <commit>` writes out that commit's record files alone: a committed link
    among them, pointing out of results/, is left out with a warning naming it, not followed."""
    import subprocess

    from bench import compare

    repo = tmp_path / "repo"
    (repo / "results" / "mlp" / "runs").mkdir(parents=True)
    (repo / "results" / "mlp" / "runs" / "leaked.json").symlink_to("/etc/passwd")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "a link"]):
        subprocess.run([*git, *args], check=True)
    monkeypatch.chdir(repo)  # compare reads commits of the repository it runs in
    scratch = compare.results_of("HEAD", tmp_path / "scratch", None).folder
    assert "results/mlp/runs/leaked.json left out: not a regular file" in capsys.readouterr().err
    assert not any(scratch.rglob("*"))


def test_a_commits_file_names_left_out_by_compare_reach_the_console_printable(tmp_path, monkeypatch, capsys):
    """A committed record file's name is a tamperer's text: the warnings naming a link or an
    oversized file that `bench compare <commit>` leaves out printed it as it was, so a name
    holding ESC ] 0 ; ... BEL retitled the terminal."""
    import subprocess

    from bench import compare

    runs = tmp_path / "repo" / "results" / "mlp" / "runs"
    runs.mkdir(parents=True)
    (runs / "\x1b]0;linked\x07.json").symlink_to("/etc/passwd")
    (runs / "\x1b]0;large\x07.json").write_text("x" * 200)
    git = ["git", "-C", str(tmp_path / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "odd names"]):
        subprocess.run([*git, *args], check=True)
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 100)
    compare.results_of("HEAD", tmp_path / "scratch", None)
    err = capsys.readouterr().err
    assert "results/mlp/runs/?]0;linked?.json left out: not a regular file" in err, err
    assert "results/mlp/runs/?]0;large?.json left out: larger than 100 bytes" in err, err
    assert "\x1b" not in err


def test_a_site_build_killed_mid_write_leaves_nothing_the_next_build_keeps(tmp_path, bench):
    """A build killed by kill -9 leaves a hidden temporary file at the site's top level: the next
    build removes it (it is a dead writer's, of this host), as a sweep does in its suite folder."""
    import socket

    populate(tmp_path)
    pid = 4_000_000  # above Linux's pid_max: no such process
    stale = tmp_path / "site" / f".index.html.{socket.gethostname()}.{pid}.x1y2.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("half a page")
    assert bench(["leaderboard", "--results-dir", str(tmp_path), "--html"]).returncode == 0
    assert not stale.exists() and (tmp_path / "site" / "index.html").exists()


def test_check_neither_follows_nor_reads_links_to_dev_zero(tmp_path):
    """`leaderboard --check` (which the published workflow runs) copied a record linked to
    /dev/zero into its temporary folder until the disk was full, and would read a stored table
    linked there forever: it now copies links as links, refused like any reader refuses them,
    and reports the linked table as stale."""
    from conftest import run_bench

    from test_leaderboard import populate

    populate(tmp_path)
    assert run_bench(["leaderboard", "--results-dir", str(tmp_path)]).returncode == 0
    os.symlink("/dev/zero", tmp_path / "mlp" / "runs" / "zero.json")
    (tmp_path / "mlp" / "leaderboard.csv").unlink()
    os.symlink("/dev/zero", tmp_path / "mlp" / "leaderboard.csv")
    ran = run_bench(["leaderboard", "--check", "--results-dir", str(tmp_path)], timeout=120)
    assert ran.returncode == 1, ran.stderr
    assert f"stale: {tmp_path / 'mlp' / 'leaderboard.csv'} (differs from what the records give)" in ran.stderr
    assert f"{tmp_path / 'mlp' / 'runs' / 'zero.json'}: refused: a symbolic link, not a regular file" in ran.stderr
    assert "bench-check-" not in ran.stderr  # the warning names the stored file, not its temporary copy


def test_check_reads_records_in_place_past_fifos_and_a_runs_folder_linked_to_dev(tmp_path):
    """`leaderboard --check` copied each runs folder to rebuild from: a FIFO there (one named
    like a record, or any other) stopped it with shutil's list of errors, where `bench
    leaderboard` leaves such a record out with a warning and ignores other files; a FIFO as
    checks.json stopped it too; and a runs folder linked to /dev was copied without end. It
    now reads them where they are, as the leaderboard and the site do."""
    from conftest import run_bench

    populate(tmp_path)
    os.mkfifo(tmp_path / "mlp" / "runs" / "fifo.json")
    os.mkfifo(tmp_path / "mlp" / "runs" / "queue")
    os.mkfifo(tmp_path / layout.CHECKS)
    (tmp_path / "dev").mkdir()
    os.symlink("/dev", tmp_path / "dev" / "runs")
    built = run_bench(["leaderboard", "--suite", "mlp", "--html", "--results-dir", str(tmp_path)], timeout=120)
    assert built.returncode == 0, built.stderr
    ran = run_bench(["leaderboard", "--check", "--results-dir", str(tmp_path)], timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "15 files match their records (dev, mlp, site)\n", ran.stdout
    assert f"{tmp_path / 'mlp' / 'runs' / 'fifo.json'}: refused: a FIFO, not a regular file" in ran.stderr
    assert "bench-check-" not in ran.stderr


def test_bench_run_reruns_a_run_whose_file_holds_another_runs_record(tmp_path, data_dir, bench):
    """A finished record copied over another run's file (seed 1's over seed 0's), or one naming
    another suite under a run's own name: every reader leaves it out, and `bench run` took it as
    the run's own, finished, so the run never ran again and its row lost the seed for good. It
    is now named and run again, as every other unusable record is."""
    from test_leaderboard import record as make

    suite = load_suite(str(FAST)).with_budget(epochs=1)
    configs = [records.run_config(suite, "dense", {}, seed, find_source(suite.data, data_dir)) for seed in (0, 1, 2)]
    paths = [layout.record_path(tmp_path, suite.name, "dense", seed, run_key(c)) for seed, c in enumerate(configs)]
    for seed, config in enumerate(configs):
        r = make("dense", {}, seed, 0.97, 1000, standard=False)
        r.update(config=config, config_hash=run_key(config))
        files.write_json_atomic(paths[seed], r)
    files.write_json_atomic(paths[0], json.loads(paths[1].read_text()))  # seed 1's record under seed 0's name
    other = json.loads(paths[2].read_text())
    other["config"]["suite"] = "mnist"
    files.write_json_atomic(paths[2], other)
    ran = bench(["run", "--suite", FAST, "--methods", "dense", "--seeds", "0,1,2", "--epochs", "1", "--dry-run",
                 "--data-dir", data_dir, "--results-dir", tmp_path])
    assert ran.returncode == 0, ran.stderr
    assert f"unusable record, to run again: {paths[0]}: the record of another run (mlp-fast dense - seed 1), a copy?" \
        in ran.stdout
    assert f"unusable record, to run again: {paths[2]}: the record of another run (mnist dense - seed 2), a copy?" \
        in ran.stdout
    assert "3 runs: 2 to run, 1 finished before" in ran.stdout


def test_a_copied_record_or_another_suites_record_is_no_extra_seed(tmp_path, bench):
    """A record copied under another name, and one whose config names another suite, each
    counted as one more seed of its row ('seeds 4' for 2 real ones): they are named and left
    out, and the copy under the run's own name is the one kept."""
    from test_leaderboard import record as make

    runs = layout.runs_dir(tmp_path, "mlp")
    for seed, accuracy in ((0, 0.97), (1, 0.98)):
        r = make("magnitude", {"sparsity": 0.5}, seed, accuracy, 500)
        files.write_json_atomic(layout.record_path(tmp_path, "mlp", "magnitude", seed, r["config_hash"]), r)
    own = layout.record_path(tmp_path, "mlp", "magnitude", 0, make("magnitude", {"sparsity": 0.5}, 0, 0.97, 500)
                             ["config_hash"])
    copy = json.loads(own.read_text())
    copy["metrics"]["accuracy"] = 0.999  # an edited copy would pull the mean up
    files.write_json_atomic(runs / "aaa-copy.json", copy)
    other = make("magnitude", {"sparsity": 0.5}, 2, 0.5, 500)
    other["config"]["suite"] = "mnist"
    files.write_json_atomic(runs / "zz-other.json", other)

    ran = bench(["leaderboard", "--results-dir", tmp_path, "--show", "--format", "csv"])
    assert ran.returncode == 0, ran.stderr
    assert f"{runs / 'aaa-copy.json'}: a second record of the run of {own.stem}.json (a copy?)" in ran.stderr
    assert f"{runs / 'zz-other.json'}: a record of suite 'mnist', not of 'mlp'" in ran.stderr
    [row] = [line for line in ran.stdout.splitlines() if line.startswith("mlp,") and ",magnitude," in line]
    assert ",cpu,2,Test CPU,,97.5,0.71," in row  # 2 seeds, mean 97.50: neither the copy nor the other suite's record


def test_dollar_signs_in_a_records_text_are_drawn_as_written_not_parsed_as_math(tmp_path):
    """matplotlib reads text between two `$` as math: a record whose setting, family or data
    source held `$\\foo{$` stopped every leaderboard rebuild (and `bench run`'s, and `--check`)
    with a ParseFatalException at the first plot's save. Such text is drawn as it is written."""
    from test_leaderboard import record as make

    source = r"torchvision:MNIST $\x{$"
    recs = [make("dense", {}, s, a, 1000, source=source) for s, a in ((0, 0.98), (1, 0.99))]
    recs += [make("mathy", {"sparsity": 0.5, "note": r"$\foo{$"}, s, a, 500, source=source)
             for s, a in ((0, 0.97), (1, 0.96))]
    for r in recs[2:]:
        r["method_info"] = {"family": r"$\mathcal{$", "description": "a plugin"}
    for i, r in enumerate(recs):
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)
    written = leaderboard.write(tmp_path, "mlp")
    assert {p.name for p in written} >= {"leaderboard.md", "frontier.png", "pareto.png"}
    from matplotlib.text import Text

    from bench import plots

    for text in (r"$\foo{$", r"a\$b $1 and $2"):  # what matplotlib draws: the text as written, no math
        drawn = Text(text=plots._literal(text))
        assert drawn._preprocess_math(drawn.get_text()) == (text, False)


def test_control_characters_in_a_records_text_reach_no_terminal_through_the_plots(tmp_path):
    """matplotlib warns of each glyph its font lacks, quoting the character: a record whose family
    or data source held ESC ] 0 ; ... BEL sent ESC and BEL to the terminal in those warnings at
    every leaderboard rebuild. The plots draw control characters as `?`."""
    import warnings

    from test_leaderboard import record as make

    source = "torchvision:MNIST\x1b]0;retitled\x07"
    recs = [make("dense", {}, s, a, 1000, source=source) for s, a in ((0, 0.98), (1, 0.99))]
    recs += [make("magnitude", {"sparsity": 0.5}, s, a, 500, source=source) for s, a in ((0, 0.97), (1, 0.96))]
    for r in recs[2:]:
        r["method_info"] = {"family": "\x1b]0;retitled\x07", "description": "a plugin"}
    for i, r in enumerate(recs):
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"{r['config']['method']}-{i}.json", r)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = leaderboard.write(tmp_path, "mlp")
    assert {p.name for p in written} >= {"frontier.png", "pareto.png"}
    shown = [str(w.message) for w in caught]
    assert not any(c in text for text in shown for c in "\x1b\x07"), shown


def test_a_swept_parameter_that_is_no_number_is_shown_and_no_level_of_the_sites_pivot(tmp_path):
    """The site's method-by-level pivot read the swept parameter as a float: a record whose
    `sparsity` was text or null stopped `leaderboard --html` with a traceback. Its row is in the
    table, escaped, and in no column of the pivot."""
    from test_leaderboard import populate, record as make

    populate(tmp_path)
    for seed, sparsity in ((0, "0.5<b>\u202e"), (1, None)):  # and a bidi override, which would reverse what follows
        r = make("magnitude", {"sparsity": sparsity}, seed, 0.96, 500)
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"odd-{seed}.json", r)
    leaderboard.write(tmp_path, "mlp")
    site.build(tmp_path, ["mlp"], tmp_path / "site")
    page = (tmp_path / "site" / "mlp" / "index.html").read_text()
    assert "sparsity=0.5&lt;b&gt;?" in page and "sparsity=None" in page and "\u202e" not in page
    pivot = page.split("<h2>swept methods by level</h2>")[1].split("</thead>")[0]
    assert pivot.endswith('<th class="t">method</th><th>0.5</th><th>0.9</th></tr>'), pivot


def test_a_records_text_and_a_files_name_reach_the_console_printable(tmp_path, capsys):
    """A record's setting or budget and a record file's name are text a tamperer chooses: `bench
    compare` printed a setting's terminal escape sequences (ESC ] 0 ; ... BEL retitles the
    terminal) as they were, and so did the warning naming a file that is no record."""
    from bench.cli import main
    from test_leaderboard import populate, record as make

    populate(tmp_path)
    for seed in (0, 1):
        r = make("magnitude", {"sparsity": 0.7, "note": "\x1b]0;retitled\x07\u202e"}, seed, 0.96, 300)
        files.write_json_atomic(tmp_path / "mlp" / "runs" / f"odd-{seed}.json", r)
    (tmp_path / "mlp" / "runs" / "\x1b[2J.json").write_text("x")
    for args in (["compare", str(tmp_path), str(tmp_path)], ["compare", str(tmp_path), "--methods", "dense,magnitude"],
                 ["leaderboard", "--show", "--results-dir", str(tmp_path)]):
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert "\x1b" not in out + err and "\u202e" not in out + err, args  # nor a bidi override, which reverses text
        assert "note=?]0;retitled??" in out or args[0] == "leaderboard", out
    assert f"left out of the leaderboard: {tmp_path / 'mlp' / 'runs'}/?[2J.json: unreadable" in err


def test_a_link_or_fifo_planted_as_a_runs_log_is_not_written_through_nor_waited_on(tmp_path, capfd):
    """A run's log is opened where the driver left it: the worker appended its lines (_Log) and
    its prints (_output_to) through a symbolic link planted there (`-> ~/.bashrc`), the driver
    appended a failed run's error the same way, and opening a FIFO to write it waited for ever.
    None is followed or waited on: the run's lines come back with it, saying why, and the driver
    writes them in the link's place; its prints go nowhere."""
    from bench import executors, sweep, worker
    from bench.records import Status

    target = tmp_path / "bashrc"
    target.write_text("keep me\n")
    link, fifo = tmp_path / "link.log", tmp_path / "fifo.log"
    link.symlink_to(target)
    os.mkfifo(fifo)
    for planted, what in ((link, "a symbolic link"), (fifo, "a FIFO")):
        log = worker._Log(str(planted), None)
        log("epoch 1")
        log.close()
        assert log.text() == (f"[bench: {planted} is {what}, not a regular file: this run's log is not written "
                              "through it, but returned and written in its place]\nepoch 1")
    saved = os.dup(1), os.dup(2)
    try:
        executors._output_to(str(link))
        os.write(1, b"a plugin's print\n")
        executors._output_to(str(fifo))
        os.write(2, b"another\n")
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    handle = object.__new__(executors._Worker)  # its log bookkeeping only: no process
    handle.task, handle.shown, handle.capped = type("T", (), {"log_paths": [link, fifo]}), {}, {}
    zero = tmp_path / "zero.log"
    zero.symlink_to("/dev/zero")  # read to its end, it filled the driver's memory
    handle.task.log_paths.append(zero)
    shown: list[str] = []
    handle.echo_logs(shown.append)  # the console's echo of the logs
    assert shown == []
    warned: list[str] = []
    sweep._log_error(link, {"status": Status.FAILED, "error": "ValueError: boom"}, warned.append)
    assert warned == [f"warning: {link}: refused: a symbolic link, not a regular file; the run's error is in its "
                      "record only"]
    assert target.read_text() == "keep me\n" and link.is_symlink()


def test_a_kept_log_is_read_capped_and_not_through_a_link(tmp_path):
    """A run retried alone after its fused training failed keeps its log, which its returned log
    follows: the driver read it whole through any link, so one swapped for a link to /dev/zero
    filled its memory (losing the sweep's unwritten results), and one to a private file copied
    it into the results folder. It is read as a regular file, to the log limit, or left out with a
    warning and a line in its place."""
    from bench import sweep
    from bench.executors import LOG_LIMIT

    artifact = tmp_path / "runs" / "magnitude-abc-s0.json"
    log = layout.log_path(artifact)
    warned: list[str] = []
    assert sweep._read_log(artifact, warned.append) == "" and not warned  # none yet
    log.parent.mkdir(parents=True)
    log.write_text("fused fault\n")
    assert sweep._read_log(artifact, warned.append) == "fused fault\n" and not warned
    log.unlink()
    log.symlink_to("/dev/zero")
    assert sweep._read_log(artifact, warned.append) == ("[bench: the log of this run's earlier attempt is left out: "
                                                        "refused: a symbolic link, not a regular file]\n")
    log.unlink()
    # a log the executor capped (its first LOG_LIMIT bytes and a note) was refused whole, and the
    # fused fault's traceback kept for it lost: it is read to the limit, and says where it was cut
    with open(log, "wb") as f:
        f.write(b"fused fault\n")
        f.truncate(LOG_LIMIT + 100)
    text = sweep._read_log(artifact, warned.append)
    assert text.startswith("fused fault\n") and len(text) < LOG_LIMIT + 200
    assert text.endswith("\n[bench: the log of this run's earlier attempt is cut at 10 MiB here]\n")
    assert warned == [f"warning: {log}: refused: a symbolic link, not a regular file; the run's log replaces it, "
                      "without its earlier attempt's lines"]


def test_invisible_format_characters_are_shown_and_ordinary_text_is_kept():
    """printable showed C0/C1 controls and the bidi marks as `?`, but left the other characters
    that print nothing or break a line: U+2028/U+2029 (a terminal or an editor starts a new line
    there), the zero-width space and joiners, the word joiner and the BOM (a method named
    "magni\u200btude" reads as magnitude), soft hyphens and tag characters (invisible text). Every
    format character (category Cf), line and paragraph separator (Zl, Zp) and lone surrogate (Cs,
    which JSON's \\ud800 escape yields and a UTF-8 console cannot print) is now `?`; accented
    letters, CJK, emoji and combining accents are text and stay as they are."""
    from bench.errors import first_line, printable

    hidden = "\u2028\u2029\u200b\u200c\u200d\u2060\ufeff\u00ad\u061c\u202e\u2066\U000e0041\ud800\x1b\x85"
    assert printable(f"magni{hidden}tude") == "magni" + "?" * len(hidden) + "tude"
    assert first_line("gmp\u2028sparsity=0.9\nsecond") == "gmp?sparsity=0.9"
    for text in ("sparsité 0.9 – naïve", "剪枝 稀疏度", "Ünïcödé", "e\u0301", "🙂", "tab\tand\nline", "\u00a0\u3000"):
        assert printable(text) == text


def test_the_training_speed_scripts_share_of_time_outside_training_reads_records_as_every_reader(tmp_path, capsys):
    """benchmarks/train_speed.py --results reads a results folder's records for the share of a
    run's time spent outside training: it read every file raw, and a record cut short or
    malformed stopped it with a traceback, a FIFO among them was waited on for ever. It reads them as every
    reader does: a file that is no usable record is named and left out."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks" / "train_speed.py")
    train_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_speed)
    runs = tmp_path / "mlp" / "runs"
    for i, seconds in enumerate((10.0, 30.0)):
        files.write_json_atomic(runs / f"magnitude-{i}.json",
                                {**record("magnitude", {"sparsity": 0.5}, i, 0.97, 500),
                                 "run_time_s": seconds, "measure_time_s": 2.5})
    (runs / "a-cut.json").write_text('{"status": "ok", "run_ti')  # a write cut short: JSON unread
    files.write_json_atomic(runs / "b-bad.json", {"status": "ok", "measure_time_s": 1.0})  # no run_time_s, no config
    os.mkfifo(runs / "z-fifo.json")

    assert train_speed.outside_training_share(tmp_path) == [["mlp", 2, "40", "5", "12.5%"]]
    err = capsys.readouterr().err
    assert f"{runs / 'a-cut.json'}: unreadable (JSONDecodeError" in err and f"{runs / 'b-bad.json'}: not a run record" in err
    assert f"{runs / 'z-fifo.json'}: refused: a FIFO" in err
