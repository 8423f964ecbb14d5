import json
import re
import subprocess
import sys

import pytest

from bench import Method, register_method
from bench.registry import BROKEN, FAMILIES, METHODS, ParameterError, UnknownMethodError, discover, select
from conftest import FAST, ROOT, make_distribution


def test_builtin_methods_are_registered():
    assert {"dense", "magnitude"} <= set(select("all"))
    assert METHODS["magnitude"].sweep == "sparsity"
    assert METHODS["magnitude"].parameters() == {"sparsity": 0.9, "scope": "global"}


def test_duplicate_name_is_rejected():
    discover()  # the built-in magnitude registered first, as in every command (not only where an earlier test did)
    with pytest.raises(ValueError, match="already registered"):
        @register_method("magnitude")
        class Other(Method):
            """Another method under a taken name."""


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownMethodError, match="did you mean magnitude"):
        select("magnitud")


def test_comma_lists_and_globs_select_without_duplicates():
    assert select("dense,magnitude,dense") == ["dense", "magnitude"]
    assert select("mag*") == ["magnitude", "magnitude-oneshot"]
    assert select("d?nse") == ["dense"]
    with pytest.raises(UnknownMethodError, match="no method matches"):
        select("zzz*")


def test_parameters_are_checked_by_name_and_type():
    cls = METHODS["magnitude"]
    assert cls.build({"sparsity": 0}).sparsity == 0.0  # int accepted for float
    with pytest.raises(ParameterError, match="no parameter 'sparsty'.*did you mean sparsity"):
        cls.build({"sparsty": 0.5})
    with pytest.raises(ParameterError, match="expects float, got str"):
        cls.build({"sparsity": "high"})


def test_every_numeric_parameter_of_a_built_in_method_is_refused_out_of_range_before_any_training():
    """A parameter without a declared range (`bench.bounded`) took any number: `--set kd.lr_scale=-1`,
    `--set uniform.bits=1` or `--set sft.start=x` were planned, the dense model trained, and only
    then did each run fail (torch's "Invalid learning rate", uniform's own check in run()), or
    diverge (`kd.temperature=0` divides by zero). Each is now refused where `--set` and a suite's
    `methods` section are checked, naming the range."""
    import dataclasses

    discover()
    for name, cls in sorted(METHODS.items()):
        for f in dataclasses.fields(cls):
            if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
                with pytest.raises(ParameterError):
                    cls.build({f.name: -10**6})
    for name, params, message in [("kd", {"temperature": 0}, "parameter 'temperature': expected a number > 0, got 0"),
                                  ("kd", {"alpha": 1.5}, "parameter 'alpha': expected a number in [0, 1], got 1.5"),
                                  ("uniform", {"bits": 1}, "parameter 'bits': expected a number in [2, 8], got 1"),
                                  ("sft", {"start": "x"}, "parameter 'start': expected one of pretrained, scratch")]:
        with pytest.raises(ParameterError, match=re.escape(message)):
            METHODS[name].build(params)


def test_a_parameter_without_a_typed_default_still_holds_only_what_a_record_can():
    """A parameter whose default is None, or a list's factory, has no type to check a value
    against; a NaN or a number beyond ±1e18 in it was accepted, trained, and its record was then
    left out by every reader, so each command ran it again."""
    from dataclasses import field

    class Untyped(Method):  # a dataclass, as every Method subclass
        """Parameters without a typed default."""

        limit: int | None = None
        sizes: list = field(default_factory=list)

    assert Untyped.build({"limit": 3, "sizes": [4, {"a": "b"}]}).sizes == [4, {"a": "b"}]
    for params in ({"limit": float("nan")}, {"limit": 10**19}, {"sizes": [1, float("inf")]}, {"sizes": [{"a": 10**400}]}):
        with pytest.raises(ParameterError, match="expected plain data \\(finite numbers within ±1e\\+18"):
            Untyped.build(params)


