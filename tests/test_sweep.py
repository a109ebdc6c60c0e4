"""``wae sweep``: hyper-parameter search on real Optuna with SQLite studies in tmp_path.

Tiny runs (the ring data set with 400 points, a 16-unit MLP, one to three epochs) keep the whole
file to a few dozen seconds; the studies are checked through Optuna's own API.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from wae_toolkit.cli.app import main  # noqa: E402
from wae_toolkit.errors import UsageError  # noqa: E402

from .test_cli import wae  # noqa: E402

BASE = """
data = "ring"
epochs = {epochs}
eval_every = 1
latent_dim = 2
batch_size = 40
device = "cpu"
[data_opts]
n = 400
[network_opts]
hidden = [16]
"""


def sweep_file(tmp_path: Path, sweep: str, epochs: int = 1, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(epochs=epochs) + sweep)
    return path


LAMBDA = (
    '[sweep]\nname = "t"\ntrials = 3\n[sweep.space]\nlam = {low = 1.0, high = 100.0, log = true}\n'
)
#: The same search on the held-out cost, which needs no OT (POT takes seconds to import).
COST = LAMBDA.replace("trials = 3", 'trials = 3\nobjective = "test_cost"')


def trials_of(folder: Path, name: str = "t") -> list:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    return sorted(study.get_trials(), key=lambda t: t.number)


def recomputed_w2(run_dir: str, points: int = 1000) -> float:
    """W2 of the run's decoded prior samples to its held-out data, recomputed from the folder
    with POT's exact solver."""
    import ot
    import torch

    import wae_toolkit as wt
    from wae_toolkit.data import load_dataset

    model = wt.load(run_dir)
    config = json.loads((Path(run_dir) / "config.json").read_text())["run"]
    test = load_dataset(config["data"], config["data_opts"]).test
    n = min(points, len(test))
    real = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:n]]
    with torch.no_grad():
        z = model.prior.sample(n, generator=torch.Generator().manual_seed(0))
        samples = model.decode(z)
    a, b = (t.reshape(n, -1).double().numpy() for t in (samples, real))
    return math.sqrt(ot.emd2([], [], ot.dist(a, b), numItermax=10**8))


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A study of 3 one-epoch trials run by ``wae sweep run`` (its folder, stdout)."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = sweep_file(tmp, LAMBDA)
    folder = tmp / "sw"
    try:
        main(["sweep", "run", str(path), "--out", str(folder)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return folder


def test_a_tiny_study_makes_run_folders_and_complete_trials(tiny_study):
    trials = trials_of(tiny_study)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert sorted(p.name for p in tiny_study.glob("trial-*")) == [
        "trial-0000",
        "trial-0001",
        "trial-0002",
    ]
    for t in trials:
        (run_dir,) = t.user_attrs["run_dirs"]
        assert Path(run_dir) == tiny_study / f"trial-{t.number:04d}"
        assert (Path(run_dir) / "model.safetensors").is_file()
        config = json.loads((Path(run_dir) / "config.json").read_text())
        assert config["run"]["lam"] == pytest.approx(t.params["lam"])
        assert config["sources"]["lam"] == "sweep t"
        assert config["sources"]["epochs"].startswith("file ")
        assert t.value == pytest.approx(recomputed_w2(run_dir), rel=1e-6)
    assert len({t.params["lam"] for t in trials}) == 3


def test_show_prints_the_best_trial_and_importances(tiny_study, capsys, tmp_path):
    best = min(trials_of(tiny_study), key=lambda t: t.value)
    report = tmp_path / "best.html"
    code, out, err = wae(capsys, "sweep", "show", str(tiny_study), "--report", str(report))
    assert code == 0, err
    assert "Study 't': minimising w2_samples; 3 trials (3 complete)" in out
    first_row = next(line for line in out.splitlines() if line.startswith("│"))
    assert first_row.split("│")[1].strip() == str(best.number)
    assert f"{best.value:.4g}" in first_row
    assert "The best 3 trials:" in out
    importances = out.split("The importance of each setting (Optuna's, over 3 complete trials):")
    assert len(importances) == 2 and "│ lam     │      1.000 │" in importances[1], out
    assert report.is_file() and "trial-0000" in report.read_text()


def test_show_without_two_complete_trials_says_why(tiny_study, capsys, tmp_path):
    storage = f"sqlite:///{tmp_path / 'one.db'}"
    study = optuna.create_study(storage=storage, study_name="one")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    code, out, err = wae(capsys, "sweep", "show", "one", "--storage", storage)
    assert code == 0, err
    assert "No importances: importances need at least 2 complete trials; the study has 1." in out


def test_a_trial_falling_behind_is_pruned_and_its_run_stops_early(tmp_path, capsys):
    sweep = (
        '[sweep]\nname = "t"\ntrials = 3\nobjective = "test_cost"\n'
        "[sweep.space]\nlr = {low = 1e-7, high = 0.1, log = true}\n"
    )
    path = sweep_file(tmp_path, sweep, epochs=3)
    folder = tmp_path / "sw"
    folder.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{folder / 'study.db'}", study_name="t")
    for lr in (0.01, 0.01, 1e-7):  # the third learns nothing: worse than both at epoch 1
        study.enqueue_trial({"lr": lr})
    code, out, err = wae(capsys, "sweep", "run", str(path), "--out", str(folder))
    assert code == 0, err
    trials = trials_of(folder)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert trials[2].user_attrs["pruned_at_epoch"] == 1
    summary = json.loads((folder / "trial-0002" / "summary.json").read_text())
    assert summary["stopped"].startswith("pruned by the sweep after epoch 1")
    assert summary["steps"] == 8  # one epoch of 320 / 40, not three
    assert json.loads((folder / "trial-0000" / "summary.json").read_text())["steps"] == 24
    assert "pruned after epoch 1" in out


class _InterruptOnce:
    """A callback that acts as Ctrl-C would at the first evaluation after training starts."""

    def __init__(self) -> None:
        self.fired = False

    def on_evaluate(self, epoch, step, metrics):
        if epoch >= 1 and not self.fired:
            self.fired = True
            raise KeyboardInterrupt


def test_a_study_resumes_after_more_trials_and_after_an_interrupt(tmp_path, capsys):
    from wae_toolkit.sweep import SweepInterrupted, run_sweep

    path = sweep_file(tmp_path, COST)
    folder = tmp_path / "sw"
    code, _, err = wae(capsys, "sweep", "run", str(path), "--out", str(folder), "--trials", "2")
    assert code == 0, err
    first = [(t.params, t.value, t.datetime_complete) for t in trials_of(folder)]
    assert len(first) == 2

    with pytest.raises(SweepInterrupted, match="holds 2 of 4 trials. Run the same command"):
        run_sweep(path, out=folder, trials=4, callback=_InterruptOnce())
    trials = trials_of(folder)
    assert trials[2].state.name == "FAIL" and trials[2].user_attrs["interrupted"] is True

    code, out, err = wae(capsys, "sweep", "run", str(path), "--out", str(folder), "-n", "4")
    assert code == 0, err
    assert "Sweep 't': 2 of 4 trials done" in out
    trials = trials_of(folder)
    assert [t.state.name for t in trials] == [
        "COMPLETE",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
        "COMPLETE",
    ]
    assert [(t.params, t.value, t.datetime_complete) for t in trials[:2]] == first
    code, out, _ = wae(capsys, "sweep", "run", str(path), "--out", str(folder), "-n", "4")
    assert code == 0 and "Nothing to run" in out and len(trials_of(folder)) == 5


def test_two_jobs_share_one_study(tmp_path, capsys):
    path = sweep_file(tmp_path, COST)
    folder = tmp_path / "sw"
    code, out, err = wae(
        capsys, "sweep", "run", str(path), "--out", str(folder), "--trials", "4", "--jobs", "2"
    )
    assert code == 0, err
    trials = trials_of(folder)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    for t in trials:  # the value is the held-out cost of the run's last evaluation
        summary = json.loads((folder / f"trial-{t.number:04d}" / "summary.json").read_text())
        assert t.value == summary["test_cost"]
    config = json.loads((folder / "trial-0000" / "config.json").read_text())
    assert config["run"]["threads"] == 1
    assert out.count("complete  test_cost") == 4


def test_a_sweep_table_in_wae_run_points_to_wae_sweep(tmp_path, capsys):
    path = sweep_file(tmp_path, LAMBDA)
    code, _, err = wae(capsys, "run", "--config", str(path))
    assert code == 2
    assert (
        f"holds a [sweep] table, which describes a hyper-parameter search: run it with "
        f"'wae sweep run {path}', or remove the table to train one run." in " ".join(err.split())
    )


SPACE_ERRORS = [
    (
        "lamda = {low = 1.0, high = 2.0}",
        "names an unknown setting 'lamda'. Did you mean 'lam'?",
    ),
    ("lam = {low = 5.0, high = 1.0}", "lam: low must be below high; got low = 5.0, high = 1.0."),
    ("lr = {low = 0.0, high = 0.1, log = true}", "lr: a log range needs low > 0; got low = 0.0."),
    ("latent_dim = {choices = []}", "latent_dim: choices is empty; give at least one value."),
    ("lam = {low = 1.0, hi = 2.0}", "lam has an unknown key 'hi'. Did you mean 'high'?"),
    ("lam = 3.0", "lam must be a range {low = ..., high = ...} or a list of choices"),
    ("epochs = {low = 1.5, high = 3}", "epochs takes whole numbers; low, high and step must be"),
    ("seed = {choices = [1, 2]}", "cannot search seed: the sweep sets each run's seed"),
    ("lam = {low = -1.0, high = 1.0}", "lam may be -1.0, which a run refuses: "),
]


@pytest.mark.parametrize(("line", "message"), SPACE_ERRORS)
def test_bad_space_specs_get_one_sentence(tmp_path, line, message):
    from wae_toolkit.sweep import read_plan

    path = sweep_file(tmp_path, f'[sweep]\nname = "t"\n[sweep.space]\n{line}\n')
    with pytest.raises(UsageError) as info:
        read_plan(path)
    text = str(info.value)
    assert "\n" not in text and message in text
    assert text.startswith(f"'{path}': [sweep.space]")


def test_an_unknown_plugin_option_names_the_option(tmp_path):
    from wae_toolkit.sweep import read_plan

    path = sweep_file(
        tmp_path, '[sweep]\n[sweep.space]\n"penalty_opts.bandwith" = {low = 0.1, high = 1.0}\n'
    )
    with pytest.raises(UsageError) as info:
        read_plan(path)
    assert str(info.value).startswith(
        f"'{path}': [sweep.space] penalty_opts.bandwith may be 0.1, which a run refuses: The "
        "penalty 'mmd-imq' has no option 'bandwith'. Did you mean 'bandwidth'?"
    )


def test_bad_sweep_table_keys(tmp_path):
    from wae_toolkit.sweep import read_plan

    path = sweep_file(tmp_path, "[sweep]\ntrails = 3\n[sweep.space]\nlam = {choices = [1.0]}\n")
    with pytest.raises(
        UsageError, match=r"\[sweep\] has an unknown key 'trails'. Did you mean 'trials'\?"
    ):
        read_plan(path)
    path = sweep_file(
        tmp_path, '[sweep]\nobjective = "w2"\n[sweep.space]\nlam = {choices = [1.0]}\n'
    )
    with pytest.raises(UsageError, match="objective must be one of w2_samples, test_cost"):
        read_plan(path)


def test_space_forms_and_types(tmp_path):
    from wae_toolkit.sweep import read_plan

    path = sweep_file(
        tmp_path,
        "[sweep]\n[sweep.space]\nlam = {low = 1, high = 100, log = true}\n"
        "epochs = {low = 10, high = 50, step = 10}\n"
        "network_opts.hidden = {choices = [[16], [32, 32]]}\n",
    )
    plan = read_plan(path)
    lam, epochs, hidden = plan.space
    assert plan.name == "s" and plan.objective == "w2_samples" and plan.prune_on == "test_cost"
    assert (lam.integer, epochs.integer) == (False, True)  # lam takes reals, epochs whole numbers
    assert hidden.name == "network_opts.hidden" and hidden.encoded
    config, sources = plan.trial_config({"network_opts.hidden": [32, 32]}, seed=3)
    assert list(config.network_opts["hidden"]) == [32, 32] and config.seed == 3
    assert sources["network_opts.hidden"] == "sweep s"


def test_without_optuna_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now fails
    path = sweep_file(tmp_path, LAMBDA)
    code, _, err = wae(capsys, "sweep", "run", str(path))
    assert code == 2
    assert " ".join(err.split()) == (
        "Error: wae sweep needs Optuna: pip install 'wae-toolkit[sweep]'."
    )


def test_the_cli_and_the_package_do_not_import_optuna():
    code = (
        "import sys, wae_toolkit, wae_toolkit.sweep, wae_toolkit.cli.app\n"
        "from wae_toolkit.cli.app import main\n"
        "try:\n    main(['sweep', '--help'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted({'optuna', 'torch'} & set(sys.modules))\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
