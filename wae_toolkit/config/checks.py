"""The checks of a run's settings that need nothing but their values: types, ranges and
combinations, one sentence per problem. :meth:`RunConfig.problems` is :func:`value_problems`."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from wae_toolkit.config.optimizers import OPTIMIZERS
from wae_toolkit.config.schedules import SCHEDULES, WARMUP_FRACTIONS
from wae_toolkit.config.trackers import TRACKERS
from wae_toolkit.devices import DEVICE_NAMES
from wae_toolkit.errors import did_you_mean, on_cli, setting
from wae_toolkit.errors import short_repr as _show
from wae_toolkit.limits import MAX_SEED
from wae_toolkit.memory import parse_bytes

__all__ = [
    "value_problems",
    "missing_tracker_packages",
    "is_number",
    "is_finite_number",
    "MAX_LATENT_DIM",
    "MAX_THREADS",
]

PAPER_BETAS = (0.5, 0.999)
DEFAULT_LATENT_DIM = 8
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
#: The modes of ``torch.compile`` a run may name (``compile_mode``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: The held-out metrics ``monitor`` may name (lower is better); the first is the default.
MONITORS = ("test_objective", "test_cost", "test_penalty", "test_mmd")
ENCODERS = ("deterministic", "gaussian")
#: Upper bounds of some settings: beyond them torch fails with an overflow or the model cannot
#: be allocated, so they are refused up front with a clear message.
MAX_LATENT_DIM = 1 << 16
MAX_THREADS = (1 << 31) - 1  # torch.set_num_threads takes a C int


def value_problems(c: Any) -> list[str]:
    """Every problem with the values, one sentence each (empty when the config is valid).

    Only the values themselves are checked here (types, ranges, combinations of settings);
    :meth:`RunConfig.validate` adds the checks that need the plugin classes.
    """
    p: list[str] = []

    is_int, is_num = _is_int, is_finite_number
    int64 = (1 << 63) - 1  # counts beyond 64 bits overflow torch and checkpoints

    def bounded(name: str, low: int, high: int = int64) -> None:
        v = getattr(c, name)
        if not is_int(v) or v < low:
            p.append(f"{name} must be an integer >= {low}; got {_show(v)}.")
        elif v > high:
            p.append(f"{name} must be an integer from {low} to {high}; got {_show(v)}.")

    if c.latent_dim is not None:
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
    if is_int(c.batch_size) and c.batch_size == 1:
        p.append("batch_size must be >= 2: latent penalties compare a batch of codes.")
    for name in ("input_noise", "logvar_l1"):
        v = getattr(c, name)
        if not is_num(v) or v < 0:
            p.append(f"{name} must be a finite number >= 0; got {_show(v)}.")
    bounded("skip_bad_steps", 0)
    if not _is_one_of(c.optimizer, tuple(OPTIMIZERS)):
        hint = did_you_mean(c.optimizer, OPTIMIZERS) if isinstance(c.optimizer, str) else ""
        p.append(
            f"Unknown optimizer {_show(c.optimizer)}.{hint} Optimizers: {', '.join(OPTIMIZERS)}."
        )
    opts = c.optimizer_opts
    if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
        p.append(f"optimizer_opts must be a mapping of option names to values; got {_show(opts)}.")
    if c.clip_grad is not None and (not is_num(c.clip_grad) or c.clip_grad <= 0):
        p.append(
            f"clip_grad must be a finite number > 0, or null for no clipping; "
            f"got {_show(c.clip_grad)}."
        )
    bounded("pretrain_steps", 0)
    if is_num(c.logvar_l1) and c.logvar_l1 > 0 and c.encoder == "deterministic":
        p.append(
            f"logvar_l1 applies to a Gaussian encoder only; add {setting('encoder', 'gaussian')}."
        )
    if not is_num(c.lam) or c.lam < 0:
        p.append(f"lam{_flag('lam')} must be a finite number >= 0; got {_show(c.lam)}.")
    if not is_num(c.lr) or c.lr <= 0:
        p.append(f"lr must be a finite number > 0; got {_show(c.lr)}.")
    for name in ("beta1", "beta2"):
        v = getattr(c, name)
        if not is_num(v) or not 0 <= v < 1:
            p.append(f"{name} must be a number in [0, 1); got {_show(v)}.")
    if not _is_one_of(c.encoder, ENCODERS):
        p.append(f"encoder must be one of {', '.join(ENCODERS)}; got {_show(c.encoder)}.")
    if not isinstance(c.compile, bool):
        p.append(f"compile must be true or false; got {_show(c.compile)}.")
    if not _is_one_of(c.compile_mode, COMPILE_MODES):
        modes = ", ".join(COMPILE_MODES)
        p.append(f"compile_mode must be one of {modes}; got {_show(c.compile_mode)}.")
    elif c.compile_mode != "default" and c.compile is False:
        p.append(
            f"compile_mode {c.compile_mode} applies to a compiled step; add "
            f"{setting('compile', True)}, or leave the mode out."
        )
    if not isinstance(c.overwrite, bool):
        p.append(f"overwrite must be true or false; got {_show(c.overwrite)}.")
    if not isinstance(c.device, str) or not DEVICE_NAMES.fullmatch(c.device):
        p.append(f"device must be auto, cpu, cuda, cuda:N or mps; got {_show(c.device)}.")
    if not _is_one_of(c.precision, PRECISIONS):
        p.append(f"precision must be one of {', '.join(PRECISIONS)}; got {_show(c.precision)}.")
    elif c.precision == "bf16" and isinstance(c.device, str) and c.device == "mps":
        p.append("precision bf16 runs on cpu and cuda devices; use fp32 on mps.")
    elif c.precision in ("fp16", "tf32") and c.device in ("cpu", "mps"):
        p.append(cuda_only(c.precision, c.device))
    if c.threads is not None:
        bounded("threads", 1, MAX_THREADS)
    bounded("seed", 0, MAX_SEED)
    if c.out is not None and (not isinstance(c.out, str) or not c.out.strip()):
        p.append(
            "out must be a folder path (leave it out for a new folder under runs/); "
            f"got {_show(c.out)}."
        )
    p += schedule_problems(c)
    p += loop_feature_problems(c)
    p += data_problems(c)
    for name in ("data", "network", "cost", "penalty", "prior"):
        v = getattr(c, name)
        if name != "data" and (not isinstance(v, str) or not v.strip()):
            p.append(f"{name} must be a non-empty name; got {_show(v)}.")
        opts = getattr(c, f"{name}_opts")
        if not isinstance(opts, dict) or not all(isinstance(k, str) for k in opts):
            p.append(f"{name}_opts must be a mapping of option names to values; got {_show(opts)}.")
    p += prior_option_problems(c)
    p += tracking_problems(c)
    return p


def data_problems(c: Any) -> list[str]:
    """``data`` is a name, a path or data given in Python; ``test`` goes with the latter."""
    from wae_toolkit.data.objects import input_kind

    data, test = c.data, c.test
    if isinstance(data, dict) and "kind" in data:  # a config.json's record of Python data
        return [
            f"This run was trained on data given in Python ({_show(data.get('kind'))}, shape "
            f"{data.get('shape', '?')}), which its config.json describes but does not hold; it "
            "cannot be repeated from the command line: pass the data again, "
            "fit(config, data=...)."
        ]
    if isinstance(data, str):
        if not data.strip():
            return [f"data must be a non-empty name or path; got {_show(data)}."]
        if test is not None:
            return [
                "test= takes the held-out part of data given in Python; for a file, use "
                f"{setting('data_opts', 'test=FILE')}."
            ]
        return []
    allowed = (
        "a name or path, a NumPy array or tensor, a pair (X, y), a torch Dataset or "
        "IterableDataset, or a DataLoader"
    )
    if input_kind(data) is None:
        return [f"data must be {allowed}; got {_show(data)}."]
    if test is not None and input_kind(test) is None:
        return [f"test must be of the same kinds as data ({allowed[12:]}); got {_show(test)}."]
    return []


def tracking_problems(c: Any) -> list[str]:
    track = c.track
    allowed = ", ".join(TRACKERS)
    names = isinstance(track, list | tuple) and all(isinstance(t, str) for t in track)
    if not names:
        p = [f"track must be a list of tracker names ({allowed}); got {_show(track)}."]
    else:
        unknown = [t for t in dict.fromkeys(track) if t not in TRACKERS]  # each name once
        if len(unknown) == 1:
            t = unknown[0]
            hint = did_you_mean(t, TRACKERS)
            p = [f"Unknown tracker {_show(t)} in track.{hint} Trackers: {allowed}."]
        elif unknown:  # one setting, one sentence
            shown = ", ".join(_show(t) for t in unknown)
            p = [f"Unknown trackers {shown} in track. Trackers: {allowed}."]
        else:
            p = []
    uri = c.tracking_uri
    if uri is not None and (not isinstance(uri, str) or not uri.strip()):
        p.append(
            "tracking_uri must be an MLflow tracking URI (sqlite:///mlflow.db, mlflow.db, "
            f"http://host:5000...), or null for the default; got {_show(uri)}."
        )
    elif uri is not None and names and "mlflow" not in track:
        p.append(
            f"tracking_uri{_flag('tracking_uri')} is MLflow's; add {setting('track', 'mlflow')}."
        )
    if not isinstance(c.experiment, str) or not c.experiment.strip():
        p.append(f"experiment must be a non-empty name; got {_show(c.experiment)}.")
    return p


def missing_tracker_packages(c: Any) -> list[str]:
    """One sentence per tracker in ``track`` whose package is not installed (checked without
    importing it)."""
    import importlib.util

    problems: list[str] = []
    if not isinstance(c.track, list | tuple):
        return problems  # problems() names it
    for name in dict.fromkeys(t for t in c.track if isinstance(t, str) and t in TRACKERS):
        spec = TRACKERS[name]
        try:
            found = importlib.util.find_spec(spec.package) is not None
        except (ImportError, ValueError):  # a broken installation counts as missing
            found = False
        if not found:
            problems.append(
                f"{setting('track', name)} needs {spec.label}, which is not installed: "
                f"pip install 'wae-toolkit[{spec.extra}]'."
            )
    return problems


#: fp16 needs a gradient scaler and CUDA's fp16 kernels.
FP16_ON_CUDA_ONLY = (
    "precision fp16 (with a gradient scaler) runs on CUDA GPUs only, and this run's device is "
    "{device}; use {bf16} or fp32 there."
)
#: The precisions that only CUDA has, with what to say on another device (:func:`cuda_only`).
CUDA_ONLY = {
    "fp16": FP16_ON_CUDA_ONLY,
    "tf32": "precision tf32 (TF32 tensor-core matmuls) runs on CUDA GPUs only, and this run's "
    "device is {device}; use {fp32} there.",
}


def cuda_only(precision: str, device: str) -> str:
    """The sentence refusing ``precision`` (a key of :data:`CUDA_ONLY`) on ``device``."""
    return CUDA_ONLY[precision].format(
        device=device, bf16=setting("precision", "bf16"), fp32=setting("precision", "fp32")
    )


def loop_feature_problems(c: Any) -> list[str]:
    """The schedule's name and warm-up, the moving average, the monitored metric, patience."""
    p: list[str] = []
    if not _is_one_of(c.schedule, tuple(SCHEDULES)):
        hint = did_you_mean(c.schedule, SCHEDULES) if isinstance(c.schedule, str) else ""
        p.append(f"Unknown schedule {_show(c.schedule)}.{hint} Schedules: {', '.join(SCHEDULES)}.")
    if c.warmup_steps is not None:
        if not _is_int(c.warmup_steps) or not 0 <= c.warmup_steps <= MAX_SEED:
            p.append(
                f"warmup_steps must be an integer from 0 to {MAX_SEED}, or null for the "
                f"schedule's default; got {_show(c.warmup_steps)}."
            )
        elif isinstance(c.schedule, str) and c.schedule not in WARMUP_FRACTIONS:
            p.append(
                f"warmup_steps applies to the {' and '.join(WARMUP_FRACTIONS)} schedules; add "
                f"{setting('schedule', 'cosine')} (or onecycle), or drop "
                f"{setting('warmup_steps')}."
            )
    if c.memory_budget is not None and parse_bytes(c.memory_budget) is None:
        p.append(
            "memory_budget must be a size such as 8GB, 512MiB or a number of bytes > 0, or null "
            f"for half of the memory free; got {_show(c.memory_budget)}."
        )
    if c.workers is not None and (not _is_int(c.workers) or not 0 <= c.workers <= 256):
        p.append(f"workers must be an integer from 0 to 256, or null; got {_show(c.workers)}.")
    if c.lr_schedule and c.schedule != "steps":  # factors given ([] and None name none)
        p.append(
            f"lr_schedule{_flag('lr_schedule')} sets the factors of the steps schedule; drop "
            f"it, or use {setting('schedule', 'steps')}."
        )
    if c.ema is not None and (not is_finite_number(c.ema) or not 0 <= c.ema < 1):
        p.append(
            f"ema must be a decay between 0 and 1 (such as 0.999), or 0 for none; "
            f"got {_show(c.ema)}."
        )
    if not _is_one_of(c.monitor, MONITORS):
        hint = did_you_mean(c.monitor, MONITORS) if isinstance(c.monitor, str) else ""
        p.append(f"Unknown monitor {_show(c.monitor)}.{hint} Metrics: {', '.join(MONITORS)}.")
    if c.patience is not None and (not _is_int(c.patience) or not 1 <= c.patience <= MAX_SEED):
        p.append(
            f"patience must be an integer from 1 to {MAX_SEED} (evaluations), or null to "
            f"never stop early; got {_show(c.patience)}."
        )
    return p


