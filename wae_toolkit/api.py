"""The Python API for notebooks and scripts: :func:`fit` a WAE, :func:`load` a run.

Both mirror the command line::

    import wae_toolkit as wt

    model = wt.fit(penalty="mmd-imq", epochs=50, out="runs/nb-1")     # like `wae run ...`
    model = wt.fit("exp.toml", seed=2)                                # a config file + overrides
    model = wt.fit(preset="digits-gan", penalty_opts={"hidden": 64})
    model = wt.load("runs/nb-1")                                      # like `wae eval` loads it

    z = model.encode(x)              # codes (B, D): a draw for a Gaussian encoder
    x_hat = model.decode(z)          # (B, *S)
    model.reconstruct(x); model.sample(16); model.interpolate(x0, x1, steps=8)

The returned model is the trained :class:`~wae_toolkit.model.WAE` (a ``torch.nn.Module``) in eval
mode, with ``model.run_dir`` naming its run folder and ``model.summary`` its final metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wae_toolkit.config import RunConfig
from wae_toolkit.errors import UsageError
from wae_toolkit.model import WAE

__all__ = ["fit", "load"]


def fit(
    config: RunConfig | str | Path | None = None,
    *,
    preset: str | None = None,
    callback: Any = None,
    **settings: Any,
) -> WAE:
    """Train a WAE and return it, as ``wae run`` would.

    Args:
        config: a :class:`RunConfig`, or the path of a configuration file (TOML/JSON/YAML, or a
            run's ``config.json`` to repeat it), or None for the defaults.
        preset: a preset's name (below the file and the keyword settings).
        callback: a :class:`wae_toolkit.train.Callback` to follow training.
        settings: run settings by name, as in :class:`RunConfig` (``lam`` or ``lambda``,
            ``penalty_opts={...}``...); they override the file and the preset.

    Returns:
        the trained model in eval mode, with ``run_dir`` and ``summary`` attributes.

    Raises:
        UsageError: a bad setting (one sentence per problem), as on the command line.
    """
    from wae_toolkit.presets import resolve_config
    from wae_toolkit.train import train

    if "lambda" in settings:
        settings["lam"] = settings.pop("lambda")
    if isinstance(config, RunConfig):
        if preset is not None:
            raise UsageError("fit() takes a RunConfig or a preset, not both.")
        defaults = RunConfig().to_dict()
        base = {k: v for k, v in config.to_dict().items() if v != defaults[k]}
        run_config, sources = resolve_config(None, {**base, **settings})
    elif config is None or isinstance(config, str | Path):
        run_config, sources = resolve_config(
            preset, settings, None if config is None else str(config)
        )
    else:
        raise UsageError(
            f"fit() takes a RunConfig, a configuration file's path or None; got "
            f"{type(config).__name__}."
        )
    result = train(run_config, callback=callback, sources=sources)
    return _finish(result.model, result.run_dir, result.summary)


def load(run_dir: str | Path, device: str = "cpu") -> WAE:
    """The trained model of a run folder, in eval mode on ``device`` (nothing is unpickled)."""
    import json

    from wae_toolkit.runs import SUMMARY, load_run

    loaded = load_run(run_dir, device=device)
    summary_path = Path(run_dir) / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return _finish(loaded.model, Path(run_dir), summary)


def _finish(model: WAE, run_dir: Path, summary: dict[str, Any]) -> WAE:
    model.eval()
    model.run_dir = Path(run_dir)
    model.summary = dict(summary)
    return model
