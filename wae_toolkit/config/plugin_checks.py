"""The checks of a configuration that need the plugin classes: that the plugins exist, that their
options are accepted, that they fit together (the penalty and the encoder, the prior and the latent
dimension) and that the model would fit in memory. :meth:`RunConfig.validate` runs them, so that
every problem is reported, one sentence each, before any data are read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from wae_toolkit.errors import UsageError, WaeError, setting
from wae_toolkit.memory import total_memory as _total_memory
from wae_toolkit.plugins.options import bind_options
from wae_toolkit.plugins.registry import REINSTALL_HINT, create, get_plugin_class

#: A :class:`~wae_toolkit.config.settings.RunConfig` (that module imports this one).
RunConfig = Any

__all__ = [
    "plugin_problems",
    "plugin_problems_and_cause",
    "encoder_problems",
    "prior_dim_problems",
]


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


def plugin_problems_and_cause(
    config: RunConfig, build: bool = True
) -> tuple[list[str], BaseException | None]:
    """:func:`plugin_problems`, and the first unexpected exception a plugin raised (kept as the
    ``__cause__`` of the error, so ``--verbose`` shows where it came from).

    Torch's global random state is restored afterwards: creating the plugins (a critic's
    initial weights) must not change what a seeded run does next.
    """
    with torch.random.fork_rng(devices=[]):
        problems, cause = _plugin_problems(config, build)
    return _hint_once(problems), cause


def _hint_once(problems: list[str]) -> list[str]:
    """The problems, with the reinstall hint of unknown names on the last of them only."""
    tail = f" {REINSTALL_HINT}"
    hinted = [i for i, p in enumerate(problems) if p.endswith(tail)]
    return [p[: -len(tail)] if i in hinted[:-1] else p for i, p in enumerate(problems)]


def _plugin_problems(config: RunConfig, build: bool) -> tuple[list[str], BaseException | None]:
    """With ``build=False`` nothing is constructed: the plugins' classes are looked up and their
    options bound to their constructors' signatures (names and types); the values a constructor
    refuses are then told by :func:`~wae_toolkit.assembly.components.build_components`, which builds
    each plugin once."""
    problems: list[str] = []
    causes: list[BaseException] = []
    classes: dict[str, type] = {}
    built: dict[str, Any] = {}
    latent = config.known_latent_dim()  # None: resolved from the data, or refused already
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
                if not build:
                    skip = ("dim",) if kind == "prior" else ()
                    bind_options(
                        classes[kind], {k: v for k, v in opts.items() if k not in skip}, kind, name
                    )
                    continue
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
    problems += encoder_problems(config, classes.get("penalty"))
    prior, penalty = built.get("prior"), built.get("penalty")
    if prior is None or latent is None:
        return problems, (causes[0] if causes else None)
    if prior_dim_problems(config, prior, latent):
        problems += prior_dim_problems(config, prior, latent)
    elif _samples_ok(prior, latent, config.prior, problems, causes) and penalty is not None:
        try:  # the penalty takes what it needs from the prior (a critic, its variance...)
            with _plain_errors(f"The penalty '{config.penalty}' with the prior '{config.prior}'"):
                penalty.bind(prior)
        except UsageError as exc:
            problems.append(_naming("penalty", str(config.penalty), str(exc)))
            if exc.__cause__ is not None:
                causes.append(exc.__cause__)
    return problems, (causes[0] if causes else None)


def encoder_problems(config: RunConfig, penalty_cls: Any) -> list[str]:
    """The rule that a penalty using the encoder's mean and variance needs a Gaussian encoder."""
    if getattr(penalty_cls, "needs_encoder_stats", False) and config.encoder != "gaussian":
        return [
            f"The penalty '{config.penalty}' needs a Gaussian encoder (its mean and variance); "
            f"add {setting('encoder', 'gaussian')}."
        ]
    return []


def prior_dim_problems(config: RunConfig, prior: Any, latent: int) -> list[str]:
    """The rule that a built prior has the latent dimension (its ``dim`` option is checked by
    :meth:`RunConfig.problems` before anything is built)."""
    if getattr(prior, "dim", latent) != latent:
        return [
            f"The prior '{config.prior}' has dimension {prior.dim} but the latent dimension is "
            f"{latent}; they must be equal."
        ]
    return []


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
