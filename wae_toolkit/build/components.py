"""Builds a run's model, cost and penalty from a :class:`~wae_toolkit.config.settings.RunConfig`.

Training and loading a saved run both go through :func:`build_components`, so a run folder
rebuilds exactly what was trained: the plugins are resolved by name through the registry.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from wae_toolkit.config.settings import MAX_LATENT_DIM, RunConfig, is_finite_number
from wae_toolkit.errors import DataError, UsageError, WaeError
from wae_toolkit.plugins.interfaces import Cost, LatentPenalty, Network
from wae_toolkit.memory import total_memory as _total_memory
from wae_toolkit.build.model import WAE
from wae_toolkit.plugins.options import bind_options, resolved_options
from wae_toolkit.plugins.registry import create, get_plugin_class, get_plugin_info

__all__ = [
    "Components",
    "build_components",
    "decoder_output_for",
    "given_plugins",
    "plugin_problems",
    "plugin_problems_and_cause",
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


def plugin_problems(config: RunConfig) -> list[str]:
    """The problems only the plugin classes can tell, one sentence each (empty when none).

    Checks that the cost, penalty, prior and network exist; that their options exist and have
    values their constructors accept (each plugin is created once, then dropped); that a penalty
    which needs the encoder's mean and variance (``kl``) gets a Gaussian encoder; and, when the
    latent dimension is known, that the prior is built with it and that the penalty accepts the
    prior. Nothing is trained and no data are read. Settings that :meth:`RunConfig.problems`
    already refuses (a name that is not text, options that are not a mapping) are skipped here.
    """
    return plugin_problems_and_cause(config)[0]


def plugin_problems_and_cause(config: RunConfig) -> tuple[list[str], BaseException | None]:
    """:func:`plugin_problems`, and the first unexpected exception a plugin raised (kept as the
    ``__cause__`` of the error, so ``--verbose`` shows where it came from).

    Torch's global random state is restored afterwards: creating the plugins (a critic's
    initial weights) must not change what a seeded run does next.
    """
    with torch.random.fork_rng(devices=[]):
        return _plugin_problems(config)


def _plugin_problems(config: RunConfig) -> tuple[list[str], BaseException | None]:
    problems: list[str] = []
    causes: list[BaseException] = []
    classes: dict[str, type] = {}
    built: dict[str, Any] = {}
    latent = config.latent_dim
    if not (
        isinstance(latent, int) and not isinstance(latent, bool) and 1 <= latent <= MAX_LATENT_DIM
    ):
        latent = None  # unknown yet (resolved from the data) or refused by RunConfig.problems
    for kind in ("cost", "penalty", "network", "prior"):
        name, opts = getattr(config, kind), getattr(config, f"{kind}_opts")
        if not isinstance(name, str) or not name.strip():
            continue
        try:
            classes[kind] = get_plugin_class(kind, name)
        except UsageError as exc:
            problems.append(str(exc))
            continue
        if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
            continue
        try:
            with _plain_errors(f"The {kind} '{name}'"):
                if kind != "prior":
                    built[kind] = create(kind, name, **opts)
                    continue
                opts = {k: v for k, v in opts.items() if k != "dim"}  # RunConfig checks dim
                bind_options(classes[kind], opts, kind, name)
                if latent is None:  # the dimension comes from the data: options checked only
                    continue
                too_big = _memory_problem(config, latent)
                if too_big:  # refused before allocating, which could end in the OOM killer
                    problems.append(too_big)
                    continue
                built[kind] = create(kind, name, dim=latent, **opts)
        except UsageError as exc:
            problems.append(_naming(kind, name, str(exc)))
            if exc.__cause__ is not None:
                causes.append(exc.__cause__)
    penalty_cls = classes.get("penalty")
    if getattr(penalty_cls, "needs_encoder_stats", False) and config.encoder == "deterministic":
        problems.append(
            f"The penalty '{config.penalty}' needs a Gaussian encoder (its mean and variance); "
            "add --encoder gaussian."
        )
    prior, penalty = built.get("prior"), built.get("penalty")
    if prior is None or latent is None:
        return problems, (causes[0] if causes else None)
    if getattr(prior, "dim", latent) != latent:
        problems.append(
            f"The prior '{config.prior}' has dimension {prior.dim} but the latent dimension is "
            f"{latent}; they must be equal."
        )
    elif _samples_ok(prior, latent, config.prior, problems, causes) and penalty is not None:
        try:  # the penalty takes what it needs from the prior (a critic, its variance...)
            with _plain_errors(f"The penalty '{config.penalty}' with the prior '{config.prior}'"):
                penalty.bind(prior)
        except UsageError as exc:
            problems.append(_naming("penalty", str(config.penalty), str(exc)))
            if exc.__cause__ is not None:
                causes.append(exc.__cause__)
    return problems, (causes[0] if causes else None)


def _samples_ok(
    prior: Any, latent: int, name: str, problems: list[str], causes: list[BaseException]
) -> bool:
    """Draw two samples from ``prior`` (with a generator of its own); note a failure or samples
    that are not ``(2, latent)`` finite numbers in ``problems``."""
    try:
        with _plain_errors(f"The prior '{name}'", "could not draw samples"):
            z = prior.sample(2, generator=torch.Generator().manual_seed(0))
    except UsageError as exc:
        problems.append(_naming("prior", name, str(exc)))
        if exc.__cause__ is not None:
            causes.append(exc.__cause__)
        return False
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != (2, latent):
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        problems.append(
            f"The prior '{name}' draws samples of shape {shape} instead of (n, {latent}); it does "
            "not follow the Prior interface."
        )
        return False
    if not bool(torch.isfinite(z).all()):
        problems.append(
            f"The prior '{name}' draws infinite or NaN samples with these options; give finite "
            "sizes (std, radius, means...)."
        )
        return False
    return True


def _naming(kind: str, name: str, message: str) -> str:
    """``message``, prefixed with the plugin it is about when it does not say so itself."""
    message = " ".join(message.split())  # one line per problem
    if kind in message.lower() or f"'{name}'" in message:
        return message
    return f"Bad options for {kind} '{name}': {message}"


@contextlib.contextmanager
def _plain_errors(what: str, failed: str = "could not be built") -> Iterator[None]:
    """Turn what a plugin raises while it is created or builds its modules into a
    :class:`UsageError` of one sentence: failed allocations (a huge width, dimension or number
    of components), overflows and other errors from inside torch."""
    try:
        yield
    except WaeError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(exc, MemoryError) or "memory" in text.lower():
            message = (
                f"{what} needs more memory than this machine has; use smaller sizes (latent "
                "dimension, widths, layers, components)."
            )
        else:
            detail = text if len(text) <= 200 else text[:197] + "..."
            message = f"{what} {failed} with these options ({type(exc).__name__}: {detail})."
        raise UsageError(message) from exc


def _memory_problem(
    config: RunConfig, latent: int, shape: tuple[int, ...] | None = None, output: str = "linear"
) -> str | None:
    """A message when the prior, the penalty (with its critic) and, given the sample shape, the
    encoder and decoder would not fit in this machine's memory; ``None`` when they fit or the
    size cannot be told.

    The modules are first built on torch's ``meta`` device, which allocates nothing, so a huge
    width, dimension or number of components is refused with a message instead of an
    allocation failure, or the operating system's out-of-memory killer, inside torch.
    """
    total = _total_memory()
    if total is None:
        return None
    prior_opts = {k: v for k, v in config.prior_opts.items() if k != "dim"}
    modules: list[Any] = []
    # Each step on its own: one that cannot run on meta (a plugin reading tensor values) only
    # leaves its modules uncounted; the real build then reports its own errors.
    with torch.device("meta"):
        prior = _or_none(lambda: create("prior", config.prior, dim=latent, **prior_opts))
        penalty = _or_none(lambda: create("penalty", config.penalty, **config.penalty_opts))
        modules += [prior, penalty]
        if prior is not None and penalty is not None:
            _or_none(lambda: penalty.bind(prior))
        if shape is not None:
            network = _or_none(lambda: create("network", config.network, **config.network_opts))
            # a shape the network refuses is reported by the real build, with its own message
            if network is not None and _or_none(lambda: network.check_shape(shape) or True):
                gaussian = config.encoder == "gaussian"
                modules.append(
                    _or_none(lambda: network.build_encoder(shape, latent, gaussian=gaussian))
                )
                modules.append(
                    _or_none(lambda: network.build_decoder(shape, latent, output=output))
                )
    # weights, gradients and Adam's two moments for parameters; buffers once
    need = sum(
        4 * sum(p.numel() * p.element_size() for p in m.parameters())
        + sum(b.numel() * b.element_size() for b in m.buffers())
        for m in modules
        if isinstance(m, torch.nn.Module)
    )
    if need <= total:
        return None
    return (
        f"The model would need about {need / 1e9:.1f} GB (weights, gradients and Adam's state), "
        f"more than this machine's {total / 1e9:.1f} GB of memory; use smaller sizes (latent "
        "dimension, network widths, critic width, mixture components)."
    )


def _or_none(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _check_data_shape(
    sample_shape: tuple[int, ...], value_range: tuple[float, float] | None
) -> tuple[tuple[int, ...], tuple[float, float] | None]:
    """The sample shape and value range, checked (they may come from a run's config.json)."""
    try:
        shape = tuple(sample_shape)
    except TypeError:
        shape = ()
    if not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise DataError(
            f"The data's sample shape must be one or more sizes >= 1; got {sample_shape!r}."
        )
    if value_range is not None:
        ok = (
            isinstance(value_range, tuple | list)
            and len(value_range) == 2
            and all(is_finite_number(v) for v in value_range)
            and value_range[0] <= value_range[1]
        )
        if not ok:
            raise DataError(
                "The data's value range must be two finite numbers [low, high] with low <= high, "
                f"or none; got {value_range!r}."
            )
        value_range = (float(value_range[0]), float(value_range[1]))
    return shape, value_range


def build_components(
    config: RunConfig,
    sample_shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
) -> Components:
    """Create the plugins named in ``config`` and assemble the model (on CPU).

    Raises:
        UsageError: a bad configuration (every problem, with :func:`plugin_problems`: unknown
            plugins or options, a prior whose dimension is not the latent dimension, a penalty
            that needs a Gaussian encoder), or a model too large to allocate.
        DataError: a bad sample shape or value range, a cost that cannot be used with this
            data's value range, or a network that cannot handle samples of ``sample_shape``.
    """
    shape, value_range = _check_data_shape(sample_shape, value_range)
    if config.latent_dim is None:
        config = dataclasses.replace(config, latent_dim=config.resolved_latent_dim(shape))
    config.validate()
    assert config.latent_dim is not None
    output = decoder_output_for(value_range)
    with torch.random.fork_rng(devices=[]):
        too_big = _memory_problem(config, config.latent_dim, shape, output)
    if too_big:  # refused before anything large is allocated
        raise UsageError(too_big)
    # Created in this order, as always: plugins that draw random numbers get the same ones.
    cost = _given_or_create("cost", config.cost, **config.cost_opts)
    prior_opts = {k: v for k, v in config.prior_opts.items() if k != "dim"}
    with _plain_errors(f"The prior '{config.prior}'"):
        prior = _given_or_create("prior", config.prior, dim=config.latent_dim, **prior_opts)
    if prior.dim != config.latent_dim:
        raise UsageError(
            f"The prior '{config.prior}' has dimension {prior.dim} but the latent dimension is "
            f"{config.latent_dim}; they must be equal."
        )
    penalty = _given_or_create("penalty", config.penalty, **config.penalty_opts)
    network = _given_or_create("network", config.network, **config.network_opts)
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
    network.check_shape(shape)
    gaussian = config.encoder == "gaussian"
    with _plain_errors(f"The network '{config.network}' for data of shape {shape}"):
        encoder = network.build_encoder(shape, config.latent_dim, gaussian=gaussian)
        decoder = network.build_decoder(shape, config.latent_dim, output=output)
    model = WAE(encoder, decoder, prior, gaussian=gaussian)
    with _plain_errors(f"The penalty '{config.penalty}' with the prior '{config.prior}'"):
        penalty.bind(prior)
    plugins = {
        "cost": _record("cost", config.cost, cost),
        "penalty": _record("penalty", config.penalty, penalty),
        "prior": _record("prior", config.prior, prior, skip=("dim",)),
        "network": _record("network", config.network, network),
    }
    return Components(model, cost, penalty, network, output, plugins)
