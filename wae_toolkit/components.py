"""Builds a run's model, cost and penalty from a :class:`~wae_toolkit.config.RunConfig`.

Training and loading a saved run both go through :func:`build_components`, so a run folder
rebuilds exactly what was trained: the plugins are resolved by name through the registry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wae_toolkit.config import RunConfig
from wae_toolkit.errors import DataError, UsageError
from wae_toolkit.interfaces import Cost, LatentPenalty, Network
from wae_toolkit.model import WAE
from wae_toolkit.options import resolved_options
from wae_toolkit.registry import create, get_plugin_info

__all__ = ["Components", "build_components", "decoder_output_for"]


@dataclass
class Components:
    """The built pieces of a run and the record of which plugins provided them."""

    model: WAE
    cost: Cost
    penalty: LatentPenalty
    network: Network
    decoder_output: str
    plugins: dict[str, dict[str, Any]]


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


def build_components(
    config: RunConfig,
    sample_shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
) -> Components:
    """Create the plugins named in ``config`` and assemble the model (on CPU).

    Raises:
        UsageError: unknown plugins or options, a prior whose dimension is not the latent
            dimension, or a cost that cannot be used with this data's value range.
        DataError: the network cannot handle samples of ``sample_shape``.
    """
    config.validate()
    if config.latent_dim is None:
        config = dataclasses.replace(config, latent_dim=config.resolved_latent_dim(sample_shape))
    assert config.latent_dim is not None
    cost = create("cost", config.cost, **config.cost_opts)
    prior_opts = {k: v for k, v in config.prior_opts.items() if k != "dim"}
    prior = create("prior", config.prior, dim=config.latent_dim, **prior_opts)
    if prior.dim != config.latent_dim:
        raise UsageError(
            f"The prior '{config.prior}' has dimension {prior.dim} but the latent dimension is "
            f"{config.latent_dim}; they must be equal."
        )
    penalty = create("penalty", config.penalty, **config.penalty_opts)
    network = create("network", config.network, **config.network_opts)
    if type(penalty).needs_encoder_stats and config.encoder != "gaussian":
        raise UsageError(
            f"The penalty '{config.penalty}' needs a Gaussian encoder (its mean and variance); "
            "add --encoder gaussian."
        )

    need = type(cost).data_range
    if need is not None:
        lo, hi = need
        if value_range is None or value_range[0] < lo or value_range[1] > hi:
            have = (
                "unbounded" if value_range is None else f"in [{value_range[0]}, {value_range[1]}]"
            )
            raise DataError(
                f"The cost '{config.cost}' needs data in [{lo}, {hi}], but this data is {have}; "
                "use --cost l2 or l1, or rescale the data."
            )
    shape = tuple(sample_shape)
    network.check_shape(shape)
    gaussian = config.encoder == "gaussian"
    output = decoder_output_for(value_range)
    encoder = network.build_encoder(shape, config.latent_dim, gaussian=gaussian)
    decoder = network.build_decoder(shape, config.latent_dim, output=output)
    model = WAE(encoder, decoder, prior, gaussian=gaussian)
    penalty.bind(prior)
    plugins = {
        "cost": _record("cost", config.cost, cost),
        "penalty": _record("penalty", config.penalty, penalty),
        "prior": _record("prior", config.prior, prior, skip=("dim",)),
        "network": _record("network", config.network, network),
    }
    return Components(model, cost, penalty, network, output, plugins)
