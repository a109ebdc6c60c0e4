"""The search space of a sweep: ``[sweep.space]``, one range or list of choices per setting.

Each key is a run setting (``lam``, ``latent_dim``, ``lr``, ``epochs``...) or a plugin's or the
data's option, ``KIND_opts.OPTION`` (``penalty_opts.bandwidth``, ``network_opts.hidden``; in
TOML the unquoted dotted key nests the same way). Each value is one of::

    {low = 1.0, high = 100.0, log = true}     # a range: real numbers, log-uniform
    {low = 10, high = 50, step = 10}          # whole numbers 10, 20, ..., 50
    {choices = [4, 8, 16]}                    # one of these values (any values, lists too)

A range gives whole numbers when the setting takes whole numbers (``epochs``, ``latent_dim``, an
option annotated ``int``); real numbers when it takes real numbers; otherwise whole numbers when
``low``, ``high`` (and ``step``) are written as whole numbers. Choices that are not text, numbers,
booleans or null (``[[16], [32, 32]]``) are kept by Optuna as their JSON text.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from typing import Any

from wae_toolkit.errors import UsageError, did_you_mean
from wae_toolkit.errors import short_repr as _show

__all__ = ["Param", "parse_space", "apply_params", "NOT_SEARCHED"]

#: Settings a sweep sets itself, and why they cannot be searched.
NOT_SEARCHED = {
    "seed": "the sweep sets each run's seed (repeat seeds with [sweep] seeds = N)",
    "out": "each trial writes its own run folder in the sweep's folder",
    "overwrite": "each trial writes its own run folder in the sweep's folder",
}
_RANGE_KEYS = ("low", "high", "log", "step")
_SCALAR = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Param:
    """One searched setting: a range (``low``..``high``) or a list of ``choices``."""

    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None
    integer: bool = False

    @property
    def encoded(self) -> bool:
        """Whether Optuna holds the choices as JSON text (some are lists or tables)."""
        return self.choices is not None and not all(isinstance(c, _SCALAR) for c in self.choices)

    def candidates(self) -> list[Any]:
        """The values checked before the sweep starts: the bounds, or every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def suggest(self, trial: Any) -> Any:
        """Ask the Optuna ``trial`` for a value; returns it as the run setting takes it."""
        if self.choices is not None:
            if self.encoded:
                texts = [json.dumps(c, sort_keys=True) for c in self.choices]
                return json.loads(trial.suggest_categorical(self.name, texts))
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(self.name, self.low, self.high, step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def decode(self, value: Any) -> Any:
        """A value Optuna stored for this setting, as the run setting takes it."""
        return json.loads(value) if self.encoded and isinstance(value, str) else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _takes(annotation: Any) -> str | None:
    """``"int"`` or ``"float"`` when an annotation takes only that kind of number."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if args in ([int], ["int"]):
        return "int"
    if args in ([float], ["float"]):
        return "float"
    return None


def setting_numbers(name: str, base: dict[str, Any]) -> str | None:
    """``"int"``, ``"float"`` or None (unknown): the numbers the setting ``name`` takes."""
    from wae_toolkit.config.settings import RunConfig

    field, _, option = name.partition(".")
    if not option:
        return _takes(typing.get_type_hints(RunConfig).get(field))
    kind = field.removesuffix("_opts")
    if kind not in ("cost", "penalty", "prior", "network") or not isinstance(base.get(kind), str):
        return None
    from wae_toolkit.plugins.options import plugin_options
    from wae_toolkit.plugins.registry import get_plugin_class

    try:
        specs = {s.name: s for s in plugin_options(get_plugin_class(kind, base[kind]))}
    except Exception:  # an unknown plugin: validation names it
        return None
    return _takes(specs[option].annotation) if option in specs else None


def _flatten(where: str, space: dict[str, Any], dict_fields: set[str]) -> dict[str, Any]:
    """``{"penalty_opts": {"bandwidth": spec}}`` as ``{"penalty_opts.bandwidth": spec}``."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        key = "lam" if key == "lambda" else key
        if key in dict_fields:
            if not isinstance(value, dict) or not value or any(k in value for k in _RANGE_KEYS):
                raise UsageError(
                    f"{where} {key} must hold options, such as {key}.NAME = {{low = ..., "
                    f"high = ...}} or {key}.NAME = {{choices = [...]}}; got {_show(value)}."
                )
            for option, spec in value.items():
                flat[f"{key}.{option}"] = spec
        else:
            flat[key] = value
    return flat


def parse_space(where: str, space: Any, base: dict[str, Any]) -> list[Param]:
    """The parameters of ``[sweep.space]`` (``where`` names it in messages), checked one by one;
    the values themselves are checked by :func:`wae_toolkit.sweep.plan.read_plan`.

    Raises:
        UsageError: one sentence for the first problem.
    """
    from wae_toolkit.config.settings import RunConfig

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    dict_fields = {n for n, f in fields.items() if f.default_factory is dict}
    if not isinstance(space, dict) or not space:
        raise UsageError(
            f"{where} must name at least one setting to search, such as lam = {{low = 1.0, "
            f"high = 100.0, log = true}}; got {_show(space)}."
        )
    params = []
    for name, spec in _flatten(where, space, dict_fields).items():
        field = name.partition(".")[0]
        if field in NOT_SEARCHED:
            raise UsageError(f"{where} cannot search {field}: {NOT_SEARCHED[field]}.")
        if field not in fields or ("." in name and field not in dict_fields):
            searchable = sorted(set(fields) - set(NOT_SEARCHED))
            raise UsageError(
                f"{where} names an unknown setting {_show(name)}.{did_you_mean(name, searchable)} "
                "A key is a run setting (lam, lr, epochs...) or KIND_opts.OPTION "
                "(penalty_opts.bandwidth...)."
            )
        params.append(_param(f"{where} {name}", name, spec, setting_numbers(name, base)))
    return params


def _param(where: str, name: str, spec: Any, numbers: str | None) -> Param:
    if not isinstance(spec, dict):
        raise UsageError(
            f"{where} must be a range {{low = ..., high = ...}} or a list of choices "
            f"{{choices = [...]}}; got {_show(spec)}."
        )
    allowed = ["choices"] if "choices" in spec else list(_RANGE_KEYS)
    for key in spec:
        if key not in allowed:
            hint = did_you_mean(key, [*_RANGE_KEYS, "choices"])
            raise UsageError(
                f"{where} has an unknown key {_show(key)}.{hint}"
                " A range takes low, high, log and step; a list of choices takes choices alone."
            )
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list):
            raise UsageError(f"{where}: choices must be a list of values; got {_show(choices)}.")
        if not choices:
            raise UsageError(f"{where}: choices is empty; give at least one value.")
        return Param(name, choices=tuple(choices))
    low, high, log, step = (spec.get(k) for k in _RANGE_KEYS)
    if low is None or high is None:
        raise UsageError(f"{where} needs both low and high (or choices = [...]).")
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and not _number(value):
            raise UsageError(f"{where}: {key} must be a number; got {_show(value)}.")
    if not isinstance(log, bool | None):
        raise UsageError(f"{where}: log must be true or false; got {_show(log)}.")
    if low >= high:
        raise UsageError(f"{where}: low must be below high; got low = {low}, high = {high}.")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs low > 0; got low = {low}.")
    if step is not None and step <= 0:
        raise UsageError(f"{where}: step must be positive; got {step}.")
    if log and step is not None:
        raise UsageError(f"{where}: a range takes log or step, not both.")
    whole = all(_whole(v) for v in (low, high, step) if v is not None)
    if numbers == "int" and not whole:
        bad = next(v for v in (low, high, step) if v is not None and not _whole(v))
        raise UsageError(f"{where} takes whole numbers; low, high and step must be too, got {bad}.")
    integer = numbers == "int" or (numbers is None and whole)
    return Param(name, low, high, bool(log), step, integer=integer)


def apply_params(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``base`` settings with ``values`` (by parameter name) put in: ``penalty_opts.bandwidth``
    into the ``penalty_opts`` table, the others in place."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for name, value in values.items():
        field, _, option = name.partition(".")
        if option:
            table = out.get(field)
            out[field] = {**(table if isinstance(table, dict) else {}), option: value}
        else:
            out[field] = value
    return out
