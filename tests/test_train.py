"""End to end: training through the CLI and the Python API, run folders, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from wae_toolkit.api import train
from wae_toolkit.config.settings import RunConfig
from wae_toolkit.plugins import registry
from wae_toolkit.runs.folder import load_run, read_metrics

from .test_cli import wae

RUN_FILES = {"config.json", "metrics.jsonl", "model.safetensors", "summary.json"}
PENALTIES = [i.name for i in registry.list_plugins("penalty") if i.builtin]


@pytest.mark.parametrize("penalty", PENALTIES)
def test_every_penalty_trains_on_digits_through_the_cli(capsys, tmp_path, penalty):
    out_dir = tmp_path / penalty
    cls = registry.get_plugin_class("penalty", penalty)
    opts = ["--penalty-opt", "hidden=64"] if cls.adversarial else []
    if cls.needs_encoder_stats:
        opts += ["--encoder", "gaussian"]
    code, out, err = wae(
        capsys,
        "run",
        "--penalty",
        penalty,
        *opts,
        "--epochs",
        "1",
        "--data-opt",
        "limit=300",
        "--device",
        "cpu",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    files = {p.name for p in out_dir.iterdir()}
    assert RUN_FILES | {"reconstructions.png", "samples.png", "losses.png", "latent.png"} <= files
    assert "Pictures:" in out and "samples.png" in out
    config = json.loads((out_dir / "config.json").read_text())
    assert config["plugins"]["penalty"]["name"] == penalty
    assert config["plugins"]["penalty"]["distribution"] == "wae-toolkit"
    assert config["plugins"]["penalty"]["version"]
    assert config["run"]["penalty_opts"] == config["plugins"]["penalty"]["options"]
    records = read_metrics(out_dir)
    kinds = {r["kind"] for r in records}
    assert {"step", "epoch", "eval"} <= kinds
    for r in records:
        for key in ("loss", "cost", "penalty", "test_cost", "test_mmd"):
            if key in r:
                assert np.isfinite(r[key]), r
    if cls.adversarial:
        assert any("critic_loss" in r for r in records if r["kind"] == "step")
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["test_mmd"] >= 0 and summary["prior_mmd"] > 0


def _cfg(tmp_path, **kw):
    base = dict(
        data="digits", data_opts={"limit": 300}, epochs=2, device="cpu", eval_every=1, log_every=1
    )
    base.update(kw)
    return RunConfig(out=str(tmp_path / "run"), **base)


def test_same_seed_same_run_on_cpu(tmp_path):
    a = train(_cfg(tmp_path / "a", seed=3))
    b = train(_cfg(tmp_path / "b", seed=3))
    c = train(_cfg(tmp_path / "c", seed=4))
    wa = load_file(str(a.run_dir / "model.safetensors"))
    wb = load_file(str(b.run_dir / "model.safetensors"))
    wc = load_file(str(c.run_dir / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read_metrics(a.run_dir)) == strip(read_metrics(b.run_dir))


def test_load_run_rebuilds_the_trained_model(tmp_path):
    res = train(_cfg(tmp_path, prior="gmm", prior_opts={"components": "3"}, encoder="gaussian"))
    loaded = load_run(res.run_dir)
    x = res.dataset.test[:10]
    res.model.eval()
    torch.testing.assert_close(loaded.model.reconstruct(x), res.model.reconstruct(x))
    assert loaded.config.prior == "gmm" and loaded.config.prior_opts["components"] == 3
    torch.testing.assert_close(loaded.model.prior.mu, res.model.prior.mu)


def test_wae_mmd_on_a_toy_set_moves_codes_towards_the_prior(tmp_path):
    res = train(
        _cfg(
            tmp_path,
            data="ring",
            data_opts={"n": 2000},
            latent_dim=2,
            epochs=15,
            eval_every=15,
            lam=10.0,
            network_opts={"hidden": "64,64"},
        )
    )
    evals = [r for r in read_metrics(res.run_dir) if r["kind"] == "eval"]
    first, last = evals[0], evals[-1]
    assert first["step"] == 0 and last["step"] > 0
    assert last["test_mmd"] < 0.25 * first["test_mmd"], (first, last)
    assert (res.run_dir / "data.png").exists() and (res.run_dir / "latent.png").exists()


def test_conv_network_trains_on_28x28_images_from_disk(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((64, 28, 28)) * 255).astype(np.uint8)
    path = tmp_path / "imgs.npy"
    np.save(path, images)
    res = train(
        _cfg(
            tmp_path,
            data=str(path),
            data_opts={},
            network="conv",
            network_opts={"width": "4"},
            batch_size=16,
            epochs=1,
        )
    )
    config = json.loads((res.run_dir / "config.json").read_text())
    assert config["data"]["sample_shape"] == [1, 28, 28]
    assert config["decoder_output"] == "sigmoid"
    assert (res.run_dir / "samples.png").exists()


def test_load_run_restores_an_adversarial_penalty(tmp_path):
    res = train(_cfg(tmp_path, penalty="gan-js", penalty_opts={"hidden": "16"}, epochs=1))
    loaded = load_run(res.run_dir)
    trained = res.components.penalty.state_dict()
    restored = loaded.penalty.state_dict()
    assert trained.keys() == restored.keys() and trained
    assert all(torch.equal(trained[k].cpu(), restored[k]) for k in trained)


def test_load_run_refuses_a_folder_without_a_run(tmp_path):
    from wae_toolkit.errors import UsageError

    with pytest.raises(UsageError, match="not a run folder"):
        load_run(tmp_path)


def test_training_extras_are_applied_and_recorded(tmp_path):
    from wae_toolkit.engine.pretrain import moment_loss

    torch.set_num_threads(2)
    res = train(
        _cfg(
            tmp_path,
            encoder="gaussian",
            logvar_l1=0.5,
            input_noise=0.01,
            pretrain_steps=30,
            epochs=1,
            log_every=1,
        )
    )
    assert torch.get_num_threads() == 2  # the small model trained on 1 thread; setting restored
    records = read_metrics(res.run_dir)
    pre = [r for r in records if r["kind"] == "pretrain"]
    assert pre and pre[-1]["step"] == 30
    steps = [r for r in records if r["kind"] == "step"]
    assert all(r["logvar_l1"] > 0 for r in steps)
    config = json.loads((res.run_dir / "config.json").read_text())["run"]
    assert config["input_noise"] == 0.01 and config["pretrain_steps"] == 30
    # moment_loss is the squared distance of the first two moments.
    z = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    assert float(moment_loss(z, torch.zeros(3), torch.eye(3))) < 0.01
    assert float(moment_loss(z + 1, torch.zeros(3), torch.eye(3))) == pytest.approx(3, abs=0.1)


def test_pretraining_moves_code_moments_to_the_prior(tmp_path):
    from wae_toolkit.assembly.components import build_components
    from wae_toolkit.data import load_dataset
    from wae_toolkit.engine.pretrain import moment_loss, pretrain_encoder

    torch.manual_seed(0)
    data = load_dataset("digits", {"limit": 300})
    model = build_components(RunConfig(), data.sample_shape, data.value_range).model
    mu, cov = torch.zeros(8), torch.eye(8)
    with torch.no_grad():
        before = float(moment_loss(model.encode(data.train), mu, cov))
    pretrain_encoder(model, data.train, 200, 100, 1e-3, (0.5, 0.999))
    with torch.no_grad():
        after = float(moment_loss(model.encode(data.train), mu, cov))
    assert after < 0.3 * before, (before, after)


def test_logvar_penalty_needs_a_gaussian_encoder():
    from wae_toolkit.errors import UsageError

    with pytest.raises(UsageError, match='add encoder="gaussian"'):
        RunConfig(logvar_l1=1.0).validate()


def test_load_run_warns_when_a_plugin_version_changed_and_refuses_a_missing_one(tmp_path):
    from wae_toolkit.errors import PluginVersionWarning, UsageError

    res = train(_cfg(tmp_path, epochs=1))
    path = res.run_dir / "config.json"
    record = json.loads(path.read_text())
    record["plugins"]["penalty"]["version"] = "0.0.1"
    path.write_text(json.dumps(record))
    with pytest.warns(PluginVersionWarning, match="from wae-toolkit 0.0.1"):
        load_run(res.run_dir)
    # a missing network is refused (a missing penalty or cost only warns: test_plugin_authors)
    record["plugins"]["network"].update(name="gone", distribution="wae-gone", version="2.0")
    record["run"]["network"] = "gone"
    path.write_text(json.dumps(record))
    with pytest.raises(UsageError, match=r"pip install wae-gone==2.0"):
        load_run(res.run_dir)


def _weights(res):
    return load_file(str(res.run_dir / "model.safetensors"))


def test_bf16_precision_trains_as_well_as_fp32_on_cpu(tmp_path):
    """bf16 autocast for the networks only: same losses to bf16 accuracy, float32 weights."""
    cfg = dict(data_opts={"limit": 600}, epochs=6, eval_every=6)
    fp32 = train(_cfg(tmp_path / "fp32", **cfg))
    bf16 = train(_cfg(tmp_path / "bf16", precision="bf16", **cfg))
    assert all(v.dtype == torch.float32 for v in _weights(bf16).values())
    a, b = fp32.summary, bf16.summary
    assert b["test_cost"] == pytest.approx(a["test_cost"], rel=0.1), (a, b)
    assert b["test_mmd"] < 2 * a["test_mmd"] + 0.01, (a, b)
    steps = [r for r in read_metrics(bf16.run_dir) if r["kind"] == "step"]
    assert all(np.isfinite(r["loss"]) for r in steps)
    run = json.loads((bf16.run_dir / "config.json").read_text())["run"]
    assert run["precision"] == "bf16" and run["compile"] is False


def test_compiled_step_gives_the_eager_losses(tmp_path):
    """torch.compile changes the kernels, not the arithmetic: losses agree to rounding."""
    cfg = dict(data_opts={"limit": 200}, epochs=2, batch_size=50)
    eager = train(_cfg(tmp_path / "eager", **cfg))
    compiled = train(_cfg(tmp_path / "compiled", compile=True, **cfg))
    pick = lambda res: [  # noqa: E731
        (r["step"], r["loss"]) for r in read_metrics(res.run_dir) if r["kind"] == "step"
    ]
    got, want = pick(compiled), pick(eager)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-3, abs=1e-5)


def test_conv_networks_train_channels_last_with_the_same_result(tmp_path, monkeypatch):
    """The conv net declares channels_last; the layout changes speed, not the numbers."""
    from wae_toolkit.builtins.conv import ConvNetwork

    assert ConvNetwork.channels_last
    cfg = dict(network="conv", network_opts={"width": "4"}, batch_size=32, epochs=1)

    def conv_weight(res):  # a convolution with several input channels (for one, both layouts agree)
        convs = [m for m in res.model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
        return next(m.weight for m in convs if m.in_channels > 1)

    nhwc = train(_cfg(tmp_path / "nhwc", **cfg))
    assert conv_weight(nhwc).is_contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(ConvNetwork, "channels_last", False)
    nchw = train(_cfg(tmp_path / "nchw", **cfg))
    assert not conv_weight(nchw).is_contiguous(memory_format=torch.channels_last)
    first = lambda res: next(  # noqa: E731  (the first step's losses: the same initial weights)
        r for r in read_metrics(res.run_dir) if r["kind"] == "step"
    )
    a, b = first(nhwc), first(nchw)
    for key in ("loss", "cost", "penalty"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"precision": "fp8"}, "precision must be one of fp32, tf32, bf16, fp16; got 'fp8'"),
        (
            {"precision": "tf32", "device": "cpu"},
            r"precision tf32 \(TF32 tensor-core matmuls\) runs on CUDA GPUs only, and this "
            'run\'s device is cpu; use precision="fp32" there',
        ),
        (
            {"compile_mode": "fast"},
            "compile_mode must be one of default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs; got 'fast'",
        ),
        (
            {"compile_mode": "reduce-overhead"},
            "compile_mode reduce-overhead applies to a compiled step; add compile=True, or "
            "leave the mode out",
        ),
        (
            {"precision": "fp16", "device": "cpu"},
            r"precision fp16 \(with a gradient scaler\) runs on CUDA GPUs only, and this run's "
            "device is cpu",
        ),
        ({"precision": "bf16", "device": "mps"}, "precision bf16 runs on cpu and cuda"),
        ({"compile": "yes"}, "compile must be true or false; got 'yes'"),
    ],
)
def test_speed_options_are_validated(kw, message):
    with pytest.raises(Exception, match=message):
        RunConfig(**kw).validate()


def test_device_auto_picks_cuda_then_mps_then_the_cpu(monkeypatch):
    from wae_toolkit.devices import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