def schedule_problems(c: Any) -> list[str]:
    schedule = c.lr_schedule
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


def prior_option_problems(c: Any) -> list[str]:
    """The prior's ``dim`` is the latent dimension; an explicit ``dim`` option must agree."""
    opts = c.prior_opts
    if not isinstance(opts, dict) or opts.get("dim") is None:
        return []
    dim = _as_int(opts["dim"])
    if dim is None or not 1 <= dim <= MAX_LATENT_DIM:
        return [
            f"prior_opts dim must be an integer from 1 to {MAX_LATENT_DIM} (it is the latent "
            f"dimension, which the toolkit fills in; drop it); got {_show(opts['dim'])}."
        ]
    latent = c.latent_dim
    known = isinstance(latent, int) and _is_int(latent) and 1 <= latent <= MAX_LATENT_DIM
    if not known or latent == dim:  # an unknown latent dimension is checked once resolved
        return []
    return [
        f"The prior's dimension ({dim}) disagrees with the latent dimension ({latent}); "
        "drop the prior's dim option or make them equal."
    ]


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


def _flag(name: str) -> str:
    """`` (--flag)`` after a setting's name on the command line (where files and flags both
    name it), nothing in Python."""
    return f" ({setting(name)})" if on_cli() else ""


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (or integer text such as ``"8"``, or ``8.0``)."""
    from wae_toolkit.plugins.options import convert  # the one conversion rule of CLI text to int

    try:
        return int(convert(value, int))
    except ValueError:
        return None
