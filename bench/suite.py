"""Suite files: the YAML that fixes a benchmark's data, model, training budget and sweep.

A suite is parsed into frozen dataclasses (in the style of OpenLTH's hyperparameters) so that
each run's configuration is explicit, printable and hashable. Validation is strict: a silently
ignored typo in a budget would make two leaderboards look comparable when they are not.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml


DEFAULT_RUNTIMES = ("torch", "torch_csr", "onnxruntime", "openvino", "torch_2to4")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataSpec:
    """Where the images come from and how they are normalized and augmented."""

    dataset: str  # a torchvision.datasets class name, e.g. MNIST or CIFAR10
    mean: list[float]
    std: list[float]
    # Offline copy in ImageFolder layout, <data dir>/<image_folder>/{train,test}/<class>/...
    image_folder: str | None = None
    crop_padding: int = 0  # random crop with this much (reflect) padding; 0 = none
    flip: bool = False  # random horizontal flip


@dataclass(frozen=True)
class ModelSpec:
    """A model from the project's registry, or any timm model as `timm:<name>`."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """The training budget every method of a suite shares."""

    epochs: int  # dense training
    finetune_epochs: int  # what post-training methods may spend after compressing
    batch_size: int
    lr: float
    finetune_lr: float
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    # bf16: training runs under autocast (AMX/tensor cores); evaluation and the measured model
    # stay fp32. A suite property, not a flag, because it can change accuracy.
    precision: Literal["fp32", "bf16"] = "fp32"
    # Overrides for quick runs; set only from the command line, never in a standard suite.
    limit_train: int | None = None
    limit_test: int | None = None


@dataclass(frozen=True)
class Suite:
    """One benchmark: data, model, budget, seeds and the sparsity sweep."""

    version: int
    name: str
    description: str
    data: DataSpec
    model: ModelSpec
    training: Budget
    seeds: list[int]
    sparsities: list[float]  # the levels that sweeping methods are run at
    latency_batches: list[int]  # [1, throughput batch]
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method parameters
    student: ModelSpec | None = None  # the smaller model distillation methods train
    # The runtimes models are deployed to and timed in (bench.deploy.RUNTIMES), each on the devices
    # it supports. torch_compile compiles every model at every batch size, so it is opt-in.
    runtimes: list[str] = field(default_factory=lambda: list(DEFAULT_RUNTIMES))

    def with_budget(self, **overrides: Any) -> Suite:
        """This suite with some budget fields replaced (None values are ignored)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))


def suites_dir() -> Path:
    """The folder of the suites shipped with the project."""
    return Path(str(resources.files("suites")))


def available_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(suites_dir().glob("*.yaml"))}


def load_suite(name_or_path: str) -> Suite:
    """Load a shipped suite by name (`mlp`) or any suite file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = available_suites()
        if name_or_path not in shipped:
            raise SuiteError(
                f"unknown suite '{name_or_path}'; shipped suites: {', '.join(shipped)} "
                "(or give a path to a .yaml file)"
            )
        path = shipped[name_or_path]
    if not path.is_file():
        raise SuiteError(f"suite file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML: {e}") from None
    suite = parse(Suite, raw, str(path), "")
    from bench.deploy import RUNTIMES  # imported here: it needs torch, which parsing does not

    unknown = [r for r in suite.runtimes if r not in RUNTIMES]
    if unknown:
        raise SuiteError(f"{path}: key 'runtimes': unknown runtime '{unknown[0]}'; "
                         f"expected some of {', '.join(RUNTIMES)}")
    if "torch" not in suite.runtimes:  # the reference runtime: its latency is in every run's log line
        raise SuiteError(f"{path}: key 'runtimes': must include torch (PyTorch eager, the reference)")
    return suite


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def parse(tp: Any, value: Any, file: str, key: str) -> Any:
    """Check `value` against the type hint `tp`, building dataclasses from mappings.

    Errors name the file, the dotted key and the expected type.
    """
    where = f"{file}: key '{key or '<top level>'}'"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SuiteError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SuiteError(
                f"{where}: unknown key '{unknown[0]}'; expected keys: {', '.join(fields)}"
            )
        kwargs = {}
        for name, f in fields.items():
            sub = f"{key}.{name}" if key else name
            if name not in value:
                required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                if required:
                    raise SuiteError(f"{file}: missing key '{sub}' ({_type_name(hints[name])})")
                continue
            kwargs[name] = parse(hints[name], value[name], file, sub)
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse(arg, value, file, key)
            except SuiteError:
                pass
        raise SuiteError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise SuiteError(f"{where}: expected one of {choices}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SuiteError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(tp)
        return [parse(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SuiteError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        return {str(k): parse(item, v, file, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise SuiteError(
            f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    return value
