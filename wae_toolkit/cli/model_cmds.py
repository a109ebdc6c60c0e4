"""``wae sample``, ``wae encode``, ``wae reconstruct``, ``wae interpolate``, ``wae runs list``.

Each loads a finished run folder (safetensors and JSON, nothing unpickled) and writes one file:
``.png`` (an image grid, for image data) or ``.npy`` (the raw array, for any data). An existing
file is never replaced unless ``--overwrite`` is given.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column

from wae_toolkit.cli.terminal import print_fitted
from wae_toolkit.config.checks import is_number
from wae_toolkit.errors import UsageError
from wae_toolkit.limits import MAX_SEED
from wae_toolkit.memory import check_fits

__all__ = [
    "sample_command",
    "encode_command",
    "reconstruct_command",
    "interpolate_command",
    "runs_list_command",
]

out = Console()

_RUN = typer.Argument(..., help="A run folder (written by 'wae run').")
_OVERWRITE = typer.Option(False, help="Replace the output file if it exists.")
_SEED = typer.Option(0, help="Seed of the random draws.")
_DEVICE = typer.Option("cpu", help="cpu, cuda, cuda:N or auto.")
_WEIGHTS = typer.Option(
    "last",
    help="Which weights: last (the run's model.safetensors, the average with --ema), best "
    "(best.safetensors) or raw (the last step's own, with --ema).",
)
_DATA = typer.Option(
    None, help="Data to use (a name or a path, as in 'wae run --data'). [default: the run's own]"
)
_DATA_OPT = typer.Option(None, "--data-opt", help="Option of the data source as NAME=VALUE.")
_SPLIT = typer.Option("test", help="Which split of the data: test (held out) or train.")


def _check_out(path: str, overwrite: bool, allowed: tuple[str, ...]) -> Path:
    p = Path(path)
    if p.suffix.lower() not in allowed:
        raise UsageError(f"--out must end in {' or '.join(allowed)}; got '{p}'.")
    if p.exists() and not overwrite:
        raise UsageError(f"'{p}' exists; choose another --out or pass --overwrite to replace it.")
    if not p.parent.is_dir():
        raise UsageError(f"Cannot write '{p}': the folder '{p.parent}' does not exist.")
    return p


def _write(path: Path, array: Any, loaded: Any, nrow: int = 8) -> None:
    """Write ``array`` (a tensor) as ``.npy``, or as a PNG: a grid of images, or line plots of
    signals."""
    import numpy as np

    if path.suffix.lower() == ".npy":
        np.save(path, array.detach().cpu().numpy(), allow_pickle=False)
        return
    shape = loaded.record["data"]["sample_shape"]
    vr = loaded.record["data"].get("value_range")
    if len(shape) == 2:  # signals (C, L): line plots, one panel each
        from wae_toolkit.runs.data_plots import save_signals

        signals = array.reshape(-1, *shape)
        save_signals(path, f"{len(signals)} signals", signals, value_range=vr and tuple(vr))
        return
    if len(shape) != 3:
        raise UsageError(
            f"A .png draws images or signals; this run's samples are vectors of shape "
            f"{tuple(shape)}: use .npy."
        )
    from wae_toolkit.runs.figures import save_image_grid

    save_image_grid(path, array.reshape(-1, *shape), nrow=nrow, value_range=vr and tuple(vr))


def _load(run: str, device: str, which: str = "last") -> Any:
    from wae_toolkit.runs.restore import load_run

    return load_run(run, device=device, which=which)  # checks the device first, as --device


def _data(loaded: Any, data: str | None, data_opt: list[str] | None, split: str) -> Any:
    """The chosen split of ``data`` (the run's own data and options when not given)."""
    from wae_toolkit.data import load_dataset
    from wae_toolkit.plugins.options import parse_assignments

    if split not in ("test", "train"):
        raise UsageError(f"--split must be test or train; got '{split}'.")
    run = loaded.config
    name = data or run.data
    opts = {**(run.data_opts if data is None else {}), **parse_assignments(data_opt, "--data-opt")}
    dataset = load_dataset(name, opts)
    expected = tuple(loaded.record["data"]["sample_shape"])
    if dataset.sample_shape != expected:
        raise UsageError(
            f"The data '{name}' holds samples of shape {dataset.sample_shape}; this run's model "
            f"takes {expected}."
        )
    x = dataset.test if split == "test" else dataset.train_tensor
    return x.to(next(loaded.model.parameters()).device)


def _check_decoding_fits(
    loaded: Any, n: int, path: Path, what: str, fix: str, codes: int = 1
) -> None:
    """Refuse decoding ``n`` codes (and writing them to ``path``) when that cannot fit in memory.

    Per decoded sample: ``codes`` latent vectors (a line between two codes holds its own), the
    decoder's peak (the largest input plus output of one of its layers, measured by decoding two
    codes), the output, and its copy on the host or, for a ``.png``, the image grid (float32 RGB
    copies of every image, enlarged to 48 pixels as :func:`wae_toolkit.runs.figures.image_grid`
    does).
    """
    import math

    import torch

    model = loaded.model
    param = next(model.parameters())
    shape = tuple(loaded.record["data"]["sample_shape"])
    out = 4 * math.prod(shape)
    peak = 0

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal peak
        tensors = [t for t in (*inputs, output) if isinstance(t, torch.Tensor)]
        peak = max(peak, sum(t.numel() * t.element_size() for t in tensors) // 2)

    leaves = [m for m in model.decoder.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model.decode(torch.zeros(2, model.latent_dim, device=param.device, dtype=param.dtype))
    except Exception:  # a decoder that cannot take this probe: its layers stay uncounted
        peak = 0
    finally:
        for handle in handles:
            handle.remove()
    per_sample = 4 * codes * model.latent_dim + peak + 2 * out
    if path.suffix.lower() == ".png" and len(shape) == 3:
        side = max(1, math.ceil(48 / max(shape[1:]))) * max(shape[1:]) + 2
        per_sample += 4 * out + 16 * 3 * side * side
    check_fits(per_sample * n, what, fix, device=param.device)  # the GPU's and the host's


def sample_command(
    run: str = _RUN,
    n: int = typer.Option(64, "-n", help="How many samples."),
    out_file: str = typer.Option("samples.png", "--out", "-o", help="A .png grid or a .npy."),
    seed: int = _SEED,
    device: str = _DEVICE,
    weights: str = _WEIGHTS,
    overwrite: bool = _OVERWRITE,
) -> None:
    """New samples G(z), z ~ prior, from a trained run."""
    import torch

    if n < 1:
        raise UsageError(f"-n must be an integer >= 1; got {n}.")
    if not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed must be an integer from 0 to 2^63 - 1; got {seed}.")
    path = _check_out(out_file, overwrite, (".png", ".npy"))
    loaded = _load(run, device, weights)
    _check_decoding_fits(loaded, n, path, f"Sampling -n {n:,}", "ask for fewer samples with -n")
    gen = torch.Generator(device=next(loaded.model.parameters()).device).manual_seed(seed)
    _write(path, loaded.model.sample(n, generator=gen), loaded)
    out.print(f"{n} samples -> {escape(str(path))}", soft_wrap=True)


def encode_command(
    run: str = _RUN,
    data: str = _DATA,
    data_opt: list[str] = _DATA_OPT,
    split: str = _SPLIT,
    out_file: str = typer.Option("codes.npy", "--out", "-o", help="A .npy file (N, D)."),
    draw: bool = typer.Option(
        False, help="Draw from a Gaussian encoder instead of taking its mean."
    ),
    device: str = _DEVICE,
    weights: str = _WEIGHTS,
    overwrite: bool = _OVERWRITE,
) -> None:
    """The codes of a data split (the run's held-out data by default), as a .npy array (N, D)."""
    import torch

    path = _check_out(out_file, overwrite, (".npy",))
    loaded = _load(run, device, weights)
    x = _data(loaded, data, data_opt, split)
    with torch.no_grad():
        z = torch.cat([loaded.model.encode(c, sample=draw) for c in x.split(500)])
    _write(path, z, loaded)
    out.print(f"{len(z)} codes of dimension {z.shape[1]} -> {escape(str(path))}", soft_wrap=True)


def reconstruct_command(
    run: str = _RUN,
    data: str = _DATA,
    data_opt: list[str] = _DATA_OPT,
    split: str = _SPLIT,
    n: int = typer.Option(32, "-n", help="How many samples (at most)."),
    out_file: str = typer.Option(
        "reconstructions.png", "--out", "-o", help="A .png (originals and reconstructions) or .npy."
    ),
    device: str = _DEVICE,
    weights: str = _WEIGHTS,
    overwrite: bool = _OVERWRITE,
) -> None:
    """G(E(x)) for the first N samples of a data split; a .png shows each above its original."""
    import torch

    if n < 1:
        raise UsageError(f"-n must be an integer >= 1; got {n}.")
    path = _check_out(out_file, overwrite, (".png", ".npy"))
    loaded = _load(run, device, weights)
    x = _data(loaded, data, data_opt, split)[:n]
    rec = loaded.model.reconstruct(x)
    if path.suffix.lower() == ".png":
        cols = min(8, len(x))
        rows = -(-len(x) // cols)
        pad = rows * cols - len(x)
        both = [torch.cat([t, t[:0].new_zeros(pad, *t.shape[1:])]) for t in (x, rec)]
        grid = torch.stack([b.reshape(rows, cols, *x.shape[1:]) for b in both], 1)
        _write(path, grid.reshape(-1, *x.shape[1:]), loaded, nrow=cols)
    else:
        _write(path, rec, loaded)
    out.print(f"{len(x)} reconstructions -> {escape(str(path))}", soft_wrap=True)


def interpolate_command(
    run: str = _RUN,
    data: str = _DATA,
    data_opt: list[str] = _DATA_OPT,
    split: str = _SPLIT,
    pairs: int = typer.Option(8, help="How many pairs of samples (the first 2 x pairs)."),
    steps: int = typer.Option(10, help="Points on each segment, both ends included."),
    out_file: str = typer.Option(
        "interpolations.png", "--out", "-o", help="A .png (a row per pair) or .npy (P, S, ...)."
    ),
    device: str = _DEVICE,
    weights: str = _WEIGHTS,
    overwrite: bool = _OVERWRITE,
) -> None:
    """Decoded straight lines between the codes of pairs of samples."""
    if pairs < 1 or steps < 2:
        raise UsageError(f"--pairs must be >= 1 and --steps >= 2; got {pairs} and {steps}.")
    path = _check_out(out_file, overwrite, (".png", ".npy"))
    loaded = _load(run, device, weights)
    _check_decoding_fits(
        loaded,
        pairs * steps,
        path,
        f"Interpolating --pairs {pairs:,} with --steps {steps:,}",
        "use fewer --steps (or --pairs)",
        codes=2,
    )
    x = _data(loaded, data, data_opt, split)
    if len(x) < 2 * pairs:
        raise UsageError(f"--pairs {pairs} needs {2 * pairs} samples; the split has {len(x)}.")
    inter = loaded.model.interpolate(x[:pairs], x[pairs : 2 * pairs], steps=steps)
    _write(path, inter if path.suffix == ".npy" else inter.reshape(-1, *x.shape[1:]), loaded, steps)
    out.print(f"{pairs} interpolations of {steps} steps -> {escape(str(path))}", soft_wrap=True)


#: The names ``wae run`` gives run folders: ``<data>-<penalty>-YYYYMMDD-HHMMSS[-N]``.
_RUN_NAME = re.compile(r".+-\d{8}-\d{6}(-\d+)?")
#: The cells of a row besides the run's name.
_CELLS = 7


def _run_entries(root: Path) -> list[Path]:
    """The entries of ``root`` that are (or were meant to be) run folders, newest first: those
    holding a ``config.json`` (even a damaged one) and those named as ``wae run`` names runs."""
    try:
        entries = list(root.iterdir())
    except OSError as exc:
        raise UsageError(f"Cannot read the folder '{root}': {exc.strerror or exc}.") from None
    found = [
        p for p in entries if os.path.lexists(p / "config.json") or _RUN_NAME.fullmatch(p.name)
    ]

    def mtime(p: Path) -> float:
        for q in (p / "config.json", p):
            try:
                return os.lstat(q).st_mtime
            except OSError:
                continue
        return 0.0

    return sorted(found, key=lambda p: (mtime(p), p.name), reverse=True)


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return escape(text if len(text) <= limit else text[: limit - 3] + "...")


def _num(summary: dict[str, Any], key: str) -> str:
    v = summary.get(key)
    if not is_number(v):
        return "-"
    try:
        return f"{float(v):.4g}"
    except OverflowError:  # an int too large for a float
        return "-"


def _run_row(p: Path) -> list[str]:
    """The cells of one entry's row after its name; what is wrong, in a few words, when it is
    not a readable run."""
    from wae_toolkit.engine.checkpoint import latest_checkpoint
    from wae_toolkit.runs.names import CONFIG, SUMMARY
    from wae_toolkit.runs.read import read_run

    def problem(text: str) -> list[str]:
        return [""] * (_CELLS - 1) + [escape(text)]

    if not p.is_dir():
        if p.is_symlink() and not p.exists():
            return problem("broken symbolic link")
        return problem("not a folder")
    folder = read_run(p, latest_checkpoint=latest_checkpoint)
    if folder.config_problem is not None:
        return problem(f"unreadable {CONFIG} ({folder.config_problem})")
    if folder.config is None:
        return problem(f"no {CONFIG}")
    run = folder.config.get("run")
    if not isinstance(run, dict):
        return problem(f"unreadable {CONFIG} (no run section)")
    status = folder.status
    if folder.summary_problem is not None:
        status = f"unreadable {SUMMARY} ({folder.summary_problem}); {status}"
    summary = folder.summary or {}
    steps = summary.get("steps")
    return [
        _short(run.get("data", "")),
        _short(run.get("penalty", "")),
        _short(steps) if is_number(steps) else "-",
        _num(summary, "test_cost"),
        _num(summary, "test_mmd"),
        _num(summary, "prior_mmd"),
        escape(status),
    ]


def runs_list_command(
    folder: str = typer.Argument("runs", help="Where to look for run folders."),
) -> None:
    """A table of the runs under FOLDER with their key metrics, newest first."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"'{root}' is not a folder.")
    runs = _run_entries(root)
    rows = []
    for p in runs:
        try:
            cells = _run_row(p)
        except Exception as exc:  # one damaged run never hides the others
            cells = [""] * (_CELLS - 1) + [f"cannot be read ({type(exc).__name__})"]
        rows.append([escape(p.name), *cells])
    if not runs:
        out.print(f"No runs in '{escape(str(root))}'.")
        return
    heads = ("run", "data", "penalty", "steps", "test cost", "test MMD^2", "floor")
    cols = [Column(h, justify="right" if h in heads[3:5] else "left", no_wrap=True) for h in heads]
    labels = ("", "", "steps ", "test cost ", "test MMD^2 ", "floor ", "")  # the narrow table's
    print_fitted(
        out, [*cols, Column("status", min_width=10)], rows, keep=1, joined="results",
        join=lambda cells: "  ".join(f"{lb}{c}" for lb, c in zip(labels, cells, strict=True) if c),
        title=["runs", "in", str(root)],
    )  # fmt: skip