def test_entry_point_plugin_is_discovered(tmp_path, plugins):
    code = '''
        from bench import Method, register_method

        @register_method("fake-prune")
        class FakePrune(Method):
            """A third-party method found through the bench.methods entry-point group."""
            amount: float = 0.3

            def run(self, ctx):
                return ctx.pretrained()
    '''
    plugins(make_distribution(tmp_path, "fake_plugin", code, {"fake-prune": "fake_plugin"}))
    assert select("fake-*") == ["fake-prune"] and METHODS["fake-prune"].parameters() == {"amount": 0.3}


def test_set_values_are_read_as_yaml_scalars():
    from bench.cli_run import _overrides

    parsed = _overrides(["l1.penalty=2e-5", "magnitude.scope=layer", "lottery.reinit=true", "imp.rounds=3"], [])
    assert parsed == {"l1": {"penalty": 2e-5}, "magnitude": {"scope": "layer"},
                      "lottery": {"reinit": True}, "imp": {"rounds": 3}}
    with pytest.raises(ParameterError, match="METHOD.PARAM=VALUE"):
        _overrides(["sparsity=0.9"], [])


def test_the_catalog_read_from_source_matches_the_imported_plugins():
    """`bench list methods` reads plugins' source instead of importing them; it must list what
    importing them registers: names, descriptions, parameters and defaults, swept parameter."""
    from bench.catalog import catalog
    from bench.registry import METHODS, discover

    discover()
    read = {i.name: i for i in catalog()}
    assert sorted(read) == sorted(METHODS)
    for name, cls in METHODS.items():
        info = read[name]
        assert info.problem is None, name
        assert (info.description, info.parameters, info.sweep, info.family) == (
            cls.description(), cls.parameters(), cls.sweep, cls.family), name
        assert info.family in FAMILIES and info.family != "other", name


def test_listing_imports_neither_torch_nor_the_plugins_and_a_selection_only_its_own():
    """Nor does refusing a misspelt method: what the sources register decides it."""
    code = ("import sys; from bench.cli import main; main(['list', 'methods']); main(['list', 'suites']); "
            "assert main(['run', '--suite', 'mlp', '--methods', 'dense,magnitude+ptq-int9', '--dry-run']) == 2; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "assert not any(m.startswith('methods.') for m in sys.modules), 'a plugin was imported'; "
            "from bench import registry; registry.select('dense,magnitude+ptq-int8'); "
            "plugins = sorted(m for m in sys.modules if m.startswith('methods.')); "
            "assert plugins == ['methods.dense', 'methods.magnitude', 'methods.ptq_int8'], plugins")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "magnitude" in proc.stdout and "(swept: sparsity)" in proc.stdout and "mnist" in proc.stdout
    assert "unknown method 'ptq-int9'; did you mean ptq-int8" in proc.stderr


THIRD_PARTY = '''
from typing import ClassVar

from bench import Method, register_method


@register_method("ternary")
class Ternary(Method):
    """Weights to -1, 0, +1 times a scale."""

    family: ClassVar[str] = "quantization"
    sweep: ClassVar[str | None] = None
    threshold: float = 0.05

    def run(self, ctx):
        return ctx.pretrained()


@register_method("ternary-ft")
class TernaryFinetuned(Ternary):
    """Ternary, fine-tuned."""

    epochs: int = 2
'''


def test_the_catalog_reads_annotated_class_attributes_and_modules_with_several_methods(tmp_path, plugins, bench):
    """A plugin may write `family: ClassVar[str] = ...` as bench.registry.Method does, and one
    module may register methods under names other than its entry point's."""
    plugins(make_distribution(tmp_path, "ternary_pkg", THIRD_PARTY, {"ternary-methods": "ternary_pkg"}))
    fast = bench(["list", "methods"])
    checked = bench(["list", "methods", "--check"])
    for proc in (fast, checked):
        assert proc.returncode == 0, proc.stderr
        assert "UNREADABLE" not in proc.stdout and "FAILED" not in proc.stdout
        rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
        assert "quantization" in rows["ternary"] and "threshold=0.05" in rows["ternary"]
        assert "quantization" in rows["ternary-ft"] and "threshold=0.05, epochs=2" in rows["ternary-ft"]


