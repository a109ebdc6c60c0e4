"""Presets: the WAE paper's exact setups (and small ``digits`` versions) as named run settings.

``wae run --preset mnist-mmd --data ~/mnist`` fills in every value of the paper's MNIST WAE-MMD
(architecture, lambda, cost scale, optimiser, schedule, batch size, epochs, input noise, encoder
pre-training); any flag given on the command line overrides the preset, and the run's
``config.json`` records where each value came from (``default``, ``preset``, ``command line``).

Sources: Tolstikhin et al., "Wasserstein Auto-Encoders" (ICLR 2018) and its reference code
(``configs.py``), summarised in the table below.

============ ===================================== =====================================
             MNIST 28x28x1                          CelebA 64x64x3
============ ===================================== =====================================
split        train+test shuffled (seed 123),        140x140 centre crop -> 64x64, last 20k
             last 10k held out; [0, 1]              held out; [-1, 1]
latent       8, N(0, I)                             64, N(0, I)
cost         0.05 * sum of squares                  same
lambda       MMD 10, GAN 1                          MMD 100, GAN 1
Adam         lr 1e-3, beta1 0.5; adversary 5e-4     lr 1e-3 (MMD) / 3e-4 (GAN), beta1 0.5;
                                                    adversary 1e-3
schedule     lr/2 at epoch 30, /10 at 50            smooth decay by 100x over 50 epochs
batch        100, 100 epochs                        100, 55 epochs
nets         conv 4x4, 128-1024 channels            conv 5x5, 128-1024 channels
extras       N(0, 0.01^2) input noise, encoder      same
             pre-trained on the prior's moments
============ ===================================== =====================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from wae_toolkit.config.settings import RunConfig
from wae_toolkit.data.expected import CELEBA_FOLDER_TEXT, MNIST_FILES_TEXT
from wae_toolkit.errors import UsageError, did_you_mean, setting

__all__ = ["Preset", "PRESETS", "get_preset", "resolve_config", "MNIST_HINT", "CELEBA_HINT"]

MNIST_HINT = f"a folder holding {MNIST_FILES_TEXT}"
CELEBA_HINT = CELEBA_FOLDER_TEXT
#: Encoder pre-training steps of the presets (the reference code pre-trains briefly).
PRETRAIN_STEPS = 200


@dataclass(frozen=True)
class Preset:
    """A named set of run settings.

    Attributes:
        name: what users type after ``--preset``.
        description: one line for ``wae presets list``.
        values: :class:`~wae_toolkit.config.settings.RunConfig` fields the preset sets.
        data_hint: when set, the preset reads data from a folder the user names with ``--data``;
            the hint says what that folder must hold.
    """

    name: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)
    data_hint: str | None = None


def _smooth_decay(total_factor: float, epochs: int, length: int) -> list[tuple[int, float]]:
    """A per-epoch exponential decay reaching ``total_factor`` after ``epochs`` epochs."""
    return [(e, round(total_factor ** (min(e, epochs) / epochs), 6)) for e in range(1, length)]


_MNIST = {
    "data_opts": {"split": "paper"},
    "network": "conv",
    "network_opts": {"width": 128, "depth": 4, "kernel": 4},
    "cost": "l2",
    "cost_opts": {"scale": 0.05},
    "prior": "gaussian",
    "latent_dim": 8,
    "lr": 1e-3,
    "beta1": 0.5,
    "lr_schedule": [(30, 0.5), (50, 0.1)],
    "batch_size": 100,
    "epochs": 100,
    "input_noise": 0.01,
    "pretrain_steps": PRETRAIN_STEPS,
    "ema": 0,  # the paper's setup has no moving average of the weights
}
_CELEBA = {
    "data_opts": {"crop": 140, "size": 64, "holdout": 20000, "scale": "symmetric"},
    "network": "conv",
    "network_opts": {"width": 128, "depth": 4, "kernel": 5},
    "cost": "l2",
    "cost_opts": {"scale": 0.05},
    "prior": "gaussian",
    "latent_dim": 64,
    "lr": 1e-3,
    "beta1": 0.5,
    "lr_schedule": _smooth_decay(0.01, 50, 55),
    "batch_size": 100,
    "epochs": 55,
    "input_noise": 0.01,
    "pretrain_steps": PRETRAIN_STEPS,
    "ema": 0,  # the paper's setup has no moving average of the weights
}
_DIGITS = {
    "data": "digits",
    "network": "mlp",
    "network_opts": {"hidden": (256, 256)},
    "cost": "l2",
    "cost_opts": {"scale": 1.0},
    "prior": "gaussian",
    "latent_dim": 8,
    "lr": 1e-3,
    "beta1": 0.5,
    "lr_schedule": None,
    "batch_size": 100,
    "epochs": 300,
}
#: The default run's optimisation (chosen at the peers' budget: docs/results.md); the WAE-GAN and
#: VAE presets keep the paper's learning rate and schedule (with the default moving average,
#: as measured in docs/results.md).
_DEFAULT_MMD = {"lam": 5.0, "lr": 3.5e-3, "lr_schedule": [], "ema": 0.995}
_VAE = {"penalty": "kl", "penalty_opts": {}, "encoder": "gaussian", "lam": 1.0}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "mnist-mmd",
            "The paper's MNIST WAE-MMD: conv nets, IMQ kernel, lambda 10, 100 epochs.",
            {**_MNIST, "penalty": "mmd-imq", "penalty_opts": {}, "lam": 10.0},
            MNIST_HINT,
        ),
        Preset(
            "mnist-gan",
            "The paper's MNIST WAE-GAN: latent discriminator 4x512, lambda 1, adversary lr 5e-4.",
            {
                **_MNIST,
                "penalty": "gan-js",
                "penalty_opts": {"hidden": 512, "layers": 4, "lr": 5e-4, "beta1": 0.5},
                "lam": 1.0,
            },
            MNIST_HINT,
        ),
        Preset(
            "mnist-vae",
            "VAE baseline on MNIST with the WAE paper's architecture and cost (penalty kl).",
            {**_MNIST, **_VAE},
            MNIST_HINT,
        ),
        Preset(
            "celeba-mmd",
            "The paper's CelebA WAE-MMD: 64x64, 64-D latent, IMQ kernel, lambda 100, 55 epochs.",
            {**_CELEBA, "penalty": "mmd-imq", "penalty_opts": {}, "lam": 100.0},
            CELEBA_HINT,
        ),
        Preset(
            "celeba-gan",
            "The paper's CelebA WAE-GAN: discriminator 4x1024, log p_Z(z) in its logit, lr 3e-4.",
            {
                **_CELEBA,
                "penalty": "gan-js",
                "penalty_opts": {
                    "hidden": 1024,
                    "layers": 4,
                    "lr": 1e-3,
                    "beta1": 0.5,
                    "prior_logit": True,
                },
                "lam": 1.0,
                "lr": 3e-4,
            },
            CELEBA_HINT,
        ),
        Preset(
            "celeba-vae",
            "VAE baseline on CelebA with the WAE paper's architecture and cost (penalty kl).",
            {**_CELEBA, **_VAE},
            CELEBA_HINT,
        ),
        Preset(
            "digits-mmd",
            "WAE-MMD on the built-in 8x8 digits in seconds on 2 CPU cores (the default run).",
            {**_DIGITS, "penalty": "mmd-imq", "penalty_opts": {}, **_DEFAULT_MMD},
        ),
        Preset(
            "digits-gan",
            "WAE-GAN on the built-in digits: latent discriminator 4x128, about a minute on 2 CPUs.",
            {
                **_DIGITS,
                "penalty": "gan-js",
                "penalty_opts": {"hidden": 128, "layers": 4, "lr": 5e-4, "beta1": 0.5},
                "lam": 3.0,
                "pretrain_steps": PRETRAIN_STEPS,
            },
        ),
        Preset(
            "ring-mmd",
            "WAE-MMD on the 2-D ring of 8 Gaussians with a Gaussian encoder: codes that match "
            "the prior in about 10 s.",
            {
                "data": "ring",
                "latent_dim": 2,
                "epochs": 50,
                "encoder": "gaussian",
                "penalty": "mmd-imq",
                "penalty_opts": {},
                "lam": 40.0,
            },
        ),
        Preset(
            "digits-vae",
            "VAE baseline on the built-in digits with the digits-mmd networks and budget.",
            {**_DIGITS, **_VAE},
        ),
    ]
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name gets a suggestion and the list."""
    if name not in PRESETS:
        raise UsageError(
            f"Unknown preset '{name}'.{did_you_mean(name, PRESETS)} "
            f"Presets: {', '.join(PRESETS)} (see 'wae presets list')."
        )
    return PRESETS[name]


