"""A sweep's plan: a run configuration file with a ``[sweep]`` table, read and checked.

The file is an ordinary run configuration (``wae run --config``; TOML, JSON or YAML) that also
holds::

    [sweep]
    name = "ring-lambda"        # the study's name (default: the file's name)
    objective = "w2_samples"    # or test_cost, test_mmd, test_penalty, test_objective
    trials = 20                 # trials in the study, all workers and sessions together
    seeds = 1                   # runs per trial (seeds seed, seed + 1, ...), their mean counts
    prune = true                # stop trials whose held-out metric falls behind
    prune_on = "test_cost"      # the held-out metric pruning compares (see below)
    w2_points = 1000            # points of the W2 objective
    out = "runs/sweeps/ring-lambda"   # the sweep's folder (default runs/sweeps/NAME)

    [sweep.space]
    lam = {low = 1.0, high = 100.0, log = true}

The rest of the file is the base run configuration every trial starts from. Every value the
space can take (both bounds of a range, every choice) is checked with the base configuration
before anything runs, by the same validation as ``wae run``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, did_you_mean
from wae_toolkit.errors import short_repr as _show
from wae_toolkit.sweep.space import Param, apply_params, parse_space

__all__ = ["SweepPlan", "read_plan", "OBJECTIVES", "LOOP_METRICS"]

#: Held-out metrics the training loop reports at each evaluation (and in summary.json).
LOOP_METRICS = ("test_cost", "test_mmd", "test_penalty", "test_objective")
#: What a sweep may minimise: W2 of decoded prior samples to held-out data, or a loop metric.
OBJECTIVES = ("w2_samples", *LOOP_METRICS)
_DEFAULTS: dict[str, Any] = {
    "name": None,
    "objective": "w2_samples",
    "trials": 20,
    "seeds": 1,
    "prune": True,
    "prune_on": None,
    "w2_points": 1000,
    "out": None,
    "space": None,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class SweepPlan:
    """What a ``[sweep]`` file asks for (see the module's docstring)."""

    file: str
    name: str
    objective: str
    trials: int
    seeds: int
    prune: bool
    prune_on: str
    w2_points: int
    out: str | None
    space: tuple[Param, ...]
    base: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    seed: int = 0

    @property
    def folder(self) -> Path:
        """The sweep's folder: ``[sweep] out``, else ``runs/sweeps/NAME``."""
        return Path(self.out) if self.out else Path("runs") / "sweeps" / self.name

    def param(self, name: str) -> Param | None:
        return next((p for p in self.space if p.name == name), None)

    def trial_config(
        self, values: dict[str, Any], seed: int | None = None, out: str | Path | None = None,
        threads: int | None = None,
    ) -> tuple[Any, dict[str, str]]:  # fmt: skip
        """The :class:`~wae_toolkit.RunConfig` of one run of a trial, and where each value came
        from (``file FILE``, ``sweep NAME`` for the searched values, seed and folder)."""
        from wae_toolkit.config.presets import resolve_config

        given = apply_params(self.base, values)
        ours = set(values)
        extra = {"seed": seed, "out": None if out is None else str(out)}
        if threads is not None and "threads" not in given:
            extra["threads"] = threads
        for key, value in extra.items():
            if value is not None:
                given[key] = value
                ours.add(key)
        config, sources = resolve_config(self.preset, given)
        mine, theirs = f"sweep {self.name}", f"file {self.file}"
        for key, source in sources.items():
            if "command line" in source:
                sources[key] = source.replace("command line", mine if key in ours else theirs)
        return config, sources


def read_plan(path: str | Path) -> SweepPlan:
    """Read and check the sweep file ``path``; nothing is trained or written.

    Raises:
        UsageError: one sentence for the first problem: the file itself (as ``wae run`` says
            it), a missing or bad ``[sweep]`` table, a bad space, or a value of the space that
            the run configuration refuses.
    """
    from wae_toolkit.config.configfile import quoted_path, read_config_file

    data = read_config_file(path, sweep=True)
    where = quoted_path(path)
    table = data.pop("sweep", None)
    if not isinstance(table, dict):
        got = "none" if table is None else f"sweep = {_show(table)}"
        raise UsageError(
            f"{where} needs a [sweep] table with the settings to search in [sweep.space] "
            f"(docs/sweeps.md); got {got}."
        )
    for key in ("out", "overwrite"):
        if key in data:
            raise UsageError(
                f"{where} sets {key}, which a sweep sets for each trial (FOLDER/trial-NNNN); "
                "give the sweep's folder as [sweep] out or --out."
            )
    for key in table:
        if key not in _DEFAULTS:
            raise UsageError(
                f"{where}: [sweep] has an unknown key {_show(key)}.{did_you_mean(key, _DEFAULTS)} "
                f"Allowed: {', '.join(_DEFAULTS)}."
            )
    s = {**_DEFAULTS, **table}
    name = s["name"] if s["name"] is not None else re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"{where}: [sweep] name must be 1 to 100 letters, digits, '.', '_' or '-' (it names "
            f"the study and its folder); got {_show(name)}."
        )
    objective = _one_of(where, "objective", s["objective"], OBJECTIVES)
    prune_on = s["prune_on"] or (objective if objective in LOOP_METRICS else "test_cost")
    prune_on = _one_of(where, "prune_on", prune_on, LOOP_METRICS)
    for key in ("trials", "seeds", "w2_points"):
        if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
            raise UsageError(
                f"{where}: [sweep] {key} must be a whole number >= 1; got {_show(s[key])}."
            )
    if not isinstance(s["prune"], bool):
        raise UsageError(f"{where}: [sweep] prune must be true or false; got {_show(s['prune'])}.")
    if s["out"] is not None and (not isinstance(s["out"], str) or not s["out"]):
        raise UsageError(f"{where}: [sweep] out must be a folder's path; got {_show(s['out'])}.")
    preset = data.pop("preset", None)
    space = parse_space(f"{where}: [sweep.space]", s["space"], data)
    plan = SweepPlan(
        str(path), name, objective, s["trials"], s["seeds"], s["prune"], prune_on,
        s["w2_points"], s["out"], tuple(space), data, preset,
    )  # fmt: skip
    return _checked(plan, where)


def _one_of(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(
            f"{where}: [sweep] {key} must be one of {', '.join(allowed)}; got "
            f"{_show(value)}.{did_you_mean(value, allowed)}"
        )
    return str(value)


def _checked(plan: SweepPlan, where: str) -> SweepPlan:
    """The plan with its base seed, once the base configuration and every value of the space
    (each bound, each choice, put into the base alone) pass the run configuration's checks."""
    import dataclasses

    config, _ = plan.trial_config({})
    config.validate()  # builds each plugin once; the base file's own problems, as wae run says
    for param in plan.space:
        for value in param.candidates():
            try:
                plan.trial_config({param.name: value})[0].validate()
            except UsageError as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise UsageError(
                    f"{where}: [sweep.space] {param.name} may be {_show(value)}, which a run "
                    f"refuses: {first}"
                ) from None
    return dataclasses.replace(plan, seed=config.seed)