NAMED_BY_CONSTANT = '''
from bench import Method, register_method

NAME = "by-constant"


@register_method(NAME)
class ByConstant(Method):
    """Registered under a module constant."""

    level: float = 0.5

    def run(self, ctx):
        return ctx.pretrained()
'''

NAMED_BY_CODE = NAMED_BY_CONSTANT.replace('NAME = "by-constant"', 'NAME = "-".join(["by", "code"])')


def test_the_catalog_reads_a_name_given_by_a_constant_and_calls_a_computed_one_unreadable(tmp_path, plugins, bench):
    site = make_distribution(tmp_path, "constant_pkg", NAMED_BY_CONSTANT, {"by-constant": "constant_pkg"})
    make_distribution(site, "code_pkg", NAMED_BY_CODE, {"by-code": "code_pkg"})
    plugins(site)
    fast = bench(["list", "methods"])
    assert fast.returncode == 0, fast.stderr
    rows = {line.split()[0]: line for line in fast.stdout.splitlines()[2:]}
    assert "level=0.5" in rows["by-constant"] and "UNREADABLE" not in rows["by-constant"]
    assert ("UNREADABLE: ValueError: class ByConstant registers a name computed at import time (NAME)"
            in rows["by-code"])
    checked = bench(["list", "methods", "--check"])  # imported, the computed name is found
    assert checked.returncode == 0, checked.stderr
    assert "level=0.5" in {line.split()[0]: line for line in checked.stdout.splitlines()[2:]}["by-code"]


def test_an_entry_point_naming_a_module_that_is_not_there_is_listed_with_the_module(tmp_path, plugins, bench):
    """A typo in the module path of a plugin's entry point: the listing read from source named
    nothing (a module not found was left out, one in a package not found crashed the command);
    it now shows the plugin with the module it could not find, as `--check` does."""
    site = make_distribution(tmp_path, "lost_pkg", "", {"lost-leaf": "no_such_module_zz",
                                                                  "lost-package": "no_such_package_zz.ramp"})
    plugins(site)
    fast = bench(["list", "methods"])
    assert fast.returncode == 0, fast.stderr
    rows = {line.split()[0]: line for line in fast.stdout.splitlines()[2:]}
    assert "UNREADABLE: no module no_such_module_zz (entry point lost-leaf = no_such_module_zz of lost_pkg 0.1): " \
        in rows["lost-leaf"], fast.stdout
    assert "UNREADABLE: no module no_such_package_zz.ramp" in rows["lost-package"], fast.stdout


def test_a_method_without_a_docstring_is_listed_with_where_its_description_comes_from(tmp_path, plugins, bench):
    """Its description cell was blank, which read as a listing fault, in the listing read from
    source and in the imported one alike."""
    undocumented = LIST_PARAMETER.replace('    """A list parameter, which needs a default_factory."""\n', "")
    plugins(make_distribution(tmp_path, "bare_pkg", undocumented, {"listy": "bare_pkg"}))
    for args in (["list", "methods"], ["list", "methods", "--check"]):
        proc = bench(args)
        assert proc.returncode == 0, proc.stderr
        row = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}["listy"]
        assert "(none: the first line of the class's docstring describes it)" in row, row


