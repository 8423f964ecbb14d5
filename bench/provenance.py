"""Where a record's numbers came from: the code that made them (its git commit, and whether the
checkout differs from it) and the machine (device, versions) that a record's `env` stores; and
the rules that keep them true during a sweep: standard-budget records only from committed code
(`uncommitted`, the harness's and editable plugins'), and no record of a run that may have run
code changed after the sweep began (`refuse_changed_code`).

Apart from bench.records, which defines and checks a record, a plain document: these ask git,
/proc and torch about the world as it is now. Torch is imported only where a device is described,
so that the commands which only read records (bench leaderboard) start without it.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench import registry
from bench.chain import links
from bench.errors import counted, printable

if TYPE_CHECKING:
    import torch


class ProvenanceError(ValueError):
    """Standard-budget records would come from code that no commit names."""


COMMIT_VARIABLE = "BENCH_GIT_COMMIT"
SOURCE_SUFFIXES = (".py", ".yaml", ".yml", ".toml", ".cfg")


def git_commit(here: Path | None = None) -> str | None:
    """The commit of the checkout holding `here` (this package by default), "-dirty" when its
    code differs from it: a changed tracked file outside results/, or an untracked source file
    (a new plugin or module that runs but no commit holds). $BENCH_GIT_COMMIT names the commit
    where the code travelled without its .git (a copy sent to a GPU machine); the driver
    records that it did (`env.commit_from_env`), since no checkout vouches for it."""
    here = here or Path(__file__).resolve().parent
    if os.environ.get(COMMIT_VARIABLE):
        return os.environ[COMMIT_VARIABLE]
    return checkout_commit(here)


def checkout_commit(here: Path) -> str | None:
    """The commit of the git checkout holding `here`, "-dirty" when its code differs from it
    (see `git_commit`); None where `here` is in no checkout or git is missing."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        return commit + ("-dirty" if uncommitted_code(here) else "")
    except (OSError, subprocess.SubprocessError):
        return None


def uncommitted_code(here: Path) -> list[str]:
    """The files (relative to the checkout's top) that make the checkout holding `here` differ
    from its commit: changed tracked files outside results/, and untracked source files (see
    `git_commit`). Raises OSError or SubprocessError where git cannot say."""
    # The code's state: results/ holds the records and leaderboards a sweep writes as it goes,
    # which must not make the next command of the same sweep look like uncommitted code.
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", ":/",
                             ":(top,exclude)results"], cwd=here, capture_output=True, text=True,
                            timeout=10).stdout.splitlines()
    untracked = [line[3:] for line in status if line.startswith("??") and line.rstrip().endswith(SOURCE_SUFFIXES)]
    top = git_toplevel(here) if untracked else None
    return [line[3:] for line in status if not line.startswith("??")] + [n for n in untracked if not _no_code(top, n)]


def changed_code(commit: str, here: Path) -> list[str]:
    """The Python files of the checkout holding `here` whose content is no longer `commit`'s
    (edited, removed, or new and untracked), results/ aside. A sweep's workers import code after
    it started (a plugin's module when its first run begins, all of it in a worker that replaces
    a dead one), so an edit made meanwhile can run under records that name `commit`. Empty where
    git cannot say."""
    where = ["--", ":(top,glob)**/*.py", ":(top,exclude)results"]
    try:
        # diff.relative (a user's git config) would show the changes below `here` alone, relative to it
        edited = subprocess.run(["git", "-c", "diff.relative=false", "diff", "--name-only", commit, *where], cwd=here,
                                capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()
        new = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard", "--full-name", *where],
                             cwd=here, capture_output=True, text=True, timeout=10, check=True).stdout.split("\0")
        top = git_toplevel(here) if any(new) else None
        new = [name for name in new if name and not _no_code(top, name)]
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({*edited, *new})


def _no_code(top: str | None, name: str) -> bool:
    """Whether the untracked file `name` of the checkout at `top` is a link to nothing, which
    holds no code: Emacs marks a file edited in a buffer, not yet saved, with one (.#name.py), and
    git lists it among the untracked files. A name git quotes, or a checkout git cannot place,
    counts as code."""
    return top is not None and os.path.islink(Path(top) / name) and not (Path(top) / name).exists()


