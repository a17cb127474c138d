"""Run settings as self-validating dataclasses, read from TOML or built in (``demo``).

A config file has a top-level ``seed`` (and ``device``) and the tables ``[data]``,
``[model]``, ``[float]`` (floating-point training) and ``[qat]`` (hardware-faithful
fine-tuning). Every key is optional; the defaults are the demo's settings. Training-time
transforms are chosen per parameter family, e.g.::

    seed = 0
    [model]
    hidden = [64]
    [float]
    epochs = 40
    lr = 3e-3
    [float.transforms.weights]
    name = "gaussian_mismatch"
    percent_deviation = 5.0
    [qat]
    epochs = 6
    lr = 1e-3
    schedule = "cosine"

Every value is checked when the config is built, before any training: an unknown key or a
value of the wrong type or range raises ``ValueError`` naming the key and what is valid.

Example:
    >>> cfg = TrainConfig.from_dict({"model": {"hidden": [32]}, "qat": {"epochs": 2}})
    >>> cfg.model.hidden, cfg.qat.epochs, cfg.float.epochs
    ((32,), 2, 40)
    >>> TrainConfig.from_dict({"model": {"hiden": [32]}})
    Traceback (most recent call last):
    ...
    ValueError: config: unknown key 'model.hiden'. Valid keys in [model]: hidden, ...
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snnqat.parameters import FAMILIES, FAMILY_ALIASES

__all__ = [
    "DataConfig",
    "ModelConfig",
    "TransformConfig",
    "StageConfig",
    "QATConfig",
    "TrainConfig",
    "TRANSFORMS",
    "load_config",
    "demo_config",
    "tiny_config",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None


def _transform_registry() -> dict[str, Callable]:
    import snnqat.transform.torch_transform as tt

    return {
        "deterministic_rounding": tt.deterministic_rounding,
        "stochastic_rounding": tt.stochastic_rounding,
        "stochastic_channel_rounding": tt.stochastic_channel_rounding,
        "int_quant": tt.int_quant,
        "dropout": tt.dropout,
        "magnitude_prune": tt.magnitude_prune,
        "gaussian_mismatch": tt.gaussian_mismatch,
    }


TRANSFORMS: tuple[str, ...] = (
    "deterministic_rounding",
    "stochastic_rounding",
    "stochastic_channel_rounding",
    "int_quant",
    "dropout",
    "magnitude_prune",
    "gaussian_mismatch",
)
"""Names of the element transforms a config may place on a parameter family."""

SURROGATES = ("periodic_exponential", "step_pwl")
SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
METHODS = ("global", "channel")


def _fail(where: str, expected: str, got: Any, fix: str = "") -> ValueError:
    msg = f"config: {where}: expected {expected}, got {got!r}."
    return ValueError(msg + (f" {fix}" if fix else ""))


def _check_int(where: str, value: int, low: int, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise _fail(where, f"an int {rng}", value)


def _check_pos_float(where: str, value: float, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise _fail(where, "a finite number " + (">= 0" if allow_zero else "> 0"), value)


def _check_choice(where: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(where, f"one of {list(choices)}", value)


def _canonical_family(where: str, name: str) -> str:
    name = FAMILY_ALIASES.get(name, name)
    if name not in FAMILIES:
        raise _fail(where, f"a parameter family, one of {list(FAMILIES)}", name)
    return name


@dataclass(frozen=True)
class DataConfig:
    """The bundled scikit-learn ``digits`` images as spike-count rasters.

    Attributes:
        n_class: Classes (digits ``0..n_class-1``); at most 8, the outputs of one Xylo core.
        steps_per_row: Time steps each image row is shown for.
        pad_steps: Silent steps after the image, so the last spikes reach the outputs.
        test_fraction: Fraction of the samples held out (stratified split).
        limit_samples: Use only this many samples (0: all); for quick runs and tests.
    """

    n_class: int = 8
    steps_per_row: int = 2
    pad_steps: int = 4
    test_fraction: float = 0.25
    limit_samples: int = 0

    def __post_init__(self) -> None:
        _check_int("data.n_class", self.n_class, 2, 10)
        _check_int("data.steps_per_row", self.steps_per_row, 1)
        _check_int("data.pad_steps", self.pad_steps, 0)
        if not 0.0 < self.test_fraction < 1.0:
            raise _fail("data.test_fraction", "a number in (0, 1)", self.test_fraction)
        if self.limit_samples != 0 and self.limit_samples < 4 * self.n_class:
            raise _fail(
                "data.limit_samples",
                f"0 (all samples) or at least 4 * n_class = {4 * self.n_class}",
                self.limit_samples,
            )


@dataclass(frozen=True)
class ModelConfig:
    """The network: 16 inputs -> LIF hidden layer(s) -> ``n_class`` LIF outputs.

    Attributes:
        hidden: Sizes of the hidden LIF layers (each fed by a ``LinearTorch``).
        recurrent: Give the hidden layers recurrent weights ``w_rec``.
        dash_mem: Membrane bit-shift decay (``alpha = 1 - 2**-dash_mem``).
        dash_syn: Synaptic bit-shift decay.
        threshold: Initial firing threshold of every neuron.
        hidden_max_spikes: Spike cap of a hidden neuron per step (Xylo: 31).
        output_max_spikes: Spike cap of an output neuron per step (Xylo: 1).
        surrogate: ``"periodic_exponential"`` or ``"step_pwl"``.
        learning_window: Width of the surrogate gradient.
        input_weight_scale: Factor on the initial weights of the first layer: the inputs are
            raw spike counts (up to 15), so smaller weights keep the hidden layer from
            saturating at the start.
        dt: Seconds per time step (recorded in the exported spec).
    """

    hidden: tuple[int, ...] = (64,)
    recurrent: bool = False
    dash_mem: float = 2.0
    dash_syn: float = 1.0
    threshold: float = 1.0
    hidden_max_spikes: int = 31
    output_max_spikes: int = 1
    surrogate: str = "periodic_exponential"
    learning_window: float = 0.5
    input_weight_scale: float = 0.1
    dt: float = 1e-3

    def __post_init__(self) -> None:
        if not self.hidden:
            raise _fail("model.hidden", "a non-empty list of layer sizes", list(self.hidden))
        for i, h in enumerate(self.hidden):
            _check_int(f"model.hidden[{i}]", h, 1)
        for name in ("dash_mem", "dash_syn"):
            value = getattr(self, name)
            if not 0 <= value <= 15:
                raise _fail(f"model.{name}", "a number in [0, 15] (4-bit bit shift)", value)
        _check_pos_float("model.threshold", self.threshold)
        _check_int("model.hidden_max_spikes", self.hidden_max_spikes, 1)
        _check_int("model.output_max_spikes", self.output_max_spikes, 1)
        _check_choice("model.surrogate", self.surrogate, SURROGATES)
        _check_pos_float("model.learning_window", self.learning_window)
        _check_pos_float("model.input_weight_scale", self.input_weight_scale)
        _check_pos_float("model.dt", self.dt)


@dataclass(frozen=True)
class TransformConfig:
    """One element transform applied to a parameter family while a stage trains.

    Attributes:
        name: One of :data:`TRANSFORMS`.
        params: Keyword arguments of the transform (checked against its signature).
        burn_in: Burn the transformed values in at the end of the stage (``apply_T``);
            otherwise the transform is simply removed (right for noise such as dropout).
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    burn_in: bool = False

    def __post_init__(self) -> None:
        _check_choice("transform name", self.name, TRANSFORMS)
        fn = _transform_registry()[self.name]
        sig = inspect.signature(fn)
        names = list(sig.parameters)[1:]
        valid = [n for n in names if n != "generator"]
        for key in self.params:
            if key not in valid:
                raise ValueError(
                    f"config: transform {self.name!r}: unknown parameter {key!r}. "
                    f"Valid parameters: {', '.join(valid)}."
                )
        try:
            sig.bind_partial(None, **self.params)
        except TypeError as err:  # pragma: no cover - guarded by the check above
            raise ValueError(f"config: transform {self.name!r}: {err}") from err

    def build(self) -> Callable:
        """The transform as ``Callable[[Tensor], Tensor]``."""
        fn = _transform_registry()[self.name]
        params = dict(self.params)
        return lambda p: fn(p, **params)

    def to_dict(self) -> dict[str, Any]:
        """The TOML form: ``{"name": ..., **params, "burn_in": ...}``."""
        return {"name": self.name, **dict(self.params), "burn_in": self.burn_in}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TransformConfig:
        """Build from the TOML form (``name`` plus the transform's parameters)."""
        if not isinstance(data, Mapping):
            raise _fail(where, 'a table such as {name = "dropout", dropout_prob = 0.1}', data)
        if "name" not in data:
            raise ValueError(
                f"config: {where}: missing key 'name'. Valid names: {', '.join(TRANSFORMS)}."
            )
        params = {k: v for k, v in data.items() if k not in ("name", "burn_in")}
        burn_in = data.get("burn_in", False)
        if not isinstance(burn_in, bool):
            raise _fail(f"{where}.burn_in", "a bool", burn_in)
        try:
            return cls(name=data["name"], params=params, burn_in=burn_in)
        except ValueError as err:
            raise ValueError(str(err).replace("config: ", f"config: {where}: ", 1)) from None


