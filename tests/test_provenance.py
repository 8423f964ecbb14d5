"""A third-party method's records and listing name the package it came from."""

import json

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
    ran = bench(["run", "--suite", FAST, "--methods", "as-is,magnitude+ptq-int8", "--seeds", "0", "--epochs", "1",
                 "--finetune-epochs", "0", "--limit-train", "200", "--limit-test", "100",
                 "--set", "magnitude.sparsity=0.5", "--data-dir", data_dir, "--results-dir", tmp_path / "results"])
    assert ran.returncode == 0, ran.stderr
    assert "1 of the 2 methods selected come from installed plugins: as-is (asis_pkg 0.1)" in ran.stdout
    origins = {r["config"]["method"]: r["env"]["method_origin"] for r in
               (json.loads(p.read_text()) for p in (tmp_path / "results" / "mlp-fast" / "runs").glob("*.json"))}
    assert origins == {"as-is": {"as-is": "asis_pkg 0.1"},
                       "magnitude+ptq-int8": {"magnitude": "built in", "ptq-int8": "built in"}}
    monkeypatch.delenv("COLUMNS", raising=False)
    for listing in (bench(["list", "methods"]), bench(["list", "methods", "--check"])):
        rows = {line.split()[0]: line for line in listing.stdout.splitlines()[2:]}
        assert "origin" in listing.stdout.splitlines()[0]
        assert " asis_pkg 0.1 " in rows["as-is"] and " built in " in rows["magnitude"]