def git_toplevel(where: Path) -> str | None:
    """The top folder of the git checkout holding `where`; None where it is in none, or git is
    missing."""
    try:
        return subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=where, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def foreign_checkout(cwd: Path) -> str | None:
    """A warning when `cwd` is in a git checkout other than the one this package was imported
    from: in a second clone, an editable install of the first still runs the first's code,
    and its records name the first's commit. Only a checkout that holds a bench package is such a
    clone: another project's (a plugin's own repository, where its tests run) has no bench code
    of its own to run instead."""
    here, package = git_toplevel(cwd), git_toplevel(Path(__file__).resolve().parent)
    if here is None or package is None or Path(here).resolve() == Path(package).resolve():
        return None
    if not (Path(here) / "bench" / "__init__.py").is_file():
        return None
    return (f"bench: warning: this is the checkout {here}, but the bench package runs from {package}, whose "
            f"code and commit the records will name; to run this checkout's, set PYTHONPATH={here} "
            f"or pip install -e {here}")


PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "torch-pruning", "torchao", "scikit-learn")


def _cpu_name() -> str:
    """The processor's model name, with its vendor, family, model and stepping: virtual machines
    report generic names ("Intel(R) Xeon(R) Processor", "AMD EPYC"), and results from different
    processors must not be mistaken for one machine's."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
            if not line.strip():
                break  # the first processor describes them all
    except OSError:
        return platform.processor() or platform.machine()
    name = info.get("model name") or platform.processor() or platform.machine()
    ids = [info.get("vendor_id")] + [f"{k} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info]
    ids = [i for i in ids if i]
    return f"{name} [{' '.join(ids)}]" if ids else name


def device_name(device: torch.device) -> str:
    """The exact model of the processor or GPU, so that figures from different ones never mix."""
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()


def environment(device: torch.device) -> dict[str, Any]:
    """Where a run happened: versions, device, threads. The code's commit is the driver's to
    stamp (bench.runner): a worker's checkout, if it has one, need not be the code the driver
    checked."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "packages": versions,
    }


Refresh = Literal["commit", "device"]  # what --refresh keeps a record for (see Here)


@dataclass(frozen=True)
class Here:
    """This command's code and device, for --refresh: what a record or cached dense model must
    have been made by to be kept. `match` "commit": this commit and device; "device": this
    device and any commit a checkout vouched for (clean, not only named by $BENCH_GIT_COMMIT), for
    a leaderboard of one machine kind that GPU windows fill from commit to commit."""

    commit: str | None
    device_name: str | None  # None: a GPU sweep planned (--dry-run) where torch sees no GPU
    match: Refresh = "commit"
    plugins: dict[str, str | None] = field(default_factory=dict)  # plugin_commits: the editable plugins' code now

    def made(self, env: dict[str, Any]) -> bool:
        """Whether `env` names this commit (or, matching "device", a verified clean one) and this
        device, and, for each link of the record's method that an editable plugin provides now,
        that plugin's commit (matching "device", a clean one). Uncommitted or unknown code never
        matches: no commit identifies it."""
        if self.match == "commit":
            code = self.commit is not None and not self.commit.endswith("-dirty") and env.get("git_commit") == self.commit
        else:
            made_by = env.get("git_commit")
            code = bool(made_by) and not made_by.endswith("-dirty") and not env.get("commit_from_env")
        return code and self._plugins_made(env) and self.device_name in (None, env.get("device_name"))

    def _plugins_made(self, env: dict[str, Any]) -> bool:
        """The plugin half of `made`: a plugin's code changes under one commit of the harness, so
        a record of it stands only if it names the plugin's commit too (`method_commit`). A link
        that no editable plugin provides now is judged by its origin, as before (runner's
        _other_provider)."""
        recorded = env.get("method_commit") or {}
        for link in env.get("method_origin") or {}:
            if link in self.plugins:
                made_by = recorded.get(link)
                if not made_by or made_by.endswith("-dirty") or (self.match == "commit" and made_by != self.plugins[link]):
                    return False
        return True


