"""Presets resolve to the paper's setups (METHOD.md, section 2); the command line overrides them."""

from __future__ import annotations

import pytest

from wae_toolkit.config.presets import PRESETS, get_preset, resolve_config
from wae_toolkit.errors import UsageError

# Table from METHOD.md section 2, written out independently of wae_toolkit/config/presets.py.
PAPER = {
    "mnist-mmd": dict(latent_dim=8, lam=10.0, lr=1e-3, beta1=0.5, penalty="mmd-imq", epochs=100),
    "mnist-gan": dict(latent_dim=8, lam=1.0, lr=1e-3, beta1=0.5, penalty="gan-js", epochs=100),
    "mnist-vae": dict(latent_dim=8, lr=1e-3, beta1=0.5, penalty="kl", epochs=100),
    "celeba-mmd": dict(latent_dim=64, lam=100.0, lr=1e-3, beta1=0.5, penalty="mmd-imq", epochs=55),
    "celeba-gan": dict(latent_dim=64, lam=1.0, lr=3e-4, beta1=0.5, penalty="gan-js", epochs=55),
    "celeba-vae": dict(latent_dim=64, lr=1e-3, beta1=0.5, penalty="kl", epochs=55),
}
ADVERSARY_LR = {"mnist-gan": 5e-4, "celeba-gan": 1e-3}
DISCRIMINATOR_WIDTH = {"mnist-gan": 512, "celeba-gan": 1024}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_presets_match_method_md(name):
    config, sources = resolve_config(name, {"data": "/data/somewhere"})
    for key, value in PAPER[name].items():
        assert getattr(config, key) == value, (name, key)
        assert sources[key] == f"preset {name}"
    assert config.batch_size == 100
    assert config.cost == "l2" and config.cost_opts["scale"] == 0.05
    assert config.prior == "gaussian" and not config.prior_opts
    assert config.network == "conv"
    assert config.input_noise == 0.01 and config.pretrain_steps > 0
    if name.startswith("mnist"):
        assert config.network_opts["kernel"] == 4 and config.network_opts["width"] == 128
        assert config.data_opts == {"split": "paper"}
        # lr / 2 at epoch 30, / 10 at epoch 50
        assert [config.lr_factor(e) for e in (29, 30, 49, 50, 99)] == [1, 0.5, 0.5, 0.1, 0.1]
    else:
        assert config.network_opts["kernel"] == 5 and config.network_opts["width"] == 128
        assert config.data_opts["crop"] == 140 and config.data_opts["size"] == 64
        assert config.data_opts["holdout"] == 20000 and config.data_opts["scale"] == "symmetric"
        # smooth decay by 100x over 50 epochs
        assert config.lr_factor(0) == 1.0
        assert config.lr_factor(25) == pytest.approx(0.1, rel=1e-3)
        assert config.lr_factor(50) == pytest.approx(0.01, rel=1e-3)
        assert config.lr_factor(54) == pytest.approx(0.01, rel=1e-3)
    if name.endswith("gan"):
        assert config.penalty_opts["lr"] == ADVERSARY_LR[name]
        assert config.penalty_opts["hidden"] == DISCRIMINATOR_WIDTH[name]
        assert config.penalty_opts["layers"] == 4
        assert config.penalty_opts.get("prior_logit", False) == (name == "celeba-gan")
    if name.endswith("vae"):
        assert config.encoder == "gaussian"


def test_every_preset_resolves_and_builds():
    from wae_toolkit.assembly.components import build_components

    for name, preset in PRESETS.items():
        given = {"data": "somewhere"} if preset.data_hint else {}
        config, _ = resolve_config(name, given)
        shape = (1, 28, 28) if name.startswith("mnist") else (3, 64, 64)
        if name.startswith("digits"):
            shape = (1, 8, 8)
        if name.startswith("ring"):
            shape = (2,)
        config.network_opts = (
            {**config.network_opts, "width": 2} if config.network == "conv" else config.network_opts
        )
        build_components(config, shape, (0.0, 1.0))


def test_command_line_overrides_the_preset_and_sources_say_so():
    config, sources = resolve_config(
        "mnist-gan",
        {"data": "d", "lam": 2.0, "penalty_opts": {"hidden": "64"}, "epochs": 3},
    )
    assert config.lam == 2.0 and sources["lam"] == "command line"
    assert config.epochs == 3 and sources["epochs"] == "command line"
    assert config.penalty_opts == {"hidden": "64", "layers": 4, "lr": 5e-4, "beta1": 0.5}
    assert sources["penalty_opts.hidden"] == "command line"
    assert sources["penalty_opts.layers"] == "preset mnist-gan"
    assert sources["latent_dim"] == "preset mnist-gan" and sources["seed"] == "default"


def test_naming_another_penalty_drops_the_presets_penalty_options():
    config, sources = resolve_config("mnist-gan", {"data": "d", "penalty": "mmd-imq"})
    assert config.penalty == "mmd-imq" and config.penalty_opts == {}
    assert not any(k.startswith("penalty_opts.") for k in sources)


def test_bad_presets():
    with pytest.raises(UsageError, match="Did you mean 'mnist-mmd'"):
        get_preset("mnist-mdm")
    with pytest.raises(UsageError, match="train-images-idx3-ubyte"):
        resolve_config("mnist-mmd", {})
    with pytest.raises(UsageError, match="img_align_celeba"):
        resolve_config("celeba-gan", {})


def test_preset_run_records_where_values_came_from(tmp_path, capsys):
    import json

    from .test_cli import wae

    out = tmp_path / "run"
    code, _, err = wae(
        capsys,
        "run",
        "--preset",
        "digits-vae",
        "--epochs",
        "1",
        "--data-opt",
        "limit=200",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert code == 0, err
    record = json.loads((out / "config.json").read_text())
    assert record["run"]["penalty"] == "kl" and record["run"]["encoder"] == "gaussian"
    assert record["sources"]["penalty"] == "preset digits-vae"
    assert record["sources"]["epochs"] == "command line"
    assert record["sources"]["data_opts.limit"] == "command line"


def test_the_ring_preset_matches_its_codes_to_the_prior(tmp_path):
    """README's 2-D example: the held-out MMD of the codes within 2x of its floor (two prior
    batches), with reconstructions (a collapsed encoder would match the prior and reconstruct
    nothing: the ring's variance is about 2, its test cost here about 0.006)."""
    from wae_toolkit.api import train

    config, _ = resolve_config("ring-mmd", {"out": str(tmp_path / "ring"), "seed": 0})
    summary = train(config).summary
    assert summary["test_mmd"] <= 2 * summary["prior_mmd"], summary
    assert summary["test_cost"] < 0.05, summary
