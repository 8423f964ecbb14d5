"""Whether a suite's names resolve: its dataset class, models, runtimes and methods, so that a
suite that cannot work is refused before any data is loaded or model trained.

Apart from bench.suite, the schema: resolving imports torch, torchvision and the plugins that
the suite names, which parsing a suite (to list suites, or read a record's budget) does not need.
"""

from __future__ import annotations

from typing import Any

from bench import registry
from bench.bounds import brief
from bench.errors import DataError
from bench.runtimes import REFERENCE_RUNTIME, RUNTIMES
from bench.suite import Suite, SuiteError, load_suite, suite_file


def resolved_suite(name_or_path: str) -> Suite:
    """bench.suite.load_suite, then check_names: the suite a run can use. A file that breaks the
    schema is refused before torch is imported, in a fraction of a second."""
    suite = load_suite(name_or_path)
    check_names(suite, str(suite_file(name_or_path)))
    return suite


def check_names(suite: Suite, file: str) -> None:
    """Every name resolves (dataset class, models, runtimes, methods), so that a suite that
    cannot work is refused before any data is loaded or model trained."""
    from bench.data import dataset_class  # these import torch and torchvision
    from bench.models import check_model

    try:
        dataset_class(suite.data.dataset)
    except DataError as e:
        raise SuiteError(f"{file}: key 'data.dataset': {e}") from None
    for key, spec in (("model", suite.model), ("student", suite.student)):
        if spec is not None:
            try:
                check_model(spec.name, spec.kwargs, in_channels=len(suite.data.mean))
            except Exception as e:  # noqa: BLE001 - whatever building raises, the suite cannot work
                raise SuiteError(f"{file}: key '{key}': cannot build model {brief(spec.name)} with kwargs "
                                 f"{brief(spec.kwargs)}: {type(e).__name__}: {e}") from None
    unknown = [r for r in suite.runtimes if r not in RUNTIMES]
    if unknown:
        raise SuiteError(f"{file}: key 'runtimes': unknown runtime '{unknown[0]}'; "
                         f"expected some of {', '.join(RUNTIMES)}")
    if REFERENCE_RUNTIME not in suite.runtimes:  # every other runtime's figures are read beside it
        raise SuiteError(f"{file}: key 'runtimes': must include {REFERENCE_RUNTIME} (PyTorch eager, the reference)")
    _check_methods(suite.methods, file)


def _check_methods(methods: dict[str, dict[str, Any]], file: str) -> None:
    """The `methods` section names registered methods and valid parameters. A plugin that failed
    to import is not checked: its runs fail with the import error, the suite stays usable."""
    registry.load(methods)  # only a suite that sets method parameters needs (those) plugins
    for name, params in methods.items():
        if name in registry.BROKEN and name not in registry.METHODS:
            continue
        if name not in registry.METHODS:
            raise SuiteError(f"{file}: key 'methods.{name}': {registry.unknown_method(name)}")
        try:
            registry.METHODS[name].build(dict(params))
        except registry.ParameterError as e:
            raise SuiteError(f"{file}: key 'methods.{name}': {e}") from None