LIST_PARAMETER = '''
from dataclasses import field

from bench import Method, register_method


@register_method("listy")
class Listy(Method):
    """A list parameter, which needs a default_factory."""

    sizes: list = field(default_factory=lambda: [4, 2])
    tags: list = field(default_factory=list)

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_list_parameter_with_a_default_factory_is_listed_planned_and_hashed(tmp_path, plugins, bench):
    """Its default is the factory's value, in the listing read from source, in the imported
    method's parameters and in the plan (once the marker dataclasses leave there, which no
    record can hold)."""
    plugins(make_distribution(tmp_path, "listy_pkg", LIST_PARAMETER, {"listy": "listy_pkg"}))
    for args in (["list", "methods"], ["list", "methods", "--check"]):
        proc = bench(args)
        assert proc.returncode == 0, proc.stderr
        row = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}["listy"]
        assert "sizes=[4, 2], tags=[]" in row and "UNREADABLE" not in row
    planned = bench(["run", "--suite", "tests/mlp-fast.yaml", "--methods", "listy", "--seeds", "0", "--dry-run",
                     "--results-dir", str(tmp_path / "results")])
    assert planned.returncode == 0, planned.stderr
    assert "listy" in planned.stdout


def test_the_generic_registry_imports_a_lazy_entry_when_asked_and_refuses_unknown_and_repeated_names():
    from bench.registries import Registry, UnknownName, resolve
    from bench.runtimes import RUNTIMES

    reg = Registry("widget", [("one", 1)])
    reg.lazy("quote", "shlex:quote")
    reg.register("two")(2)
    assert list(reg) == ["one", "quote", "two"] and reg["two"] == 2
    import shlex

    assert reg["quote"] is shlex.quote
    with pytest.raises(UnknownName, match=r"unknown widget 'twoo'; did you mean two\? registered: one, quote, two"):
        reg["twoo"]
    with pytest.raises(ValueError, match="widget 'one' is already registered"):
        reg.register("one")(3)
    with pytest.raises(ValueError, match="expected 'module:attr', got 'shlex.quote'"):
        reg.lazy("dotted", "shlex.quote")
    for name, runtime in RUNTIMES.items():  # each runtime names its loader: the two cannot drift apart
        assert callable(resolve(runtime.loader)), name


def test_a_blank_docstring_or_error_message_shows_as_an_empty_line_not_a_crash():
    """`bench list` shows a method's first docstring line and runs' first error lines: a plugin
    whose docstring is blank, or an exception raised without a message, has none (IndexError once)."""
    from bench.errors import first_line

    class Blank(Method):
        __doc__ = "  \n  "

    assert Blank.description() == ""
    assert [first_line(t) for t in (None, "", " \n ", "RuntimeError\n  at line 3")] == ["", "", "", "RuntimeError"]
    assert first_line("x" * 300, 100) == "x" * 100
    assert first_line("RuntimeError: \x1b[2K\x1b[1AALL OK\x1b]0;t\x07") == "RuntimeError: ?[2K?[1AALL OK?]0;t?"
    assert first_line("RayTaskError: \x1b[36mray::_ray_perform()\x1b[39m (pid=1)") == "RayTaskError: ray::_ray_perform() (pid=1)"


ESCAPING = '''
from bench import Method, register_method


@register_method("../../../escaped")
class Escaped(Method):
    """Its records would be written outside the results folder."""

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_method_name_that_is_no_plain_file_name_is_refused(tmp_path, plugins, bench):
    """A record's file is named after its method: "../../../x" wrote one outside the results
    folder, "a/b" one that no leaderboard reads; "a+b" and "a.b" read as a chain and a --set key."""
    plugins(make_distribution(tmp_path / "site", "escaping_pkg", ESCAPING, {"escaping": "escaping_pkg"}))
    listed = {line.split()[0]: line for line in bench(["list", "methods"]).stdout.splitlines()[2:]}
    assert "REFUSED: the method name '../../../escaped' is not letters, digits, '_' and '-'" in listed["escaping"]
    checked = bench(["list", "methods", "--check"]).stdout
    assert "FAILED TO IMPORT: ValueError: @register_method('../../../escaped')" in checked
    ran = bench(["run", "--suite", "tests/mlp-fast.yaml", "--methods", "../../../escaped", "--dry-run",
                 "--results-dir", str(tmp_path / "results" / "deep")])
    assert ran.returncode == 2 and "unknown method '../../../escaped'" in ran.stderr
    for bad in ("a+b", "a.b", "a/b", "-a", "", 3):
        with pytest.raises(ValueError, match="a method name is letters"):
            register_method(bad)


