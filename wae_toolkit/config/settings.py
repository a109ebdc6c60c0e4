"""The configuration of one training run: a plain dataclass, validated, saved as JSON."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from wae_toolkit.config.fields import cli
from wae_toolkit.config.trackers import DEFAULT_EXPERIMENT, TRACKERS  # the table of trackers
from wae_toolkit.devices import DEVICE_NAMES
from wae_toolkit.errors import UsageError, did_you_mean
from wae_toolkit.errors import short_repr as _show
from wae_toolkit.limits import MAX_SEED

__all__ = ["RunConfig", "PAPER_BETAS"]

PAPER_BETAS = (0.5, 0.999)
DEFAULT_LATENT_DIM = 8
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
ENCODERS = ("deterministic", "gaussian")
#: Upper bounds of some settings: beyond them torch fails with an overflow or the model cannot
#: be allocated, so they are refused up front with a clear message.
MAX_LATENT_DIM = 1 << 16
MAX_THREADS = (1 << 31) - 1  # torch.set_num_threads takes a C int


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
        cost: the reconstruction cost plugin's name.
        penalty: the latent penalty plugin's name.
        prior: the prior plugin's name.
        network: the network plugin's name (encoder and decoder), resolved by the registry.
        data: built-in data set name or path (see :mod:`wae_toolkit.data`).
        cost_opts: the cost's options.
        penalty_opts: the penalty's options.
        prior_opts: the prior's options (``dim`` comes from ``latent_dim``).
        network_opts: the network's options.
        data_opts: options of the data source (``size``, ``key``, ``test_fraction``...).
        latent_dim: dimension D of the latent space; the prior is built with ``dim=latent_dim``.
            ``None`` (the default) means ``min(8, values per sample)``: 8 as in the paper's MNIST
            setup, 2 for the 2-D toy sets (codes of higher dimension than the data could only
            fill a thin slice of the prior).
        encoder: ``deterministic`` (z = E(x)) or ``gaussian`` (z ~ N(mu(x), diag sigma^2(x))).
        lam: lambda, the weight of the latent penalty.
        epochs: length of training, in passes over the training split.
        batch_size: batch size B (the global batch under several processes).
        lr: Adam's learning rate (the paper: 1e-3).
        beta1: Adam's beta1 (the paper: 0.5).
        beta2: Adam's beta2 (0.999).
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
        checkpoint_every: write a resumable checkpoint every this many steps (and at the end, and
            when interrupted); at most this many steps are lost if the process is killed.
        keep_checkpoints: how many of the newest checkpoints to keep.
        skip_bad_steps: how many steps with a non-finite loss or gradient may be skipped (the
            update is dropped, on the device) before training stops; 0 stops at the first.
        compile: compile the training step (encoder, decoder, cost and penalty) with
            ``torch.compile``; the first steps take 10-60 s longer, later ones are faster
            (docs/performance.md says by how much).
        precision: ``fp32`` or ``bf16``: with ``bf16`` the encoder and decoder run under bf16
            autocast (CUDA, and CPUs with bf16 instructions) while the cost, the penalty and the
            weights stay in float32.
        track: experiment trackers to log the run to: ``"mlflow"``, ``"tensorboard"``,
            ``"wandb"`` (each needs its optional package; see docs/tracking.md). Empty: none.
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
    data: str = field(
        default="digits",
        metadata=cli(
            "Built-in data set (digits, swiss-roll, moons, ring) or a path: .npy/.npz, a folder "
            "of images, or a folder of MNIST IDX files."
        ),
    )
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
    lam: float = field(default=10.0, metadata=cli("Weight of the latent penalty.", "--lambda"))
    epochs: int = field(default=300, metadata=cli("Training epochs.", "--epochs", "-e"))
    batch_size: int = field(default=100, metadata=cli("Batch size.", "--batch-size", "-b"))
    lr: float = field(default=1e-3, metadata=cli("Adam learning rate."))
    beta1: float = field(
        default=PAPER_BETAS[0], metadata=cli("Adam beta1.", default_help="0.5, the paper's")
    )
    beta2: float = field(default=PAPER_BETAS[1], metadata=cli("Adam beta2."))
    lr_schedule: list[tuple[int, float]] | None = field(
        default=None,
        metadata=cli(
            "EPOCH:FACTOR,... learning-rate factors from given epochs (e.g. 30:0.5,50:0.1), or "
            "'none' for a constant rate.",
            default_help="the paper's proportions, lr/2 from 30% of the epochs and lr/10 from 50%",
            parse="schedule",
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
    compile: bool = field(
        default=False,
        metadata=cli("Compile the training step with torch.compile (slower start, faster steps)."),
    )
    precision: str = field(
        default="fp32",
        metadata=cli("fp32, or bf16 autocast for the networks (cost and penalty stay float32)."),
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
                setattr(self, f.name, {k: _plain(v) for k, v in value.items()})
            elif isinstance(value, list | tuple) and f.name in ("lr_schedule", "track"):
                setattr(self, f.name, [_plain(v) for v in value])
            else:
                setattr(self, f.name, _plain(value))

    def problems(self) -> list[str]:
        """Every problem with the values, one sentence each (empty when the config is valid).

        Only the values themselves are checked here (types, ranges, combinations of settings);
        :meth:`validate` adds the checks that need the plugin classes.
        """
        p: list[str] = []

        is_int, is_num = _is_int, is_finite_number
        int64 = (1 << 63) - 1  # counts beyond 64 bits overflow torch and checkpoints

        def bounded(name: str, low: int, high: int = int64) -> None:
            v = getattr(self, name)
            if not is_int(v) or v < low:
                p.append(f"{name} must be an integer >= {low}; got {_show(v)}.")
            elif v > high:
                p.append(f"{name} must be an integer from {low} to {high}; got {_show(v)}.")

        if self.latent_dim is not None:
            bounded("latent_dim", 1, MAX_LATENT_DIM)
        for name in (
            "epochs",
            "batch_size",
            "log_every",
            "eval_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            bounded(name, 1)
        if is_int(self.batch_size) and self.batch_size == 1:
            p.append("batch_size must be >= 2: latent penalties compare a batch of codes.")
        for name in ("input_noise", "logvar_l1"):
            v = getattr(self, name)
            if not is_num(v) or v < 0:
                p.append(f"{name} must be a finite number >= 0; got {_show(v)}.")
        bounded("skip_bad_steps", 0)
        bounded("pretrain_steps", 0)
        if is_num(self.logvar_l1) and self.logvar_l1 > 0 and self.encoder == "deterministic":
            p.append("logvar_l1 applies to a Gaussian encoder only; add --encoder gaussian.")
        if not is_num(self.lam) or self.lam < 0:
            p.append(f"lam (--lambda) must be a finite number >= 0; got {_show(self.lam)}.")
        if not is_num(self.lr) or self.lr <= 0:
            p.append(f"lr must be a finite number > 0; got {_show(self.lr)}.")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not is_num(v) or not 0 <= v < 1:
                p.append(f"{name} must be a number in [0, 1); got {_show(v)}.")
        if not _is_one_of(self.encoder, ENCODERS):
            p.append(f"encoder must be one of {', '.join(ENCODERS)}; got {_show(self.encoder)}.")
        if not isinstance(self.compile, bool):
            p.append(f"compile must be true or false; got {_show(self.compile)}.")
        if not isinstance(self.overwrite, bool):
            p.append(f"overwrite must be true or false; got {_show(self.overwrite)}.")
        if not isinstance(self.device, str) or not DEVICE_NAMES.fullmatch(self.device):
            p.append(f"device must be auto, cpu, cuda, cuda:N or mps; got {_show(self.device)}.")
        if not _is_one_of(self.precision, PRECISIONS):
            p.append(
                f"precision must be one of {', '.join(PRECISIONS)}; got {_show(self.precision)}."
            )
        elif self.precision == "bf16" and isinstance(self.device, str) and self.device == "mps":
            p.append("precision bf16 runs on cpu and cuda devices; use fp32 on mps.")
        if self.threads is not None:
            bounded("threads", 1, MAX_THREADS)
        bounded("seed", 0, MAX_SEED)
        if self.out is not None and (not isinstance(self.out, str) or not self.out.strip()):
            p.append(
                "out must be a folder path (leave it out for a new folder under runs/); "
                f"got {_show(self.out)}."
            )
        p += self._schedule_problems()
        for name in ("data", "network", "cost", "penalty", "prior"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                p.append(f"{name} must be a non-empty name; got {_show(v)}.")
            opts = getattr(self, f"{name}_opts")
            if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
                p.append(
                    f"{name}_opts must be a mapping of option names to values; got {_show(opts)}."
                )
        p += self._prior_dim_problems()
        p += self._tracking_problems()
        return p

    def _tracking_problems(self) -> list[str]:
        track = self.track
        allowed = ", ".join(TRACKERS)
        names = isinstance(track, list | tuple) and all(isinstance(t, str) for t in track)
        if not names:
            p = [f"track must be a list of tracker names ({allowed}); got {_show(track)}."]
        else:
            p = [
                f"Unknown tracker {_show(t)} in track.{did_you_mean(t, TRACKERS)} "
                f"Trackers: {allowed}."
                for t in dict.fromkeys(track)  # each unknown name once
                if t not in TRACKERS
            ]
        uri = self.tracking_uri
        if uri is not None and (not isinstance(uri, str) or not uri.strip()):
            p.append(
                "tracking_uri must be an MLflow tracking URI (sqlite:///mlflow.db, mlflow.db, "
                f"http://host:5000...), or null for the default; got {_show(uri)}."
            )
        elif uri is not None and names and "mlflow" not in track:
            p.append("tracking_uri (--tracking-uri) is MLflow's; add --track mlflow.")
        if not isinstance(self.experiment, str) or not self.experiment.strip():
            p.append(f"experiment must be a non-empty name; got {_show(self.experiment)}.")
        return p

    def missing_tracker_packages(self) -> list[str]:
        """One sentence per tracker in ``track`` whose package is not installed (checked without
        importing it)."""
        import importlib.util

        problems: list[str] = []
        if not isinstance(self.track, list | tuple):
            return problems  # problems() names it
        for name in dict.fromkeys(t for t in self.track if isinstance(t, str) and t in TRACKERS):
            spec = TRACKERS[name]
            try:
                found = importlib.util.find_spec(spec.package) is not None
            except (ImportError, ValueError):  # a broken installation counts as missing
                found = False
            if not found:
                problems.append(
                    f"--track {name} needs {spec.label}, which is not installed: "
                    f"pip install 'wae-toolkit[{spec.extra}]'."
                )
        return problems

    def _schedule_problems(self) -> list[str]:
        schedule = self.lr_schedule
        if schedule is None:
            return []
        if not isinstance(schedule, list | tuple):
            return [
                "lr_schedule must be a list of [epoch, factor] pairs, or null for the paper's; "
                f"got {_show(schedule)}."
            ]
        bad = [
            item
            for item in schedule
            if not (
                isinstance(item, list | tuple)
                and len(item) == 2
                and _is_int(item[0])
                and 0 <= item[0] <= MAX_SEED
                and is_finite_number(item[1])
                and item[1] > 0
            )
        ]
        if not bad:
            return []
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return [
            f"lr_schedule entries must be (epoch from 0 to {MAX_SEED}, factor > 0); "
            f"got {_show(bad[0])}{more}."
        ]

    def _prior_dim_problems(self) -> list[str]:
        """The prior's ``dim`` is the latent dimension; an explicit ``dim`` option must agree."""
        opts = self.prior_opts
        if not isinstance(opts, dict) or opts.get("dim") is None:
            return []
        dim = _as_int(opts["dim"])
        if dim is None or not 1 <= dim <= MAX_LATENT_DIM:
            return [
                f"prior_opts dim must be an integer from 1 to {MAX_LATENT_DIM} (it is the latent "
                f"dimension, which the toolkit fills in; drop it); got {_show(opts['dim'])}."
            ]
        latent = self.latent_dim
        known = isinstance(latent, int) and _is_int(latent) and 1 <= latent <= MAX_LATENT_DIM
        if not known or latent == dim:  # an unknown latent dimension is checked once resolved
            return []
        return [
            f"The prior's dimension ({dim}) disagrees with the latent dimension ({latent}); "
            "drop the prior's dim option or make them equal."
        ]

    def validate(self, *, plugins: bool = True, build: bool = True) -> None:
        """Raise :class:`~wae_toolkit.errors.UsageError` listing every problem, if any.

        Besides :meth:`problems`, the packages of the trackers in ``track`` must be installed.

        Args:
            plugins: also check what needs the plugin classes (see
                :func:`wae_toolkit.config.plugin_checks.plugin_problems`): that the plugins
                exist, that their options exist and have allowed values, that the penalty gets
                the encoder it needs and that the prior has the latent dimension. Nothing is
                trained and no data are read, so every message comes before any work starts.
            build: with ``plugins``, also create each plugin once (then drop it) to check the
                values its constructor accepts, the prior's samples and that the penalty accepts
                the prior. A run passes ``build=False``: it builds its plugins once, in
                :func:`~wae_toolkit.assembly.components.build_components`, which tells the same
                problems.

        Raises:
            UsageError: one line per problem, each a sentence saying what is allowed.
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
        """Build from a dict (a saved ``config.json``'s ``run`` section); unknown keys refused.

        The values are not checked here; :meth:`validate` does it, with one message per problem.

        Raises:
            UsageError: ``d`` is not a mapping, or has keys that are no run setting.
        """
        if not isinstance(d, dict):
            raise UsageError(
                "The run settings must be a mapping (a JSON object) of setting names to values; "
                f"got {_show(d)}."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((k for k in d if k not in names), key=str)
        if unknown:
            raise UsageError(
                f"Unknown run setting(s) {', '.join(_show(k) for k in unknown)}; "
                f"allowed: {', '.join(sorted(names))}."
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


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (tuples and lists item by item); anything
    else as it is."""
    if isinstance(value, tuple | list) and any(type(v).__module__ == "numpy" for v in value):
        return type(value)(_plain(v) for v in value)
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item) and getattr(value, "ndim", 1) == 0:
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """An int or a float, not a bool (which Python counts as an int); NaN and inf included."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A finite int or float (not a bool, not an int too large for a float)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_one_of(value: Any, choices: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value in choices


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (or integer text such as ``"8"``, or ``8.0``)."""
    from wae_toolkit.plugins.options import convert  # the one conversion rule of CLI text to int

    try:
        return int(convert(value, int))
    except ValueError:
        return None
