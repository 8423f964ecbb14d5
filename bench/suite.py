"""Suite files: the YAML that fixes a benchmark's data, model, training budget and sweep.

A suite is parsed into frozen dataclasses (in the style of OpenLTH's hyperparameters) so that
each run's configuration is explicit, printable and hashable. Validation is strict: a silently
ignored typo in a budget would make two leaderboards look comparable when they are not.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from bench import bounds, layout
from bench.bounds import bounded, brief
from bench.errors import ParameterError


DEFAULT_RUNTIMES = ("torch", "torch_csr", "onnxruntime", "openvino", "torch_2to4")

# The layers a suite's `dense_layers` may name, by role so that one suite file fits any model:
# the first Linear/Conv layer and the classifier (bench.sparsity.layer_roles finds them).
DenseRole = Literal["first", "classifier"]


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataSpec:
    """Where the images come from and how they are normalized and augmented."""

    dataset: str  # a torchvision.datasets class name, e.g. MNIST or CIFAR10
    mean: list[float] = bounded()
    std: list[float] = bounded(gt=0)
    # Offline copy in ImageFolder layout, <data dir>/<image_folder>/{train,test}/<class>/...
    image_folder: str | None = None
    crop_padding: int = bounded(0, ge=0)  # random crop with this much (reflect) padding; 0 = none
    flip: bool = False  # random horizontal flip


@dataclass(frozen=True)
class ModelSpec:
    """A model from the project's registry, or any timm model as `timm:<name>`."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """The training budget every method of a suite shares."""

    epochs: int = bounded(ge=1)  # dense training
    # What post-training methods may spend after compressing; 0 compares them without fine-tuning.
    finetune_epochs: int = bounded(ge=0)
    batch_size: int = bounded(ge=1)
    lr: float = bounded(gt=0)
    finetune_lr: float = bounded(gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = bounded(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = bounded(0.0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = bounded(0.0, ge=0)
    label_smoothing: float = bounded(0.0, ge=0, lt=1)
    # bf16: training runs under autocast (AMX/tensor cores); evaluation and the measured model
    # stay fp32. A suite property, not a flag, because it can change accuracy.
    precision: Literal["fp32", "bf16"] = "fp32"
    # Overrides for quick runs; set only from the command line, never in a standard suite.
    limit_train: int | None = bounded(None, ge=1)
    limit_test: int | None = bounded(None, ge=1)


SEED_LIMIT = 2**32  # numpy's random seeds stop there (torch's at 2**64)


@dataclass(frozen=True)
class Suite:
    """One benchmark: data, model, budget, seeds and the sparsity sweep."""

    version: int
    name: str  # also the results folder's name: a plain name (see is_plain_name)
    description: str
    data: DataSpec
    model: ModelSpec
    training: Budget
    seeds: list[int] = bounded(ge=0, lt=SEED_LIMIT, distinct=True)
    sparsities: list[float] = bounded(ge=0, lt=1, distinct=True)  # the levels sweeping methods run at
    latency_batches: list[int] = bounded(ge=1, distinct=True)  # [1, throughput batch]
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method parameters
    student: ModelSpec | None = None  # the smaller model distillation methods train
    # The runtimes models are deployed to and timed in (bench.runtimes.RUNTIMES), each on the devices
    # it supports. torch_compile compiles every model at every batch size, so it is opt-in.
    runtimes: list[str] = field(default_factory=lambda: list(DEFAULT_RUNTIMES))
    # The layers every sparsity method leaves dense, as the papers' code (SparseGPT, Wanda) and
    # ShrinkBench leave the classifier; none by default: every Linear/Conv layer is pruned.
    dense_layers: list[DenseRole] = field(default_factory=list)

    def with_budget(self, **overrides: Any) -> Suite:
        """This suite with some budget fields replaced (None values are ignored)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))


def suites_dir() -> Path:
    """The folder of the suites shipped with the project."""
    return Path(str(resources.files("suites")))


def available_suites() -> dict[str, Path]:
    return {p.stem: p for p in sorted(suites_dir().glob("*.yaml"))}


def suite_file(name_or_path: str) -> Path:
    """The file of a shipped suite (`mlp`), or the path given; SuiteError if there is none."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = available_suites()
        if name_or_path not in shipped:
            raise SuiteError(
                f"unknown suite {brief(name_or_path)}; shipped suites: {', '.join(shipped)} "
                "(or give a path to a .yaml file)"
            )
        path = shipped[name_or_path]
    if not path.is_file():  # (a FIFO would block the read below until something wrote to it)
        what = "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        namesake = available_suites().get(path.stem) if path.suffix in (".yaml", ".yml") else None
        hint = f"; the shipped suite {path.stem} is --suite {path.stem} ({namesake})" if namesake and not path.exists() else ""
        raise SuiteError(f"suite file {path} {what}{hint}")
    return path


def load_suite(name_or_path: str) -> Suite:
    """Load a shipped suite by name (`mlp`) or any suite file by path, parsed and checked
    against the schema. Whether its names (dataset, models, runtimes, methods) resolve is
    bench.resolve's question, which needs torch and the plugins; parsing does not."""
    path = suite_file(name_or_path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SUITE_BYTES + 1)
        if len(data) > MAX_SUITE_BYTES:
            raise SuiteError(f"{path}: a suite file holds at most {MAX_SUITE_BYTES // 2**20} MiB, and this one more")
        raw = yaml.load(data.decode("utf-8"), Loader=_SuiteLoader)  # a SafeLoader, without aliases
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{path}: cannot read the suite file: {e}") from None
    except _Refused as e:
        raise SuiteError(f"{path}: {_yaml_error(e)}") from None
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: not valid YAML: {_yaml_error(e)}") from None
    except SuiteError:
        raise
    except ValueError as e:  # int() of a number of thousands of digits, past Python's limit
        raise SuiteError(f"{path}: not a suite file: {' '.join(str(e).split())[:200]}") from None
    except RecursionError:
        raise SuiteError(f"{path}: nested too deeply to be a suite file") from None
    try:
        suite = parse(Suite, raw, str(path), "")
    except RecursionError:
        raise SuiteError(f"{path}: nested too deeply to be a suite file") from None
    _check(suite, str(path))
    _check_shipped_name(suite, path)
    return suite


# What a run trains and is judged on without it showing in its row's key (method, setting, seed,
# data source, epochs): two suites of one name that differ here would pool unlike runs in one row.
IDENTITY = ("version", "data", "model", "training", "student", "dense_layers")


def _check_shipped_name(suite: Suite, path: Path) -> None:
    """Refuse a suite file that takes a shipped suite's name but trains otherwise (a copy of
    mlp.yaml with another learning rate): its records would go to the same results folder and be
    averaged into the shipped suite's leaderboard rows. Other differences (sweep levels, seeds,
    runtimes, latency batches) make rows of their own or only change what is measured."""
    shipped = available_suites().get(suite.name)
    if shipped is None or shipped.resolve() == path.resolve():
        return
    original = load_suite(suite.name)
    ours, theirs = _flat({k: getattr(suite, k) for k in IDENTITY}), _flat({k: getattr(original, k) for k in IDENTITY})
    differ = [f"{key} {_short(ours.get(key))} here, {_short(theirs.get(key))} in {suite.name}"
              for key in sorted(ours.keys() | theirs.keys()) if ours.get(key) != theirs.get(key)]
    if differ:
        raise SuiteError(f"{path}: named '{suite.name}', as a shipped suite is, but trains otherwise "
                         f"({'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}): its runs would be averaged "
                         f"into the shipped suite's leaderboard rows. Give it a name of its own (name: my-{suite.name})")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values: {"training": Budget(lr=0.05, ...)} -> {"training.lr": 0.05, ...}."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


MAX_SUITE_BYTES = 2**20  # a suite is a page of YAML; a larger file is a mistake or an attack


class _Refused(yaml.MarkedYAMLError):
    """YAML that a suite file may not use."""


class _SuiteLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing anchors and aliases before anything is expanded: a suite has
    no use for them, and aliases of aliases ("billion laughs") make a few lines of YAML a value
    of billions of items (one such file took 1.5 GB and 20 s to be refused, printing it)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="anchors and aliases (&name, *name) are not allowed in a suite file "
                                   "or a --set value",
                           problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A key given twice in one mapping is refused: YAML keeps the last silently, so a
        `lr: 0.05` further down the file would undo the `lr: 5.0` a reader sees first."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the schema refuses it, naming the key
            if key in seen:
                raise _Refused(problem=f"key {str(key)[:60]!r} is given twice in one mapping",
                               problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml_value(text: str) -> Any:
    """One YAML value (a --set value) read as a suite file is: no anchors or aliases, which let
    a few hundred bytes expand to gigabytes, and no key twice. Raises yaml.YAMLError, and
    ValueError for a number too long for Python to read."""
    return yaml.load(text, Loader=_SuiteLoader)


def parameter_value(text: str, what: str) -> Any:
    """A method parameter's value as --set takes it (and `bench compare --methods 'X[PARAM=VALUE]'`,
    which must read a value as the run that recorded it did): a YAML scalar (0.9, true, text), and a
    number that YAML 1.1 leaves as text (2e-5) as a float. `what` (the option and key) starts the
    refusal of a value that is no YAML scalar."""
    try:
        parsed = yaml_value(text)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise ParameterError(f"{what[:200]}: the value is no YAML scalar: "
                             f"{' '.join(str(e).split())[:200] or type(e).__name__}") from None
    if isinstance(parsed, str):
        try:
            return float(parsed)
        except ValueError:
            pass
    return parsed


def _yaml_error(e: yaml.YAMLError) -> str:
    """A YAML error on one line: where, and what the parser expected."""
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = getattr(e, "context", None)
    return where + "; ".join(str(x) for x in (context, getattr(e, "problem", None) or e) if x)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def results_name(name_or_file: str) -> str:
    """The suite a reader's --suite names under a results folder (`bench leaderboard`, `bench
    compare`): a suite file's path (`my-suite.yaml`) stands for its `name`, the folder that
    `bench run --suite my-suite.yaml` wrote its records to; anything else is the name itself.
    The readers refused the path a user had just given `bench run`, as no folder name."""
    if Path(name_or_file).suffix in (".yaml", ".yml"):
        return load_suite(name_or_file).name
    return name_or_file


def is_plain_name(name: str) -> bool:
    """True for a name that is safe as one folder name under the results folder: letters,
    digits, '_', '.', '-', not starting with '.' (so no '..', no hidden folder), no separator."""
    return _PLAIN_NAME.fullmatch(name) is not None


def _check(suite: Suite, file: str) -> None:
    """What the types and ranges cannot say: the name is a plain folder name and the values
    agree with each other."""
    if not is_plain_name(suite.name):
        raise SuiteError(f"{file}: key 'name': expected a plain folder name (letters, digits, '_', '.', "
                         f"'-'; no path separator, not starting with '.'), got {brief(suite.name)}")
    if suite.name in (layout.SITE, layout.CHECKS):
        raise SuiteError(f"{file}: key 'name': {suite.name!r} names what the results folder holds beside the suites "
                         "(the site, the checks' verdicts); choose another name")
    if len(suite.data.mean) != len(suite.data.std) or not suite.data.mean:
        raise SuiteError(f"{file}: keys 'data.mean', 'data.std': expected one value per image channel in "
                         f"each, got {len(suite.data.mean)} and {len(suite.data.std)}")
    repeated = sorted({role for role in suite.dense_layers if suite.dense_layers.count(role) > 1})
    if repeated:
        raise SuiteError(f"{file}: key 'dense_layers': names {repeated[0]!r} more than once")
    b = suite.training
    if b.optimizer == "sgd" and b.nesterov and b.momentum == 0:
        raise SuiteError(f"{file}: key 'training.momentum': Nesterov SGD needs a momentum > 0 "
                         "(or set training.nesterov: false)")


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
        unknown = sorted(set(value) - set(fields), key=str)  # keys YAML read as numbers or null too
        if unknown:
            raise SuiteError(
                f"{where}: unknown key {brief(unknown[0])}; expected keys: {', '.join(fields)}"
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
            why = bounds.problem(f, kwargs[name])
            if why:
                raise SuiteError(f"{file}: key '{sub}': {why}")
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
        raise SuiteError(f"{where}: expected {_type_name(tp)}, got {brief(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise SuiteError(f"{where}: expected one of {choices}, got {brief(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SuiteError(f"{where}: expected a list, got {type(value).__name__} {brief(value)}")
        (item,) = typing.get_args(tp)
        return [parse(item, v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SuiteError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        return {str(k): parse(item, v, file, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        if not bounds.plain(value):  # it goes into the runs' configurations, which are JSON
            raise SuiteError(f"{where}: expected plain data (finite numbers within ±{bounds.MAX_NUMBER:g}, text, "
                             f"true/false, null, lists, mappings with text keys; at most {bounds.MAX_DEPTH} levels deep), "
                             f"got {brief(value)}")
        return value
    if tp in (int, float) and bounds.too_large(value):  # (float() of 10**400 raises OverflowError)
        raise SuiteError(f"{where}: expected a number within ±{bounds.MAX_NUMBER:g}, the largest a run's record "
                         f"holds, got {brief(value)}")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        hint = ""
        if tp is float and isinstance(value, str) and len(value) < 100 and _is_float(value):
            hint = f" (YAML reads {value} as text: write it with a dot and a signed exponent, e.g. {float(value):.1e})"
        raise SuiteError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {brief(value)}{hint}")
    return value


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