@dataclass(frozen=True)
class StageConfig:
    """One training stage.

    Attributes:
        epochs: Passes over the training split (0 skips the stage's training).
        lr: Adam learning rate.
        batch_size: Global batch size (split over the processes of a distributed run).
        schedule: ``"constant"`` or ``"cosine"`` (to 0 over the stage's epochs).
        trainable: Parameter families that train; the others stay fixed.
        transforms: ``{family: TransformConfig}`` active during this stage's training.
        segment_steps: ``0``: each batch runs over its whole sequence in one call; ``N > 0``:
            through :func:`snnqat.nn.checkpoint_in_time` in segments of ``N`` time steps
            (the same gradients, a fraction of the activation memory, about one more forward
            pass of time; for long sequences). Float stage only.
    """

    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 64
    schedule: str = "constant"
    trainable: tuple[str, ...] = ("weights",)
    transforms: Mapping[str, TransformConfig] = field(default_factory=dict)
    segment_steps: int = 0

    def __post_init__(self) -> None:
        prefix = self._prefix
        _check_int(f"{prefix}.epochs", self.epochs, 0)
        _check_pos_float(f"{prefix}.lr", self.lr)
        _check_int(f"{prefix}.batch_size", self.batch_size, 1)
        _check_choice(f"{prefix}.schedule", self.schedule, SCHEDULES)
        _check_int(f"{prefix}.segment_steps", self.segment_steps, 0)
        if not self.trainable:
            raise _fail(f"{prefix}.trainable", "at least one parameter family", [])
        trainable = tuple(_canonical_family(f"{prefix}.trainable", f) for f in self.trainable)
        object.__setattr__(self, "trainable", trainable)
        transforms = {
            _canonical_family(f"{prefix}.transforms", k): v for k, v in self.transforms.items()
        }
        object.__setattr__(self, "transforms", transforms)

    _prefix = "float"


