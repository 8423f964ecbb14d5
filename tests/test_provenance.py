"""A third-party method's records and listing name the package it came from."""

import json
import subprocess

from bench.provenance import Here
from conftest import FAST, make_distribution

PLUGIN = '''
from bench import Method, register_method


@register_method("as-is")
class AsIs(Method):
    """The dense model, returned as it is."""

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_plugins_records_and_listing_name_its_distribution_and_version(tmp_path, data_dir, plugins, bench,
                                                                          monkeypatch):
    plugins(make_distribution(tmp_path / "site", "asis_pkg", PLUGIN, {"as-is": "asis_pkg"}))
    ran = bench(["run", "--suite", FAST, "--methods", "as-is,magnitude+uniform", "--seeds", "0", "--epochs", "1",
                 "--finetune-epochs", "0", "--limit-train", "200", "--limit-test", "100",
                 "--set", "magnitude.sparsity=0.5", "--data-dir", data_dir, "--results-dir", tmp_path / "results"])
    assert ran.returncode == 0, ran.stderr
    assert "1 of the 2 methods selected come from installed plugins: as-is (asis_pkg 0.1)" in ran.stdout
    origins = {r["config"]["method"]: r["env"]["method_origin"] for r in
               (json.loads(p.read_text()) for p in (tmp_path / "results" / "mlp-fast" / "runs").glob("*.json"))}
    assert origins == {"as-is": {"as-is": "asis_pkg 0.1"},
                       "magnitude+uniform": {"magnitude": "built in", "uniform": "built in"}}
    monkeypatch.delenv("COLUMNS", raising=False)
    for listing in (bench(["list", "methods"]), bench(["list", "methods", "--check"])):
        rows = {line.split()[0]: line for line in listing.stdout.splitlines()[2:]}
        assert "origin" in listing.stdout.splitlines()[0]
        assert " asis_pkg 0.1 " in rows["as-is"] and " built in " in rows["magnitude"]


def editable_plugin(folder, module: str, source: str, methods: dict[str, str], committed: bool = True):
    """A plugin installed editable (`pip install -e`: its direct_url.json says so) from `folder`;
    with `committed`, a git checkout of one commit. Returns (its folder, that commit or None)."""
    checkout = make_distribution(folder, module, source, methods)
    (checkout / f"{module}-0.1.dist-info" / "direct_url.json").write_text(
        json.dumps({"url": checkout.as_uri(), "dir_info": {"editable": True}}))
    return checkout, (_commit_all(checkout) if committed else None)


def _commit_all(folder) -> str:
    """Make `folder` a git repository of one commit holding all it holds; that commit."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(folder)]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "code"]):
        subprocess.run([*git, *step], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def test_an_editable_plugins_records_name_its_commit_and_its_uncommitted_code_is_refused(
        tmp_path, data_dir, plugins, bench, monkeypatch):
    """A plugin installed editable (`pip install -e`, its direct_url.json says so) can change
    under one version number: its records name its checkout's commit, "-dirty" with uncommitted
    changes, and a standard-budget run of such code is refused as the harness's own is."""
    checkout, sha = editable_plugin(tmp_path / "plugin", "asis_pkg", PLUGIN, {"as-is": "asis_pkg"})
    plugins(checkout)
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc")  # the harness's own checkout counts as committed
    quick = ["--epochs", "1", "--finetune-epochs", "0", "--limit-train", "200", "--limit-test", "100"]
    args = ["run", "--suite", FAST, "--methods", "as-is", "--seeds", "0", "--data-dir", data_dir]

    def commits(results):
        return [json.loads(p.read_text())["env"].get("method_commit") for p in (results / "mlp-fast" / "runs").glob("*")]

    ran = bench([*args, *quick, "--results-dir", tmp_path / "clean"])
    assert ran.returncode == 0, ran.stderr
    assert commits(tmp_path / "clean") == [{"as-is": sha}]

    with open(checkout / "asis_pkg.py", "a") as f:
        f.write("# an uncommitted edit\n")
    refused = bench([*args, "--results-dir", tmp_path / "standard"])
    assert refused.returncode == 2
    assert (f"the plugin checkout {checkout} (method as-is, an editable install) has uncommitted changes: "
            "asis_pkg.py: standard-budget records" in refused.stderr) and "--allow-dirty" in refused.stderr
    ran = bench([*args, *quick, "--results-dir", tmp_path / "dirty"])
    assert ran.returncode == 0, ran.stderr
    assert commits(tmp_path / "dirty") == [{"as-is": f"{sha}-dirty"}]


def test_a_standard_run_of_an_editable_plugin_in_no_git_checkout_is_refused(tmp_path, data_dir, plugins, bench,
                                                                              monkeypatch):
    """An editable plugin outside git (a researcher's `pip install -e .` of a folder) can change
    under its version number, and no commit names its code: a standard-budget run of it is
    refused, as uncommitted code is; a quick run, and --allow-dirty, go ahead."""
    checkout, _ = editable_plugin(tmp_path / "plugin", "asis_pkg", PLUGIN, {"as-is": "asis_pkg"}, committed=False)
    plugins(checkout)
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc")  # the harness's own checkout counts as committed
    args = ["run", "--suite", FAST, "--methods", "as-is", "--seeds", "0", "--data-dir", data_dir]
    refused = bench([*args, "--results-dir", tmp_path / "standard"])
    assert refused.returncode == 2, refused.stderr
    assert (f"the plugin as-is is an editable install of {checkout}, which is in no git checkout" in refused.stderr
            and "--allow-dirty" in refused.stderr), refused.stderr
    quick = ["--epochs", "1", "--finetune-epochs", "0", "--limit-train", "200", "--limit-test", "100"]
    ran = bench([*args, *quick, "--results-dir", tmp_path / "quick"])
    assert ran.returncode == 0, ran.stderr
    assert [json.loads(p.read_text())["env"].get("method_commit")
            for p in (tmp_path / "quick" / "mlp-fast" / "runs").glob("*")] == [None]


EDITS_ITSELF = '''
from pathlib import Path

