"""Builds a run's model, cost and penalty from a :class:`~wae_toolkit.config.settings.RunConfig`.

Training and loading a saved run both go through :func:`build_components`, so a run folder
rebuilds exactly what was trained: the plugins are resolved by name through the registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from wae_toolkit.assembly.model import WAE
from wae_toolkit.config.plugin_checks import (
    _memory_problem,
    _naming,
    _plain_errors,
    _samples_ok,
    encoder_problems,
    prior_dim_problems,
)
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data.rules import RANGE_RULE, SHAPE_RULE, shape_ok, value_range_ok
from wae_toolkit.errors import DataError, UsageError, setting
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty, Network
from wae_toolkit.plugins.options import resolved_options
from wae_toolkit.plugins.registry import create, get_plugin_info

__all__ = [
    "Components",
    "build_components",
    "decoder_output_for",
    "given_plugins",
]


@dataclass
class Components:
    """The built pieces of a run and the record of which plugins provided them."""

    model: WAE
    cost: Cost
    penalty: LatentPenalty
    network: Network
    decoder_output: str
    plugins: dict[str, dict[str, Any]]


#: kind -> plugin object that :func:`build_components` uses instead of creating one.
_GIVEN: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "wae_toolkit_given_plugins", default=None
)


@contextlib.contextmanager
def given_plugins(objects: dict[str, Any]) -> Iterator[None]:
    """While the block runs, :func:`build_components` uses these plugin objects (``kind ->
    instance``, e.g. from :func:`wae_toolkit.fit`) as they are, instead of creating new ones from
    the configuration's names and options. Validation still builds throw-away copies."""
    token = _GIVEN.set(dict(objects))
    try:
        yield
    finally:
        _GIVEN.reset(token)


def _given_or_create(kind: str, name: str, **options: Any) -> Any:
    given = _GIVEN.get() or {}
    return given[kind] if kind in given else create(kind, name, **options)


def decoder_output_for(value_range: tuple[float, float] | None) -> str:
    """The decoder's last activation for data in ``value_range``: sigmoid, tanh or linear."""
    if value_range is None:
        return "linear"
    lo, hi = value_range
    if lo >= 0.0 and hi <= 1.0:
        return "sigmoid"
    if lo >= -1.0 and hi <= 1.0:
        return "tanh"
    return "linear"


def _record(kind: str, name: str, obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    info = get_plugin_info(kind, name)
    opts = {k: v for k, v in resolved_options(obj).items() if k not in skip}
    return {
        "name": name,
        "options": opts,
        "class": info.target,
        "distribution": info.distribution,
        "version": info.version,
    }


def _check_data_shape(
    sample_shape: tuple[int, ...], value_range: tuple[float, float] | None
) -> tuple[tuple[int, ...], tuple[float, float] | None]:
    """The sample shape and value range, checked (they may come from a run's config.json)."""
    if not shape_ok(sample_shape):
        raise DataError(f"The data's sample shape must be {SHAPE_RULE}; got {sample_shape!r}.")
    if not value_range_ok(value_range):
        raise DataError(f"The data's value range must be {RANGE_RULE}; got {value_range!r}.")
    low_high = None if value_range is None else (float(value_range[0]), float(value_range[1]))
    return tuple(sample_shape), low_high


def _build_plugins(config: RunConfig, latent: int) -> tuple[Any, Any, Any, Any]:
    """The cost, prior, penalty and network, each created once, in this order as always (so
    plugins that draw random numbers get the same ones); every problem at once."""
    problems: list[str] = []
    causes: list[BaseException] = []

    def make(kind: str, **options: Any) -> Any:
        name = getattr(config, kind)
        try:
            with _plain_errors(f"The {kind} '{name}'"):
                return _given_or_create(kind, name, **options)
        except UsageError as exc:
            problems.append(_naming(kind, name, str(exc)))
            causes.extend([exc.__cause__] if exc.__cause__ is not None else [])
            return None

    cost = make("cost", **config.cost_opts)
    prior_opts = {k: v for k, v in config.prior_opts.items() if k != "dim"}
    prior = make("prior", dim=latent, **prior_opts)
    penalty = make("penalty", **config.penalty_opts)
    network = make("network", **config.network_opts)
    if prior is not None:
        problems += prior_dim_problems(config, prior, latent)
        if not problems:
            with torch.random.fork_rng(devices=[]):
                _samples_ok(prior, latent, config.prior, problems, causes)
    if penalty is not None:
        problems += encoder_problems(config, type(penalty))
    if problems:
        raise UsageError("\n".join(problems)) from (causes[0] if causes else None)
    return cost, prior, penalty, network


def build_components(
    config: RunConfig,
    sample_shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
) -> Components:
    """Create the plugins named in ``config`` and assemble the model (on CPU).

    This is the one place a run's plugins are built, once each; the checks that need built
    objects happen here, on the objects that are then trained: the values each constructor
    accepts, the prior's dimension and samples, the penalty's encoder and its binding to the
    prior (:meth:`RunConfig.validate` with ``build=False`` checks the rest without building).

    Raises:
        UsageError: a bad configuration (every problem at once, one sentence each: unknown
            plugins or options, values a plugin refuses, a prior whose dimension is not the
            latent dimension, a penalty that needs a Gaussian encoder), or a model too large
            to allocate.
        DataError: a bad sample shape or value range, a cost that cannot be used with this
            data's value range, or a network that cannot handle samples of ``sample_shape``.
    """
    shape, value_range = _check_data_shape(sample_shape, value_range)
    if config.latent_dim is None:
        config = dataclasses.replace(config, latent_dim=config.resolved_latent_dim(shape))
    config.validate(build=False)
    assert config.latent_dim is not None
    output = decoder_output_for(value_range)
    with torch.random.fork_rng(devices=[]):
        too_big = _memory_problem(config, config.latent_dim, shape, output)
    if too_big:  # refused before anything large is allocated
        raise UsageError(too_big)
    cost, prior, penalty, network = _build_plugins(config, config.latent_dim)
    need = type(cost).data_range
    if need is not None:
        lo, hi = need
        if value_range is None or value_range[0] < lo or value_range[1] > hi:
            have = (
                "unbounded" if value_range is None else f"in [{value_range[0]}, {value_range[1]}]"
            )
            raise DataError(
                f"The cost '{config.cost}' needs data in [{lo}, {hi}], but this data is {have}; "
                f"use {setting('cost', 'l2')} or l1, or rescale the data."
            )
    network.check_shape(shape)
    gaussian = config.encoder == "gaussian"
    with _plain_errors(f"The network '{config.network}' for data of shape {shape}"):
        encoder = network.build_encoder(shape, config.latent_dim, gaussian=gaussian)
        decoder = network.build_decoder(shape, config.latent_dim, output=output)
    model = WAE(encoder, decoder, prior, gaussian=gaussian, data_shape=shape)
    with _plain_errors(f"The penalty '{config.penalty}' with the prior '{config.prior}'"):
        penalty.bind(prior)
    plugins = {
        "cost": _record("cost", config.cost, cost),
        "penalty": _record("penalty", config.penalty, penalty),
        "prior": _record("prior", config.prior, prior, skip=("dim",)),
        "network": _record("network", config.network, network),
    }
    return Components(model, cost, penalty, network, output, plugins)