@dataclass(frozen=True)
class QATConfig(StageConfig):
    """Hardware-faithful fine-tuning (quantization-aware training) on the chip's integers.

    Attributes:
        method: Integer scales of the export: ``"global"`` (one for the hidden layers, one
            for the outputs) or ``"channel"`` (one per neuron).
    """

    epochs: int = 6
    lr: float = 1e-3
    schedule: str = "cosine"
    method: str = "global"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("qat.method", self.method, METHODS)
        if self.segment_steps != 0:  # hardware-faithful layers compute in saturated integers
            raise _fail(
                "qat.segment_steps",
                "0 (checkpointing in time is not supported for the hardware-faithful stage)",
                self.segment_steps,
            )

    _prefix = "qat"


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run needs; ``TrainConfig()`` is the demo.

    Attributes:
        seed: Seeds the data split, the initial weights and the data order.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        data: See :class:`DataConfig`.
        model: See :class:`ModelConfig`.
        float: The floating-point stage, see :class:`StageConfig`.
        qat: The hardware-faithful stage, see :class:`QATConfig`.
    """

    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    float: StageConfig = field(default_factory=StageConfig)
    qat: QATConfig = field(default_factory=QATConfig)

    def __post_init__(self) -> None:
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_choice("device", self.device, DEVICES)
        if self.data.n_class > 8:
            raise ValueError(
                f"config: data.n_class: expected at most 8 (a Xylo core has 8 output neurons), "
                f"got {self.data.n_class}."
            )
        if sum(self.model.hidden) > 1000:
            raise ValueError(
                "config: model.hidden: expected at most 1000 hidden neurons in all (Xylo), got "
                f"{sum(self.model.hidden)}."
            )

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build and validate a config from nested dicts (the parsed TOML).

        Raises:
            ValueError: An unknown key (the message lists the valid ones), a value of the
                wrong type, or a value out of range.
        """
        return _build(cls, data, "")

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts (JSON/TOML-ready); ``from_dict(to_dict())`` gives it back."""
        return _unbuild(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with dotted keys changed, e.g. ``replace(**{"qat.epochs": 1})``.

        Example:
            >>> TrainConfig().replace(**{"float.epochs": 1, "seed": 3}).float.epochs
            1
        """
        data = self.to_dict()
        for key, value in changes.items():
            node = data
            *parents, last = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})  # an unknown table fails in from_dict
            node[last] = value
        return TrainConfig.from_dict(data)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return f"a list of {'numbers' if inner is float else inner.__name__ + 's'}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (Mapping, dict) or tp is Mapping:
        return "a table"
    return {int: "an int", float: "a number", str: "a string", bool: "a bool"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _fail(where, _type_name(tp), value)
        inner = typing.get_args(tp)[0]
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        args = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise _fail(where, "a table", value)
        if len(args) == 2 and args[1] is TransformConfig:
            return {k: TransformConfig.from_dict(v, f"{where}.{k}") for k, v in value.items()}
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, "a bool (true/false)", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "an int", value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, "a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    return value  # pragma: no cover - every field type is handled above


def _build(cls: type, data: Any, where: str) -> Any:
    table = f"[{where}]" if where else "the top level"
    if not isinstance(data, Mapping):
        raise _fail(where or "config", "a table", data)
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ValueError(
                f"config: unknown key {path!r}. Valid keys in {table}: {', '.join(names)}."
            )
        kwargs[key] = _convert(hints[key], value, path)
    return cls(**kwargs)


def _unbuild(obj: Any) -> Any:
    if isinstance(obj, TransformConfig):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: _unbuild(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_unbuild(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _unbuild(v) for k, v in obj.items()}
    return obj


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read and validate a TOML config file.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not valid TOML, or an invalid setting (see :meth:`TrainConfig.from_dict`).
        ModuleNotFoundError: Python < 3.11 without the ``tomli`` package.
    """
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise ModuleNotFoundError(
            "Reading TOML needs Python >= 3.11 or the 'tomli' package: pip install tomli."
        )
    with open(path, "rb") as file:
        try:
            data = tomllib.load(file)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config: {os.fspath(path)!r} is not valid TOML: {err}") from None
    return TrainConfig.from_dict(data)


def demo_config(epochs: int | None = None, seed: int = 0) -> TrainConfig:
    """The demo's settings; ``epochs`` (if given) replaces the epochs of both stages.

    Example:
        >>> demo_config(epochs=1).qat.epochs
        1
    """
    cfg = TrainConfig(seed=seed)
    if epochs is not None:
        cfg = cfg.replace(**{"float.epochs": epochs, "qat.epochs": epochs})
    return cfg


def tiny_config(seed: int = 0) -> TrainConfig:
    """A run of a few seconds for tests: 96 samples, 16 hidden neurons, 2 + 1 epochs."""
    return TrainConfig.from_dict(
        {
            "seed": seed,
            "device": "cpu",
            "data": {"limit_samples": 96, "n_class": 4},
            "model": {"hidden": [16]},
            "float": {"epochs": 2, "batch_size": 16, "lr": 1e-2},
            "qat": {"epochs": 1, "batch_size": 16},
        }
    )