def plugin_commits(names: list[str]) -> dict[str, str | None]:
    """Method -> the commit of its plugin's checkout ("-dirty" with uncommitted changes; None
    where it is in no git checkout), for the selected methods (chain links included) whose
    plugin is an editable install: its code can change under the same version number, so its
    records name the commit."""
    out = {}
    for link in dict.fromkeys(link for name in names for link in links(name)):
        source = registry.SOURCES.get(link)
        if source and source.checkout:
            out[link] = checkout_commit(Path(source.checkout))
    return out


def uncommitted(commit: str | None, plugin_commits: dict[str, str | None], here: Path | None = None) -> str | None:
    """Why standard-budget records cannot be written from this code, or None: the harness's
    checkout (the one holding `here`, this package by default), or an editable plugin's, has
    uncommitted changes, or an editable plugin is in no git checkout at all (every leaderboard
    row names the commit that produced it). The harness's changed files are named: a newcomer's
    new plugin is an untracked file, which they may not think of as an uncommitted change."""
    if commit and commit.endswith("-dirty"):
        named = "" if os.environ.get(COMMIT_VARIABLE) else _changed_files(here or Path(__file__).resolve().parent)
        return (f"the checkout has uncommitted changes ({commit}{named}): standard-budget records must come from a "
                "commit; commit first, or pass --allow-dirty (recorded in every record)")
    unnamed = sorted(link for link, c in plugin_commits.items() if c is None)
    if unnamed:
        return (f"the plugin {unnamed[0]} is an editable install of {registry.SOURCES[unnamed[0]].checkout}, which is "
                "in no git checkout (or git, missing or stuck, could not say): its code can change under its version "
                "number, and no commit would name it in standard-budget records; commit it to a git repository, "
                "install it without -e, or pass --allow-dirty (recorded in every record)")
    dirty = sorted(link for link, c in plugin_commits.items() if c and c.endswith("-dirty"))
    if dirty:
        checkout = registry.SOURCES[dirty[0]].checkout
        return (f"the plugin checkout {checkout} (method {dirty[0]}, an editable install) has uncommitted changes"
                f"{_changed_files(Path(checkout))}: standard-budget records must come from a commit; commit the "
                "plugin first, or pass --allow-dirty (recorded in every record)")
    return None


def _changed_files(here: Path) -> str:
    """": FILE, FILE and N more": the files of uncommitted_code(here), the first five shown
    printable; "" where git cannot say."""
    try:
        changed = [printable(name) for name in uncommitted_code(here)]
    except (OSError, subprocess.SubprocessError):
        return ""
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return f": {', '.join(changed[:5])}{more}" if changed else ""


def watched_code(commit: str | None, plugin_commits: dict[str, str | None]) -> list[tuple[Path, str]]:
    """(checkout folder, commit) of the code whose records name a clean commit: the harness's,
    unless $BENCH_GIT_COMMIT named it (no checkout to look at), and each editable plugin's, once
    however many of the methods run it provides (each is two git commands a batch of results)."""
    own = None if os.environ.get(COMMIT_VARIABLE) else commit
    pairs = [(Path(__file__).resolve().parent, own),
             *((Path(registry.SOURCES[link].checkout), c) for link, c in plugin_commits.items())]
    return list(dict.fromkeys((where, c) for where, c in pairs if c and not c.endswith("-dirty")))


def refuse_changed_code(code: list[tuple[Path, str]], runs: int) -> None:
    """Stop the sweep, recording none of the `runs` that just ended, if a checkout's Python
    code is no longer the commit its records would name (provenance.changed_code): edited
    during the sweep, or committed anew."""
    for where, commit in code:
        if changed := changed_code(commit, where):
            raise ProvenanceError(
                f"the code changed during this command: {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''} "
                f"in {git_toplevel(where) or where} no longer hold{'s' if len(changed) == 1 else ''} "
                f"commit {commit[:12]}'s code, which the records would name. Not recorded: the "
                f"{counted(runs, 'run')} that ended since, which may have run the change. Commit or undo the change, "
                "then rerun the command to continue")
