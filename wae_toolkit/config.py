"""The configuration of one training run: a plain dataclass, validated, saved as JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from wae_toolkit.errors import UsageError

__all__ = ["RunConfig", "PAPER_BETAS"]

PAPER_BETAS = (0.5, 0.999)
DEFAULT_LATENT_DIM = 8
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
ENCODERS = ("deterministic", "gaussian")


@dataclass
class RunConfig:
    """Everything that defines a run. Defaults give a good WAE-MMD on the ``digits`` data.

    Plugin options (``*_opts``) are keyword arguments of the plugin's constructor; values may be
    CLI text, converted to the declared types when the plugin is created.

    Attributes:
        data: built-in data set name or path (see :mod:`wae_toolkit.data`).
        data_opts: options of the data source (``size``, ``key``, ``test_fraction``...).
        network, cost, penalty, prior: plugin names, resolved through the registry.
        latent_dim: dimension D of the latent space; the prior is built with ``dim=latent_dim``.
            ``None`` (the default) means ``min(8, values per sample)``: 8 as in the paper's MNIST
            setup, 2 for the 2-D toy sets (codes of higher dimension than the data could only
            fill a thin slice of the prior).
        encoder: ``deterministic`` (z = E(x)) or ``gaussian`` (z ~ N(mu(x), diag sigma^2(x))).
        lam: lambda, the weight of the latent penalty.
        epochs, batch_size: length of training and batch size B.
        lr, beta1, beta2: Adam's settings (the paper: 1e-3, 0.5, 0.999).
        lr_schedule: ``[(epoch, factor), ...]``: from that epoch on the learning rate is
            ``lr * factor``; ``[]`` keeps it constant; ``None`` (the default) follows the paper's
            MNIST schedule in proportion to ``epochs``: ``lr / 2`` from 30% of the epochs and
            ``lr / 10`` from 50% (for 100 epochs exactly the paper's ``[(30, 0.5), (50, 0.1)]``).
        seed: seed of every random generator; the same seed gives the same run on CPU.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        threads: CPU threads for training; ``None`` picks one thread for small models on CPU
            (under ``SMALL_MODEL`` parameters, where intra-op parallelism costs more than it
            saves and a busy second core slows it down many times) and torch's default
            otherwise. The previous setting is restored when training ends.
        out: run folder; ``None`` picks a new folder under ``runs/``.
        overwrite: replace a run already in ``out`` instead of refusing.
        log_every: write step losses to ``metrics.jsonl`` every this many steps.
        eval_every: evaluate on the held-out split every this many epochs (and at the end).
        input_noise: standard deviation of Gaussian noise added to the encoder's input during
            training (the reference code's 0.01); the cost compares with the clean input.
        logvar_l1: weight of the L1 penalty ``mean_x sum_d |log sigma_d^2(x)|`` on a Gaussian
            encoder's log-variances (Rubenstein et al.), which keeps the variances from
            collapsing; 0 turns it off.
        pretrain_steps: steps of encoder pre-training before the main loop, matching the mean
            and covariance of the codes to the prior's (the reference code's extra); 0 skips it.
        compile: compile the training step (encoder, decoder, cost and penalty) with
            ``torch.compile``; the first steps take 10-60 s longer, later ones are faster
            (docs/performance.md says by how much).
        precision: ``fp32`` or ``bf16``: with ``bf16`` the encoder and decoder run under bf16
            autocast (CUDA, and CPUs with bf16 instructions) while the cost, the penalty and the
            weights stay in float32.
        checkpoint_every: write a resumable checkpoint every this many steps (and at the end, and
            when interrupted); at most this many steps are lost if the process is killed.
        keep_checkpoints: how many of the newest checkpoints to keep.
        skip_bad_steps: how many steps with a non-finite loss or gradient may be skipped (the
            update is dropped, on the device) before training stops; 0 stops at the first.
    """

    data: str = "digits"
    data_opts: dict[str, Any] = field(default_factory=dict)
    network: str = "mlp"
    network_opts: dict[str, Any] = field(default_factory=dict)
    cost: str = "l2"
    cost_opts: dict[str, Any] = field(default_factory=dict)
    penalty: str = "mmd-imq"
    penalty_opts: dict[str, Any] = field(default_factory=dict)
    prior: str = "gaussian"
    prior_opts: dict[str, Any] = field(default_factory=dict)
    latent_dim: int | None = None
    encoder: str = "deterministic"
    lam: float = 10.0
    epochs: int = 300
    batch_size: int = 100
    lr: float = 1e-3
    beta1: float = PAPER_BETAS[0]
    beta2: float = PAPER_BETAS[1]
    lr_schedule: list[tuple[int, float]] | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    out: str | None = None
    overwrite: bool = False
    log_every: int = 10
    eval_every: int = 10
    input_noise: float = 0.0
    logvar_l1: float = 0.0
    pretrain_steps: int = 0
    compile: bool = False
    precision: str = "fp32"
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    skip_bad_steps: int = 0

    def problems(self) -> list[str]:
        """Every problem with the values, one sentence each (empty when the config is valid)."""
        p: list[str] = []

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        for name in (
            "latent_dim",
            "epochs",
            "batch_size",
            "log_every",
            "eval_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            v = getattr(self, name)
            if name == "latent_dim" and v is None:
                continue
            if not is_int(v) or v < 1:
                p.append(f"{name} must be an integer >= 1; got {v!r}.")
        if is_int(self.batch_size) and self.batch_size == 1:
            p.append("batch_size must be >= 2: latent penalties compare a batch of codes.")
        for name in ("input_noise", "logvar_l1"):
            v = getattr(self, name)
            if not is_num(v) or v < 0:
                p.append(f"{name} must be a finite number >= 0; got {v!r}.")
        if not is_int(self.skip_bad_steps) or self.skip_bad_steps < 0:
            p.append(f"skip_bad_steps must be an integer >= 0; got {self.skip_bad_steps!r}.")
        if not is_int(self.pretrain_steps) or self.pretrain_steps < 0:
            p.append(f"pretrain_steps must be an integer >= 0; got {self.pretrain_steps!r}.")
        if is_num(self.logvar_l1) and self.logvar_l1 > 0 and self.encoder != "gaussian":
            p.append("logvar_l1 applies to a Gaussian encoder only; add --encoder gaussian.")
        if not is_num(self.lam) or self.lam < 0:
            p.append(f"lambda must be a finite number >= 0; got {self.lam!r}.")
        if not is_num(self.lr) or self.lr <= 0:
            p.append(f"lr must be a finite number > 0; got {self.lr!r}.")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not is_num(v) or not 0 <= v < 1:
                p.append(f"{name} must be in [0, 1); got {v!r}.")
        if self.encoder not in ENCODERS:
            p.append(f"encoder must be one of {', '.join(ENCODERS)}; got {self.encoder!r}.")
        if not isinstance(self.compile, bool):
            p.append(f"compile must be true or false; got {self.compile!r}.")
        if self.precision not in PRECISIONS:
            p.append(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}.")
        elif self.precision == "bf16" and str(self.device).startswith("mps"):
            p.append("precision bf16 runs on cpu and cuda devices; use fp32 on mps.")
        dev = str(self.device)
        if dev.split(":")[0] not in DEVICES:
            p.append(f"device must be auto, cpu, cuda, cuda:N or mps; got {dev!r}.")
        if self.threads is not None and (not is_int(self.threads) or self.threads < 1):
            p.append(f"threads must be an integer >= 1; got {self.threads!r}.")
        if not is_int(self.seed) or self.seed < 0:
            p.append(f"seed must be an integer >= 0; got {self.seed!r}.")
        for item in self.lr_schedule or ():
            ok = (
                isinstance(item, list | tuple)
                and len(item) == 2
                and is_int(item[0])
                and item[0] >= 0
                and is_num(item[1])
                and item[1] > 0
            )
            if not ok:
                p.append(f"lr_schedule entries must be (epoch >= 0, factor > 0); got {item!r}.")
        for name in ("data", "network", "cost", "penalty", "prior"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                p.append(f"{name} must be a non-empty name; got {v!r}.")
            if not isinstance(getattr(self, f"{name}_opts"), dict):
                p.append(f"{name}_opts must be a mapping of option names to values.")
        if (
            "dim" in self.prior_opts
            and self.latent_dim is not None
            and str(self.prior_opts["dim"]) != str(self.latent_dim)
        ):
            p.append(
                f"The prior's dimension ({self.prior_opts['dim']}) disagrees with the latent "
                f"dimension ({self.latent_dim}); drop the prior's dim option or make them equal."
            )
        return p

    def validate(self) -> None:
        """Raise :class:`~wae_toolkit.errors.UsageError` listing every problem, if any."""
        problems = self.problems()
        if problems:
            raise UsageError(" ".join(problems) if len(problems) == 1 else "\n".join(problems))

    def resolved_latent_dim(self, sample_shape: tuple[int, ...]) -> int:
        """``latent_dim``, or ``min(8, values per sample)`` when it is None."""
        if self.latent_dim is not None:
            return self.latent_dim
        return min(DEFAULT_LATENT_DIM, math.prod(sample_shape))

    def resolved_schedule(self) -> list[tuple[int, float]]:
        """The schedule in force: ``lr_schedule``, or the paper's proportions when it is None."""
        if self.lr_schedule is None:
            return [(round(0.3 * self.epochs), 0.5), (round(0.5 * self.epochs), 0.1)]
        return [(int(e), float(f)) for e, f in self.lr_schedule]

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate factor in force at ``epoch`` (0-based)."""
        factor = 1.0
        for start, f in sorted(self.resolved_schedule()):
            if epoch >= start:
                factor = f
        return factor

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.lr_schedule is not None:
            d["lr_schedule"] = [list(x) for x in self.lr_schedule]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from a dict (a saved ``config.json``'s ``run`` section); unknown keys refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UsageError(
                f"Unknown run setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}."
            )
        d = dict(d)
        if "lr_schedule" in d and isinstance(d["lr_schedule"], list):
            d["lr_schedule"] = [tuple(x) if isinstance(x, list) else x for x in d["lr_schedule"]]
        return cls(**d)


def parse_schedule(text: str) -> list[tuple[int, float]] | None:
    """Parse ``"30:0.5,50:0.1"`` into ``[(30, 0.5), (50, 0.1)]``; ``"none"`` is ``[]`` (constant)
    and ``"paper"`` is ``None`` (the paper's proportions)."""
    if text.strip().lower() in ("none", "constant", ""):
        return []
    if text.strip().lower() == "paper":
        return None
    out: list[tuple[int, float]] = []
    for part in (s.strip() for s in text.split(",")):
        if not part:
            continue
        epoch, sep, factor = part.partition(":")
        try:
            if not sep:
                raise ValueError
            out.append((int(epoch), float(factor)))
        except ValueError:
            raise UsageError(
                f"--lr-schedule expects EPOCH:FACTOR pairs separated by commas (such as "
                f"30:0.5,50:0.1), 'paper' or 'none'; got '{part}'."
            ) from None
    return out