_OPTS = ("data_opts", "network_opts", "cost_opts", "penalty_opts", "prior_opts")


def resolve_config(
    preset: str | None, given: dict[str, Any], config_file: str | None = None
) -> tuple[RunConfig, dict[str, str]]:
    """Combine defaults, a preset, a configuration file and explicitly given values, in that
    order of priority (the last wins).

    Plugin and data options merge key by key: ``--penalty-opt hidden=64`` changes one option of
    the preset's (or file's) penalty and keeps the others. When a later layer names another plugin
    than an earlier one, the earlier options for the old plugin are dropped. A file may name a
    ``preset``; ``preset`` given here overrides it.

    Returns:
        the :class:`RunConfig` and ``sources``: for every field (and every plugin option, as
        ``"penalty_opts.hidden"``) one of ``"default"``, ``"preset NAME"``, ``"file PATH"``,
        ``"command line"`` (or two joined by ``+`` when options merged).
    """
    from wae_toolkit.errors import short_repr as _show

    def differ(a: Any, b: Any) -> bool:
        """``a != b`` for any values (an array from a Python caller compares element-wise)."""
        try:
            return bool(a != b)
        except Exception:  # no single truth value: count them as different
            return a is not b

    def empty(value: Any) -> bool:
        """Options that add nothing: None or an empty mapping (also ``""``, ``[]``, ``0`` from
        a Python caller, as before)."""
        try:
            return not value
        except Exception:  # an object without a truth value: validation names it
            return False

    names = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted((k for k in given if k not in names), key=str)
    if unknown:
        hint = did_you_mean(unknown[0], names) if len(unknown) == 1 else ""
        raise UsageError(
            f"Unknown run setting(s) {', '.join(_show(k) for k in unknown)}.{hint} "
            f"Allowed: {', '.join(sorted(names))}."
        )
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from wae_toolkit.config.configfile import read_config_file

        from_file = read_config_file(config_file)
        preset = preset or from_file.get("preset")
        from_file = {k: v for k, v in from_file.items() if k != "preset"}
    layers: list[tuple[str, dict[str, Any]]] = []
    p = get_preset(preset) if preset else None
    if p is not None:
        if p.data_hint and "data" not in given and "data" not in from_file:
            raise UsageError(
                f"The preset '{p.name}' reads its data from a folder you name: add "
                f"{setting('data', 'DIR')}, "
                f"{p.data_hint}. Nothing is downloaded."
            )
        layers.append((f"preset {p.name}", p.values))
    if from_file:
        layers.append((f"file {config_file}", from_file))
    layers.append(("command line", given))
    values: dict[str, Any] = {}
    sources = {n: "default" for n in names}
    for label, layer in layers:
        for plugin_field in ("network", "cost", "penalty", "prior"):
            if (
                plugin_field in layer
                and plugin_field in values
                and differ(layer[plugin_field], values[plugin_field])
            ):
                # Naming another plugin drops the earlier options for the old one.
                values.pop(f"{plugin_field}_opts", None)
                sources[f"{plugin_field}_opts"] = "default"
                for k in [s for s in sources if s.startswith(f"{plugin_field}_opts.")]:
                    del sources[k]
        for key, value in layer.items():
            if key in _OPTS:
                if config_file and layer is from_file and not isinstance(value, dict | None):
                    from wae_toolkit.config.configfile import quoted_path

                    raise UsageError(
                        f"{quoted_path(config_file)}: {key} must be a table of option names to "
                        f"values; got {_show(value)}."
                    )
                if empty(value):
                    continue
                if not isinstance(value, dict):
                    values[key] = value  # validation names the problem
                    sources[key] = label
                    continue
                values[key] = {**values.get(key, {}), **value}
                sources[key] = label if sources[key] == "default" else f"{sources[key]} + {label}"
                for k in value:
                    sources[f"{key}.{k}"] = label
            else:
                values[key] = value
                sources[key] = label
    config = RunConfig(**values)
    config.validate(build=False)  # what needs built plugins is checked where they are built
    return config, dict(sorted(sources.items()))