BAD_FAMILY = '''
from bench import Method, register_method


@register_method("bad-family")
class BadFamily(Method):
    """A family that is no string."""

    family = object()

    def run(self, ctx):
        return ctx.pretrained()
'''

BAD_DESCRIPTION = '''
from bench import Method, register_method


@register_method("bad-description")
class BadDescription(Method):
    """Its description() raises."""

    @classmethod
    def description(cls):
        raise RuntimeError("no description today")

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_plugin_whose_metadata_the_records_need_is_wrong_fails_its_import_not_the_sweep(tmp_path, plugins, bench,
                                                                                           data_dir):
    """The driver writes every record's family and description: a bad one once raised there, in
    the middle of the sweep, and lost the runs after it."""
    plugins(make_distribution(tmp_path / "a", "bad_family", BAD_FAMILY, {"bad-family": "bad_family"}),
            make_distribution(tmp_path / "b", "bad_description", BAD_DESCRIPTION, {"bad-description": "bad_description"}))
    ran = bench(["run", "--suite", "tests/mlp-fast.yaml", "--methods", "bad-family,bad-description,random", "--seeds", "0",
                 "--set", "random.sparsity=0.5", "--epochs", "1", "--finetune-epochs", "1", "--limit-train", "500",
                 "--limit-test", "200", "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "results")])
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert "TypeError: @register_method('bad-family'): family is <object object" in ran.stdout
    assert "TypeError: @register_method('bad-description'): description() raised RuntimeError: no description today" in ran.stdout
    assert "2 of 3 runs did not finish" in ran.stderr  # random ran, after them


PLAIN_ATTRIBUTE = '''
from bench import Method, register_method


@register_method("plain-attribute")
class PlainAttribute(Method):
    """Its parameter has no type annotation, so dataclasses never see it."""

    rounds = 3

    def run(self, ctx):
        return ctx.pretrained()
'''

UNANNOTATED_SWEEP = '''
from bench import Method, register_method


@register_method("unannotated-sweep")
class UnannotatedSweep(Method):
    """Sweeps a class attribute that has no type annotation."""

    sweep = "sparsity"
    sparsity = 0.9

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_parameter_without_a_type_annotation_is_named_as_the_cause(tmp_path, plugins, bench):
    """`sparsity = 0.9` makes no dataclass field: a method sweeping it was listed as swept, then
    every run of it was refused with "has no parameter 'sparsity' (parameters: none)", which left
    its author looking at the line that declares it. The import fails naming the cause, as
    `bench list methods` says from the source, and --set on such an attribute says it too."""
    plugins(make_distribution(tmp_path / "a", "plain_attribute", PLAIN_ATTRIBUTE, {"plain-attribute": "plain_attribute"}),
            make_distribution(tmp_path / "b", "unannotated_sweep", UNANNOTATED_SWEEP,
                              {"unannotated-sweep": "unannotated_sweep"}))
    why = ("@register_method('unannotated-sweep'): sweep is 'sparsity', which is no parameter of it; a parameter is "
           "a class attribute with a type annotation (`sparsity: float = bounded(0.9, ge=0, lt=1)`)")
    assert f"TypeError: {why}" in BROKEN["unannotated-sweep"]
    listed = {line.split()[0]: line for line in bench(["list", "methods"]).stdout.splitlines()[2:]}
    assert f"REFUSED: {why}" in listed["unannotated-sweep"]
    with pytest.raises(ParameterError, match=r"no parameter 'rounds' \(parameters: none\); its class attribute "
                                             r"'rounds' has no type annotation, so it is no parameter \(write "
                                             r"`rounds: int = 3`\)"):
        METHODS["plain-attribute"].build({"rounds": 5})
    for setting in ("family", "sweep", "name"):  # a class setting of every method, which no annotation makes a parameter
        with pytest.raises(ParameterError, match=rf"no parameter '{setting}' \(parameters: sparsity, scope\)$"):
            METHODS["magnitude"].build({setting: "x"})


