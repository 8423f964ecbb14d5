"""bench.testing, the plugin author's one-line check: it passes a good method and names what is
wrong with a bad one, on a tiny real run."""

import pytest
import torch

from bench import Method, bounded, register_method, registry
from bench.testing import check_method, check_registration
from conftest import FAST

pytestmark = pytest.mark.usefixtures("pngs_not_drawn")  # no test here reads a plot


@pytest.fixture
def scratch_registry():
    """The methods a test registers here are forgotten after it (the registry may have imported
    every other plugin meanwhile, which stays)."""
    yield
    for name in [n for n, cls in registry.METHODS.items() if cls.__module__ == __name__]:
        del registry.METHODS[name], registry.SOURCES[name]


def test_a_good_method_passes_and_its_record_is_returned(tmp_path, data_dir):
    # the fast suite (torch runtime alone): every runtime's deployment is tested in test_deploy
    record = check_method("magnitude", results_dir=tmp_path, data_dir=data_dir, params={"sparsity": 0.5},
                          suite=FAST)
    assert record["status"] == "ok" and record["config"]["params"]["sparsity"] == 0.5
    assert record["metrics"]["sparsity"] == pytest.approx(0.5, abs=0.01) and record["metrics"]["accuracy"] > 0.2
    # the record names its method's family and description: tables need no plugin source
    assert record["method_info"] == {"family": "pruning", "description": registry.METHODS["magnitude"].description()}


def test_a_bad_registration_is_named(scratch_registry):
    @register_method("undocumented")
    class Undocumented(Method):
        def run(self, ctx):
            return ctx.pretrained()

    with pytest.raises(AssertionError, match="'undocumented' has no description"):
        check_registration("undocumented")

    @register_method("odd-family")
    class OddFamily(Method):
        """Has a family the leaderboard does not know, which gets a panel of its own."""

        family = "magic"

    check_registration("odd-family")

    @register_method("misspelt-family")
    class MisspeltFamily(Method):
        """Misspells a family the leaderboard knows."""

        family = "One-shot-pruning"

    with pytest.raises(AssertionError, match="'misspelt-family' has family 'One-shot-pruning': did you mean "
                                             "'one-shot pruning'"):
        check_registration("misspelt-family")

    @register_method("ranged")
    class Ranged(Method):
        """A parameter in (0, 1]."""

        amount: float = bounded(0.5, gt=0, le=1)

    check_registration("ranged", {"amount": 1.0})
    with pytest.raises(AssertionError, match=r"'ranged' cannot be built from \{'amount': 2\}: .*\(0, 1\]"):
        check_registration("ranged", {"amount": 2})
    with pytest.raises(AssertionError, match="unknown method 'nothing-here'"):
        check_registration("nothing-here")


def test_a_run_that_fails_is_named_with_its_error_and_log(tmp_path, data_dir, scratch_registry):
    @register_method("breaks")
    class Breaks(Method):
        """Trains, then fails."""

        def run(self, ctx):
            ctx.log("about to break")
            raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"(?s)the run of 'breaks' ended failed: RuntimeError: boom.*about to break"):
        check_method("breaks", results_dir=tmp_path, data_dir=data_dir)

    @register_method("returns-nonsense")
    class ReturnsNonsense(Method):
        """Returns a model that answers with five classes."""

        def run(self, ctx):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5))

    with pytest.raises(AssertionError, match="the run of 'returns-nonsense' ended invalid: the returned model gives"):
        check_method("returns-nonsense", results_dir=tmp_path, data_dir=data_dir)


def test_a_swept_method_is_checked_in_one_run_at_its_default(tmp_path, data_dir):
    """magnitude sweeps its sparsity over the suite's levels: the check runs it once, at its
    default, rather than failing on the sweep's several runs."""
    record = check_method("magnitude", results_dir=tmp_path, data_dir=data_dir, suite=FAST)
    assert record["config"]["params"]["sparsity"] == registry.METHODS["magnitude"].parameters()["sparsity"]