from bench import Method, register_method


@register_method("edits-itself")
class EditsItself(Method):
    """The dense model, after its first run has edited this file: as the author who edits the
    plugin while a sweep of it runs."""

    def run(self, ctx):
        here = Path(__file__)
        here.write_text(here.read_text() + "# edited during the sweep\\n")
        return ctx.pretrained()
'''


def test_results_that_come_back_after_the_code_changed_stop_the_sweep_unrecorded(tmp_path, data_dir, plugins,
                                                                                  bench, monkeypatch):
    """Records name the commit the sweep started from, but a worker imports code as it goes (a
    plugin's module at its first run): once a checkout's code differs from the commit its
    records would name, the runs that come back are not recorded, and the command stops saying
    why; the dense model trained before the change stays."""
    checkout, sha = editable_plugin(tmp_path / "plugin", "edits_pkg", EDITS_ITSELF, {"edits-itself": "edits_pkg"})
    plugins(checkout)
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc")  # the harness's own checkout counts as committed
    results = tmp_path / "results"
    ran = bench(["run", "--suite", FAST, "--methods", "edits-itself", "--seeds", "0", "--epochs", "1",
                 "--finetune-epochs", "0", "--limit-train", "200", "--limit-test", "100", "--data-dir", data_dir,
                 "--results-dir", results])
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert (f"the code changed during this command: edits_pkg.py in {checkout} no longer holds commit {sha[:12]}'s "
            "code, which the records would name. Not recorded: the 1 run that ended since, which may have run the "
            "change") in ran.stderr, ran.stderr
    assert not list((results / "mlp-fast" / "runs").glob("edits-itself-*.json"))
    assert list((results / "mlp-fast" / "cache").glob("dense-s0-*.safetensors"))


def _repository(folder):
    """A one-commit git repository with a package below its top: (its commit, the package folder)."""
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "inner.py").write_text("x = 1\n")
    (folder / "outer.py").write_text("y = 1\n")
    return _commit_all(folder), folder / "pkg"


def test_the_code_watched_during_a_sweep_is_the_whole_checkouts_whatever_the_users_git_config(tmp_path,
                                                                                               monkeypatch):
    """changed_code runs git in the folder of the package (bench/, a plugin's module): with
    `diff.relative` set in the user's git config, `git diff` there showed changes below that
    folder only, and an edit to methods/*.py during a sweep ran under records naming the commit."""
    from bench.provenance import changed_code

    commit, pkg = _repository(tmp_path / "repo")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # as a ~/.gitconfig that sets it
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "diff.relative")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    assert changed_code(commit, pkg) == []
    (tmp_path / "repo" / "outer.py").write_text("y = 2\n")
    (pkg / "inner.py").write_text("x = 2\n")
    assert changed_code(commit, pkg) == ["outer.py", "pkg/inner.py"]


def test_an_editors_mark_of_a_file_being_edited_is_no_change_of_the_code(tmp_path):
    """Emacs marks a file whose buffer holds unsaved edits with a link to nothing, `.#name.py`,
    which git lists as an untracked Python file: it stopped a sweep as code changed, the results
    in hand unrecorded, while every file still held the commit's code. A new file is a change."""
    import os

    from bench.provenance import changed_code

    commit, pkg = _repository(tmp_path / "repo")
    os.symlink("user@host.1234:1700000000", pkg / ".#inner.py")
    assert changed_code(commit, pkg) == []
    (pkg / "new_module.py").write_text("z = 1\n")
    (tmp_path / "repo" / "n\u00e9.py").write_text("w = 1\n")  # a name git quotes unless asked not to
    assert changed_code(commit, tmp_path / "repo") == ["n\u00e9.py", "pkg/new_module.py"]


def test_a_plugin_checkout_is_watched_once_however_many_methods_it_provides(tmp_path, monkeypatch):
    """Each watched checkout costs two git commands per batch of results, which the sweep waits
    for: a plugin package providing five methods was looked at five times."""
    from pathlib import Path

    from bench import provenance, registry

    monkeypatch.delenv("BENCH_GIT_COMMIT", raising=False)
    sources = {f"m{i}": registry.Source(f"pkg.m{i}", "pkg 0.1", str(tmp_path)) for i in range(5)}
    monkeypatch.setattr(registry, "SOURCES", {**registry.SOURCES, **sources})
    watched = provenance.watched_code("a" * 40, {name: "b" * 40 for name in sources})
    assert watched == [(Path(provenance.__file__).resolve().parent, "a" * 40), (tmp_path, "b" * 40)]


def test_an_editors_mark_of_a_file_being_edited_leaves_the_checkout_clean(tmp_path):
    """The same mark (a link to nothing, `.#name.py`) made a checkout count as holding
    uncommitted code when a sweep started: its standard runs were refused."""
    import os

    from bench.provenance import checkout_commit

    commit, pkg = _repository(tmp_path / "repo")
    os.symlink("user@host.1234:1700000000", pkg / ".#inner.py")
    assert checkout_commit(pkg) == commit
    (pkg / "new_module.py").write_text("z = 1\n")
    assert checkout_commit(pkg) == f"{commit}-dirty"


def test_refresh_reruns_an_editable_plugins_records_that_another_of_its_commits_made(tmp_path, data_dir, plugins,
                                                                                     bench, monkeypatch):
    """The harness's commit does not name an editable plugin's code: after the plugin's author
    commits a change, --refresh reruns its records, which name the plugin's old commit."""
    checkout, sha = editable_plugin(tmp_path / "plugin", "asis_pkg", PLUGIN, {"as-is": "asis_pkg"})
    plugins(checkout)
    monkeypatch.setenv("BENCH_GIT_COMMIT", "0123abc")  # the harness's own checkout counts as committed
    args = ["run", "--suite", FAST, "--methods", "as-is", "--seeds", "0", "--epochs", "1", "--finetune-epochs", "0",
            "--limit-train", "200", "--limit-test", "100", "--data-dir", data_dir, "--results-dir", tmp_path / "results"]
    ran = bench(args)
    assert ran.returncode == 0, ran.stderr
    assert "0 to run" in bench([*args, "--refresh", "--dry-run"]).stdout

    with open(checkout / "asis_pkg.py", "a") as f:
        f.write("# a committed change\n")
    new = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(checkout), "commit", "-qam",
                          "change"], check=True)
    assert new.returncode == 0
    assert "1 to run" in bench([*args, "--refresh", "--dry-run"]).stdout
    ran = bench([*args, "--refresh"])
    assert ran.returncode == 0, ran.stderr
    assert "0 to run" in bench([*args, "--refresh", "--dry-run"]).stdout


def test_refresh_device_keeps_a_plugins_records_of_any_clean_commit_of_it():
    """--refresh device keeps records of any commit a checkout vouched for, the plugin's as the
    harness's: another clean commit of the plugin stands, its uncommitted code does not; a
    built-in link is judged by the harness's commit alone."""
    env = {"git_commit": "abc", "device_name": "cpu0", "method_origin": {"as-is": "asis_pkg 0.1"}}
    now = {"as-is": "new111"}
    device, commit = Here("abc", "cpu0", "device", now), Here("abc", "cpu0", "commit", now)
    assert device.made({**env, "method_commit": {"as-is": "old000"}})
    assert not commit.made({**env, "method_commit": {"as-is": "old000"}})
    assert commit.made({**env, "method_commit": {"as-is": "new111"}})
    assert not device.made({**env, "method_commit": {"as-is": "old000-dirty"}})
    assert not device.made(env)  # made when the plugin was no editable install: no commit names its code
    built_in = {**env, "method_origin": {"magnitude": "built in"}}
    assert device.made(built_in) and commit.made(built_in)