def test_an_entry_point_whose_name_is_a_path_is_ignored_with_a_warning(tmp_path, plugins, capsys):
    """Its name would name the record files of its (failed) runs: '../../escaped' wrote
    /tmp/escaped-...json outside the results folder. It is no method; a record path built from
    such a name is refused too."""
    from bench import layout

    plugins(make_distribution(tmp_path, "escape_pkg", "raise ImportError('never imported')",
                              {"../../../escaped": "escape_pkg"}))
    assert "../../../escaped" not in METHODS and "../../../escaped" not in BROKEN
    assert "entry point '../../../escaped' of escape_pkg 0.1 ignored: a method name is letters, digits, _ and -" \
        in capsys.readouterr().err
    with pytest.raises(UnknownMethodError, match="no method matches"):
        select("*escaped")
    with pytest.raises(ValueError, match="no method name"):
        layout.record_path(tmp_path, "mlp", "../../escaped", 0, "0" * 12)
    assert layout.record_path(tmp_path, "mlp", "magnitude+ptq-int8", 0, "0" * 12).parent == tmp_path / "mlp" / "runs"


def test_counts_in_messages_are_plural_unless_one():
    """The plan said "1 runs (~) without a record" and "about 1 minutes"."""
    from bench.errors import counted

    assert [counted(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert counted(1, "recorded run") == "1 recorded run"


def test_a_parameter_without_a_default_that_nothing_sets_is_named_with_the_fix(tmp_path):
    """`rounds: int` without a default made the dataclass's TypeError a traceback out of the
    middle of the plan (`bench run --dry-run` exited 1); it is a ParameterError naming both fixes."""

    class NoDefault(Method):  # a dataclass, as every Method subclass
        """A parameter without a default."""

        rounds: int

    NoDefault.name = "no-default"
    assert NoDefault.build({"rounds": 2}).rounds == 2
    with pytest.raises(ParameterError, match=r"^method 'no-default' parameter 'rounds' has no default and is not set: "
                                             r"give it one in the class \(`rounds: int = \.\.\.`\), or set it "
                                             r"\(--set no-default\.rounds=\.\.\., the suite's methods section, or in a "
                                             r"test check_method\(\.\.\., params=\{'rounds': \.\.\.\}\)\)$"):
        NoDefault.build({})


LATE_NO_DEFAULT = '''
from bench import Method, bounded, register_method


@register_method("late-no-default")
class LateNoDefault(Method):
    """A parameter without a default after one with a default."""

    sweep = "sparsity"
    sparsity: float = bounded(0.9, ge=0, lt=1)
    batches: int

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_parameter_without_a_default_after_one_with_a_default_is_named_with_the_fix(tmp_path, plugins, bench):
    """`batches: int` forgotten its default below `sparsity = bounded(0.9, ...)`: the plugin failed
    to import with dataclasses' "non-default argument 'batches' follows default argument", which
    names no fix, and `bench list methods` listed it as fine (`batches=None`). Both name the fix."""
    plugins(make_distribution(tmp_path, "late_no_default", LATE_NO_DEFAULT, {"late-no-default": "late_no_default"}))
    why = ("LateNoDefault: parameter 'batches' has no default but follows a parameter that has one: give it a "
           "default (`batches: int = ...`), or declare it before the parameters with defaults, and every run must "
           "then set it (--set METHOD.batches=...)")
    assert BROKEN["late-no-default"].splitlines()[0] == f"TypeError: {why}"
    listed = {line.split()[0]: line for line in bench(["list", "methods"]).stdout.splitlines()[2:]}
    assert f"REFUSED: {why}" in listed["late-no-default"]


FIRST_NO_DEFAULT = '''
from bench import Method, bounded, register_method


@register_method("first-no-default")
class FirstNoDefault(Method):
    """A parameter without a default, declared first: every run sets it."""

    batches: int
    sparsity: float = bounded(0.9, ge=0, lt=1)

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_parameter_without_a_default_is_listed_as_one_to_set(tmp_path, plugins, bench):
    """`bench list methods` showed `batches=None` for a parameter without a default (read from the
    source) and, with --check, left it out; both show it as one to set, as `bench list METHOD`
    does, and the JSON names it in `required`."""
    plugins(make_distribution(tmp_path, "first_no_default", FIRST_NO_DEFAULT, {"first-no-default": "first_no_default"}))
    for check in ([], ["--check"]):
        listed = {line.split()[0]: line for line in bench(["list", "methods", *check]).stdout.splitlines()[2:]}
        assert "batches=(none: set it), sparsity=0.9" in listed["first-no-default"], (check, listed["first-no-default"])
        (entry,) = [e for e in json.loads(bench(["list", "methods", "--json", *check]).stdout)
                    if e["method"] == "first-no-default"]
        assert entry["parameters"] == {"batches": None, "sparsity": 0.9} and entry["required"] == ["batches"], check


def test_a_file_in_methods_that_registers_nothing_is_named_so_not_unknown(tmp_path, plugins, monkeypatch, bench):
    """A new methods/<name>.py whose decorator was left out: a run of it said `unknown method`,
    as if the file were not there, and `bench list methods` left it out. A run names the file and
    the decorator, as for an entry point, and the listing shows it."""
    import methods

    (tmp_path / "undecorated.py").write_text(
        'from bench import Method\n\n\nclass Undecorated(Method):\n    """Its decorator left out."""\n')
    monkeypatch.setattr(methods, "__path__", [str(tmp_path), *methods.__path__])  # first: load() looks there
    monkeypatch.setattr(methods.__spec__, "submodule_search_locations", [str(tmp_path)])  # the catalog's folder
    monkeypatch.delitem(sys.modules, "methods.undecorated", raising=False)
    why = ("PluginError: methods/undecorated.py imported, but registered no method: decorate its class with "
           "@register_method('undecorated')")
    assert select("undecorated") == ["undecorated"] and BROKEN["undecorated"] == why
    listed = bench(["list", "methods"]).stdout
    assert ("NOT REGISTERED: undecorated.py defines Undecorated, a Method, but registers nothing: decorate it with "
            "@register_method('undecorated')") in listed, listed
    sys.modules.pop("methods.undecorated", None)


def test_a_file_in_methods_that_fails_to_import_is_broken_under_the_name_a_run_gave_it(tmp_path, monkeypatch):
    """`--methods my_method` for a new methods/my_method.py (registering "my_method") that fails
    to import said `unknown method 'my_method'; did you mean my-method?`: the failure was kept
    under the file's name written as the built-ins' are. It is kept under the name asked for."""
    import methods

    (tmp_path / "half_done.py").write_text("raise RuntimeError('not finished yet')\n")
    monkeypatch.setattr(methods, "__path__", [str(tmp_path), *methods.__path__])
    monkeypatch.delitem(sys.modules, "methods.half_done", raising=False)
    assert select("half_done") == ["half_done"]
    assert BROKEN["half_done"].startswith("RuntimeError: not finished yet") and "half-done" not in BROKEN
    BROKEN.pop("half_done")
    sys.modules.pop("methods.half_done", None)


def test_an_entry_point_named_as_the_built_in_it_registers_is_refused_and_a_run_says_so(tmp_path, plugins, bench):
    """The README names an entry point as the method it registers; one that registers `magnitude`
    under the entry point `magnitude` was never imported (the built-in file of that name counted
    as it), so `bench run --methods magnitude` ran the built-in without a word and --check listed
    nothing refused. It is imported and refused, and a run of that name warns."""
    code = '''
        from bench import Method, register_method

        @register_method("magnitude")
        class Mine(Method):
            """My own magnitude pruning."""

            def run(self, ctx):
                return ctx.pretrained()
    '''
    plugins(make_distribution(tmp_path, "my_magnitude", code, {"magnitude": "my_magnitude"}))
    assert METHODS["magnitude"].__module__ == "methods.magnitude"
    assert BROKEN["magnitude"].startswith("DuplicateMethodError: method 'magnitude' is already registered by "
                                          "methods.magnitude (built in), so my_magnitude (distribution my_magnitude 0.1)")
    assert "FAILED TO IMPORT: DuplicateMethodError" in bench(["list", "methods", "--check"]).stdout
    ran = bench(["run", "--suite", str(ROOT / "tests" / "mlp-fast.yaml"), "--methods", "magnitude", "--seeds", "0",
                 "--epochs", "1", "--results-dir", str(tmp_path / "results"), "--dry-run"])
    assert ("bench: warning: 'magnitude' runs methods.magnitude (built in), not the plugin of that name, which failed "
            "to import: DuplicateMethodError") in ran.stderr, ran.stderr


def test_a_chain_with_a_link_whose_plugin_failed_to_import_is_a_failed_row_not_a_crash(tmp_path, plugins, bench,
                                                                                       data_dir):
    """A plugin that fails to import is a failed row, and so is a chain with it as a link: its
    plan looked up the link's class, and `bench run --methods magnitude+broken-link` (a dry run
    too) stopped with a KeyError traceback before any run."""
    plugins(make_distribution(tmp_path, "broken_link", "import no_such_module_anywhere\n",
                              {"broken-link": "broken_link"}))
    args = ["run", "--suite", FAST, "--methods", "magnitude+broken-link", "--seeds", "0", "--epochs", "1",
            "--finetune-epochs", "1", "--limit-train", "2000", "--limit-test", "500", "--data-dir", data_dir,
            "--results-dir", tmp_path / "results"]
    planned = bench([*args, "--dry-run"])
    assert planned.returncode == 0, planned.stderr
    assert "1 run: 1 to run" in planned.stdout, planned.stdout
    ran = bench(args)
    assert ran.returncode == 1, ran.stderr
    assert ("FAILED: ImportError: plugin 'broken-link' failed to import: ModuleNotFoundError: No module named "
            "'no_such_module_anywhere'") in ran.stdout, ran.stdout


ESCAPES = '''
from bench import Method, register_method


@register_method("escapist")
class Escapist(Method):
    """\\x1b]0;retitled\\x07\\x1b[2Jcleared the screen\\u202e"""

    family = "\\x1b]0;family\\x07\\u202epruning"
    level: float = 0.5

    def run(self, ctx):
        return ctx.pretrained()
'''


def test_a_plugins_escape_sequences_reach_no_terminal_through_the_listing(tmp_path, plugins, bench):
    """A plugin's family, description, distribution name and entry point names are its author's
    text: the table of `bench list` printed them as they were (ESC ] 0 ; retitled the terminal,
    ESC [ 2 J cleared it), read from source and imported alike, and the warning of an entry point
    refused for its name printed the distribution's."""
    site = make_distribution(tmp_path, "escapist", ESCAPES, {"escapist": "escapist", "lost\x1b]0;x\x07": "no_such_zz"})
    (site / "escapist-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: esc\x1b]0;x\x07apist\n"
                                                               "Version: 0.1\n")
    plugins(site)
    for args in (["list", "methods"], ["list", "methods", "--check"], ["list", "escapist"]):
        proc = bench(args)
        assert proc.returncode == 0, proc.stderr
        assert "escapist" in proc.stdout
        for text in (proc.stdout, proc.stderr):
            assert not re.search("[\x1b\x07\u202e]", text), (args, text)
