"""The configuration of one training run: a plain dataclass, validated, saved as JSON."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from wae_toolkit.config.checks import (
    DEFAULT_LATENT_DIM,
    MAX_LATENT_DIM,
    PAPER_BETAS,
    missing_tracker_packages,
    value_problems,
)
from wae_toolkit.config.fields import cli, parse_schedule, plain_value, settings_values
from wae_toolkit.config.optimizers import OPTIMIZERS
from wae_toolkit.config.schedules import factor_at, paper_factors
from wae_toolkit.config.trackers import DEFAULT_EXPERIMENT  # the table of trackers
from wae_toolkit.errors import UsageError

__all__ = ["RunConfig", "PAPER_BETAS", "parse_schedule"]


def _plugin_opts(kind: str) -> dict[str, Any]:
    """The metadata of a plugin's options (``cost_opts``...): ``--KIND-opt NAME=VALUE``."""
    return cli(
        f"Option of the {kind} plugin as NAME=VALUE; repeatable (see 'wae plugins show NAME').",
        f"--{kind}-opt",
        parse="assignments",
    )


@dataclass
class RunConfig:
    """Everything that defines a run. Defaults give a good WAE-MMD on the ``digits`` data.

    Plugin options (``*_opts``) are keyword arguments of the plugin's constructor; values may be
    CLI text, converted to the declared types when the plugin is created.

    Each field declares its ``wae run`` option in its metadata
    (:func:`~wae_toolkit.config.fields.cli`: help, flags, parsing); the command line is built from
    them, in the order of the fields.

    Attributes:
        cost, penalty, prior, network: the plugins' names (the registry resolves them).
        data: built-in data set name or path (see :mod:`wae_toolkit.data`), or data given in
            Python (an array, a tensor, a torch Dataset or DataLoader: docs/data.md).
        test: with data given in Python, its held-out part (else a seeded split).
        cost_opts, penalty_opts, prior_opts, network_opts, data_opts: the options of each
            plugin and of the data source (the prior's ``dim`` comes from ``latent_dim``).
        memory_budget, workers: bytes (or text such as ``"8GB"``) the training data may take
            on the device before they stream from disk (docs/data.md), and the loader's workers.
        latent_dim: dimension D of the latent space (the prior's ``dim``); ``None``:
            ``min(8, values per sample)``, 8 as in the paper, 2 for the 2-D toy sets.
        encoder: ``deterministic`` (z = E(x)) or ``gaussian`` (z ~ N(mu(x), diag sigma^2(x))).
        lam: lambda, the penalty's weight (the paper: 10; the default 5, like ``lr`` and ``ema``,
            comes from a search at the peers' budget: docs/results.md).
        epochs: length of training, in passes over the training split.
        batch_size: batch size B (the global batch under several processes).
        lr, beta1, beta2: the optimizer's learning rate and betas (the paper: 1e-3, 0.5, 0.999).
        optimizer, optimizer_opts: an optimizer of ``torch.optim`` by name (``adam``, the
            default, ``adamw``, ``sgd``...; docs/training.md) and its other arguments.
        lr_schedule: ``[(epoch, factor), ...]``: ``lr * factor`` from that epoch on; ``[]`` (the
            default) keeps it constant; ``None``: the paper's MNIST schedule in proportion to
            ``epochs`` (:func:`~wae_toolkit.config.schedules.paper_factors`).
        schedule, warmup_steps: ``steps`` (the factors of ``lr_schedule``), or per step
            ``cosine`` or ``onecycle`` with ``warmup_steps`` (``None``: 5%, 30% of the steps).
        seed: seed of every random generator; the same seed gives the same run on CPU.
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        threads: CPU threads for training; ``None``: one for models under ``SMALL_MODEL``
            parameters on CPU, torch's default otherwise (restored when training ends).
        out: run folder; ``None`` picks a new folder under ``runs/``.
        overwrite: replace a run already in ``out`` instead of refusing.
        log_every, eval_every: log step losses every this many steps, and evaluate on the
            held-out split every this many epochs (and at the start and the end).
        input_noise: std of Gaussian noise added to the encoder's input in training (the
            reference code's 0.01).
        logvar_l1: weight of the L1 penalty ``mean_x sum_d |log sigma_d^2(x)|`` on a Gaussian
            encoder's log-variances (Rubenstein et al.), which keeps the variances from
            collapsing; 0 turns it off.
        pretrain_steps: steps of encoder pre-training matching the codes' mean and covariance
            to the prior's (the reference code's extra); 0 skips it.
        checkpoint_every, keep_checkpoints: write a resumable checkpoint every this many steps
            (and at the end, and when interrupted), and keep the newest this many.
        skip_bad_steps: how many steps with a non-finite loss or gradient may be skipped
            (their update dropped) before training stops.
        clip_grad: clip the gradients' global norm to this value before each step (``None``:
            no clipping); the logs then hold ``grad_norm`` and ``clipped``.
        ema: decay of a moving average of the weights, updated after every step (0: none); it is
            evaluated, drawn and saved as ``model.safetensors`` (raw weights beside).
        monitor, patience: the held-out metric (lower is better; ``test_objective`` is
            ``test_cost + lam * test_penalty``) that picks ``best.safetensors``, and stopping
            after ``patience`` evaluations without a new best.
        compile, compile_mode: compile the training step with ``torch.compile`` in this mode
            (``reduce-overhead`` replays CUDA graphs: small models; docs/performance.md).
        precision: ``fp32``, ``tf32`` (CUDA: float32 with TF32 matmuls and convolutions),
            ``bf16`` or ``fp16``: the encoder and decoder run under autocast (bf16: CUDA and
            CPUs with bf16 instructions; fp16: CUDA only, with a gradient scaler) while the
            cost, the penalty and the weights stay in float32.
        track: trackers to log the run to: ``mlflow``, ``tensorboard``, ``wandb``
            (docs/tracking.md).
        tracking_uri: the MLflow tracking URI (``sqlite:///path.db`` or a path ending in
            ``.db``, ``http://...``, any URI MLflow takes); ``None`` uses
            ``sqlite:///<folder holding the run folder>/mlflow.db``.
        experiment: the MLflow experiment (the W&B project) the run is logged to (created
            when missing).
    """

    cost: str = field(default="l2", metadata=cli("Reconstruction cost.", complete="cost"))
    penalty: str = field(default="mmd-imq", metadata=cli("Latent penalty D_Z.", complete="penalty"))
    prior: str = field(default="gaussian", metadata=cli("Prior P_Z.", complete="prior"))
    network: str = field(
        default="mlp", metadata=cli("Encoder/decoder architecture.", complete="network")
    )
    data: str | Any = field(  # the command line gives a name or a path; Python also objects
        default="digits",
        metadata=cli(
            "Built-in data set (digits, swiss-roll, moons, ring) or a path: .npy/.npz, a folder "
            "of images, or a folder of MNIST IDX files."
        ),
    )
    #: Data given in Python only: the held-out part, of the same kinds as ``data``.
    test: Any = None
    cost_opts: dict[str, Any] = field(default_factory=dict, metadata=_plugin_opts("cost"))
    penalty_opts: dict[str, Any] = field(default_factory=dict, metadata=_plugin_opts("penalty"))
    prior_opts: dict[str, Any] = field(default_factory=dict, metadata=_plugin_opts("prior"))
    network_opts: dict[str, Any] = field(default_factory=dict, metadata=_plugin_opts("network"))
    data_opts: dict[str, Any] = field(
        default_factory=dict,
        metadata=cli(
            "Option of the data source as NAME=VALUE (size, key, limit...).",
            "--data-opt",
            parse="assignments",
        ),
    )
    memory_budget: str | int | None = field(
        default=None,
        metadata=cli(
            "Memory the training data may take (8GB, 512MiB...); larger data stream from disk.",
            metavar="SIZE",
            default_help="half of the memory free (and of the GPU's)",
        ),
    )
    workers: int | None = field(
        default=None,
        metadata=cli(
            "Data-loader worker processes when the data stream.",
            default_help="up to 4, one core left free",
        ),
    )
    latent_dim: int | None = field(
        default=None,
        metadata=cli(
            "Latent dimension D.",
            "--latent-dim",
            "-d",
            default_help="8, or the data's size when smaller (2 for toy sets)",
        ),
    )
    encoder: str = field(
        default="deterministic", metadata=cli("Encoder kind: deterministic or gaussian.")
    )
    lam: float = field(default=5.0, metadata=cli("Weight of the latent penalty.", "--lambda"))
    epochs: int = field(default=300, metadata=cli("Training epochs.", "--epochs", "-e"))
    batch_size: int = field(default=100, metadata=cli("Batch size.", "--batch-size", "-b"))
    lr: float = field(default=3.5e-3, metadata=cli("Learning rate."))
    beta1: float = field(
        default=PAPER_BETAS[0], metadata=cli("Adam beta1.", default_help="0.5, the paper's")
    )
    beta2: float = field(default=PAPER_BETAS[1], metadata=cli("Adam beta2."))
    optimizer: str = field(
        default="adam",
        metadata=cli(f"Optimizer of torch.optim: {', '.join(OPTIMIZERS)}."),
    )
    optimizer_opts: dict[str, Any] = field(
        default_factory=dict,
        metadata=cli(
            "Option of the optimizer as NAME=VALUE (momentum, weight_decay...); repeatable.",
            "--optimizer-opt",
            parse="assignments",
        ),
    )
    lr_schedule: list[tuple[int, float]] | None = field(
        default_factory=list,
        metadata=cli(
            "EPOCH:FACTOR,... learning-rate factors from given epochs (e.g. 30:0.5,50:0.1), "
            "'paper' (lr/2 from 30% of the epochs, lr/10 from 50%) or 'none'.",
            default_help="none, a constant rate",
            parse="schedule",
        ),
    )
    schedule: str = field(
        default="steps",
        metadata=cli(
            "Learning-rate schedule: steps (the factors of --lr-schedule), cosine (linear "
            "warm-up, then cosine decay to 0) or onecycle (torch's OneCycleLR, peak --lr)."
        ),
    )
    warmup_steps: int | None = field(
        default=None,
        metadata=cli(
            "Steps of linear warm-up of the cosine and onecycle schedules.",
            default_help="5% of the steps for cosine, 30% for onecycle",
        ),
    )
    seed: int = field(default=0, metadata=cli("Random seed; same seed, same run on CPU."))
    device: str = field(default="auto", metadata=cli("auto, cpu, cuda, cuda:N or mps."))
    threads: int | None = field(
        default=None,
        metadata=cli(
            "CPU threads.", default_help="1 for models under 1M parameters on CPU, else all"
        ),
    )
    out: str | None = field(
        default=None,
        metadata=cli("Run folder.", "--out", "-o", default_help="a new folder under runs/"),
    )
    overwrite: bool = field(default=False, metadata=cli("Replace the run already in --out."))
    log_every: int = field(default=10, metadata=cli("Log step losses every N steps."))
    eval_every: int = field(default=10, metadata=cli("Evaluate on held-out data every N epochs."))
    input_noise: float = field(
        default=0.0,
        metadata=cli("Std of Gaussian noise added to the encoder's input in training."),
    )
    logvar_l1: float = field(
        default=0.0, metadata=cli("L1 penalty weight on a Gaussian encoder's log-variances.")
    )
    pretrain_steps: int = field(
        default=0,
        metadata=cli("Encoder pre-training steps matching the codes' moments to the prior's."),
    )
    checkpoint_every: int = field(
        default=500,
        metadata=cli("Write a resumable checkpoint every N steps (also at the end and on Ctrl-C)."),
    )
    keep_checkpoints: int = field(
        default=3, metadata=cli("How many of the newest checkpoints to keep.")
    )
    skip_bad_steps: int = field(
        default=0,
        metadata=cli("Steps with a NaN/infinite loss or gradient to skip before stopping."),
    )
    clip_grad: float | None = field(
        default=None,
        metadata=cli(
            "Clip the gradients' global norm to this value before each step.",
            default_help="no clipping",
        ),
    )
    ema: float | None = field(
        default=0.995,
        metadata=cli(
            "Decay of the moving average of the weights that is evaluated, drawn and exported; "
            "0 turns it off.",
        ),
    )
    monitor: str = field(
        default="test_objective",
        metadata=cli(
            "Held-out metric that picks best.safetensors and early stopping: test_objective "
            "(cost + lambda * penalty), test_cost, test_penalty or test_mmd.",
            metavar="METRIC",
        ),
    )
    patience: int | None = field(
        default=None,
        metadata=cli(
            "Stop after N evaluations without improvement of --monitor.",
            default_help="never stop early",
        ),
    )
    compile: bool = field(
        default=False,
        metadata=cli("Compile the training step with torch.compile (slower start, faster steps)."),
    )
    compile_mode: str = field(
        default="default",
        metadata=cli(
            "torch.compile mode with --compile: default, reduce-overhead (CUDA graphs, for small "
            "models), max-autotune or max-autotune-no-cudagraphs."
        ),
    )
    precision: str = field(
        default="fp32",
        metadata=cli(
            "fp32, tf32 (TF32 matmuls, CUDA only), bf16 autocast, or fp16 autocast with a "
            "gradient scaler (CUDA only); cost and penalty stay float32."
        ),
    )
    track: list[str] = field(
        default_factory=list,
        metadata=cli(
            "Log the run to mlflow, tensorboard or wandb; repeatable or comma-separated "
            "(docs/tracking.md).",
            metavar="NAME",
            complete="trackers",
            parse="names",
        ),
    )
    tracking_uri: str | None = field(
        default=None,
        metadata=cli(
            "MLflow tracking URI (sqlite:///f.db, or a path f.db; http://host:5000...).",
            metavar="URI",
            default_help="sqlite:///RUNS/mlflow.db, beside the run folder",
        ),
    )
    experiment: str = field(
        default=DEFAULT_EXPERIMENT,
        metadata=cli("MLflow experiment of the run, created when missing.", metavar="NAME"),
    )

    def __post_init__(self) -> None:
        """Take what Python callers naturally pass: paths for ``data`` and ``out``, NumPy
        scalars (``np.int64(10)``) for numbers, in the settings and the plugin options."""
        for name in ("data", "out"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                setattr(self, f.name, {k: plain_value(v) for k, v in value.items()})
            elif isinstance(value, list | tuple) and f.name in ("lr_schedule", "track"):
                setattr(self, f.name, [plain_value(v) for v in value])
            else:
                setattr(self, f.name, plain_value(value))

    def problems(self) -> list[str]:
        """Every problem with the values, one sentence each (none: valid): types, ranges,
        combinations (:mod:`wae_toolkit.config.checks`); :meth:`validate` adds the plugins'."""
        return value_problems(self)

    def missing_tracker_packages(self) -> list[str]:
        """One sentence per tracker in ``track`` whose package is not installed (not imported)."""
        return missing_tracker_packages(self)

    def validate(self, *, plugins: bool = True, build: bool = True) -> None:
        """Raise :class:`~wae_toolkit.errors.UsageError` listing every problem (one line each):
        :meth:`problems`, trackers not installed and, with ``plugins``, what needs the plugin
        classes (:func:`~wae_toolkit.config.plugin_checks.plugin_problems_and_cause`), all before
        any data are read. ``build`` also creates each plugin once to check its constructor; a
        run passes ``build=False``, as it builds its plugins once anyway, with the same messages.
        """
        problems = self.problems() + self.missing_tracker_packages()
        cause: BaseException | None = None
        if plugins:
            from wae_toolkit.config.plugin_checks import plugin_problems_and_cause

            more, cause = plugin_problems_and_cause(self, build)
            problems += more
        if problems:
            raise UsageError("\n".join(problems)) from cause

    def known_latent_dim(self) -> int | None:
        """``latent_dim`` when it is given and allowed; None when it comes from the data."""
        latent = self.latent_dim
        ok = isinstance(latent, int) and not isinstance(latent, bool)
        return latent if ok and 1 <= latent <= MAX_LATENT_DIM else None  # type: ignore[operator]

    def resolved_latent_dim(self, sample_shape: tuple[int, ...]) -> int:
        """``latent_dim``, or ``min(8, values per sample)`` when it is None."""
        if self.latent_dim is not None:
            return self.latent_dim
        return min(DEFAULT_LATENT_DIM, math.prod(sample_shape))

    def resolved_schedule(self) -> list[tuple[int, float]]:
        """The schedule in force: ``lr_schedule``, or the paper's proportions when it is None."""
        if self.lr_schedule is None:
            return paper_factors(self.epochs)
        return [(int(e), float(f)) for e, f in self.lr_schedule]

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate factor in force at ``epoch`` (0-based)."""
        return factor_at(self.resolved_schedule(), epoch)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values; data given in Python as what ``config.json`` records of
        them (:func:`~wae_toolkit.data.objects.describe_input`), never the data themselves."""
        from wae_toolkit.data.objects import describe_input, input_kind

        given = {k: getattr(self, k) for k in ("data", "test")}
        described = {k: describe_input(v) for k, v in given.items() if input_kind(v)}
        d = dataclasses.asdict(dataclasses.replace(self, **described) if described else self)  # type: ignore[arg-type]
        if self.lr_schedule is not None:
            d["lr_schedule"] = [list(x) for x in self.lr_schedule]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from a dict (a saved ``config.json``'s ``run`` section); unknown keys refused.
        The values are not checked here; :meth:`validate` does it, one message per problem.

        Raises:
            UsageError: ``d`` is not a mapping, or has keys that are no run setting.
        """
        return cls(**settings_values(d, {f.name for f in dataclasses.fields(cls)}))
