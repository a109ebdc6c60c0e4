"""Data of any shape: the conv network at any image size (the paper's sizes unchanged), the conv1d
network for signals, how 3-D arrays are read (the layout rule), size= and crop= for arrays, and
figures that fit the data, in the run folder and in the report."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import wae_toolkit as wt
from wae_toolkit.builtins._stride import CropTo, PadTo
from wae_toolkit.builtins.conv import ConvNetwork, _plan
from wae_toolkit.builtins.conv1d import Conv1dNetwork
from wae_toolkit.data import load_dataset
from wae_toolkit.errors import DataError, UsageError
from wae_toolkit.plugins.testing import check_network
from wae_toolkit.runs.data_plots import save_pair_plot, save_signals

from .test_cli import wae

# -- the conv network: the paper's sizes are exactly as before -----------------------------------

#: Computed with the implementation that refused sizes other than s * 2^k (before padding was
#: added): parameter count, SHA-256 of the initial state (names and bytes, torch.manual_seed(0)),
#: and the sums of the codes and the sigmoid outputs of 4 fixed inputs (eval mode, then train mode).
PAPER_NETS = {
    "mnist-width-8": (
        (1, 28, 28),
        {"width": 8},
        113617,
        "e4bb5a837d046d40756574c2851180500d02b522aef175f1d6e1f18a36cb9330",
        (-0.5760802868753672, 1634.7266036868095, -3.390313860028982, 1819.2697222530842),
    ),
    "mnist-paper": (
        (1, 28, 28),
        {},
        21970057,
        "28b05e07ee3c00fdc4d68f528a2e74fa5edc433ded810282d96a33ed0d844c7b",
        (0.0017868338618427515, 1558.4998148083687, -0.09062980115413666, 1375.203201442957),
    ),
    "celeba-width-8": (
        (3, 64, 64),
        {"width": 8, "kernel": 5},
        181323,
        "ebd63c4c20e5184c9a20dd8a5b2149eeacf2c93e8aee6412a1bdfa6afb5a5a4e",
        (-0.04357540747150779, 24794.195422440767, 1.6777106374502182, 25155.072056636214),
    ),
    "digits": (
        (1, 8, 8),
        {"width": 4},
        21629,
        "eedd438af174e3e77381e406b0d4ee31099666e85fc8caf9c2805987662beca3",
        (-0.4311145059764385, 127.0660773217678, -1.1344140730798244, 115.87060162425041),
    ),
}


@pytest.mark.parametrize("case", sorted(PAPER_NETS))
def test_conv_keeps_the_paper_architectures_bitwise(case):
    shape, options, n_params, digest, sums = PAPER_NETS[case]
    torch.manual_seed(0)
    net = ConvNetwork(**options)
    enc = net.build_encoder(shape, 8, gaussian=False)
    dec = net.build_decoder(shape, 8, output="sigmoid")
    h = hashlib.sha256()
    for module in (enc, dec):
        for name, value in module.state_dict().items():
            h.update(name.encode())
            h.update(value.detach().contiguous().numpy().tobytes())
    assert sum(p.numel() for m in (enc, dec) for p in m.parameters()) == n_params
    assert h.hexdigest() == digest
    assert not any(isinstance(m, PadTo | CropTo) for m in (*enc, *dec))
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    got = []
    with torch.no_grad():
        for train in (False, True):
            enc.train(train)
            dec.train(train)
            z = enc(x)
            got += [z.double().sum().item(), dec(z).double().sum().item()]
    got = [got[0], got[1], got[2], got[3]]
    assert got == pytest.approx(sums, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize(
    ("side", "plan"),
    [
        ((28, 28), (7, 7, 2)),
        ((64, 64), (8, 8, 3)),
        ((18, 18), (9, 9, 1)),  # allowed before: kept as it was
        ((37, 53), (5, 7, 3)),
        ((100, 100), (7, 7, 4)),
        ((218, 178), (7, 6, 5)),  # CelebA's aligned images, uncropped
    ],
)
def test_conv_plan(side, plan):
    assert _plan(*side) == plan


@pytest.mark.parametrize("kernel", [3, 4, 5])
def test_conv_takes_any_image_size(kernel):
    net = ConvNetwork(width=4, kernel=kernel)
    shape = (3, 37, 53)
    check_network(net, data_shape=shape, latent_dim=5)
    enc = net.build_encoder(shape, 5, gaussian=True)
    dec = net.build_decoder(shape, 5, output="linear")
    pad, crop = enc[0], dec[-1]
    assert isinstance(pad, PadTo) and pad.targets == (40, 56)
    assert isinstance(crop, CropTo) and crop.targets == (40, 56)
    x = torch.rand(2, *shape)
    padded = pad(x)
    assert padded.shape == (2, 3, 40, 56)
    assert torch.equal(crop(padded), x)  # the crop undoes the padding: the same centre
    assert padded[..., :1, :].abs().sum() == 0 and padded[..., :, -2:].abs().sum() == 0
    mean, log_var = enc(x)
    assert mean.shape == log_var.shape == (2, 5)
    assert dec(mean).shape == x.shape
    # channels-last batches, as the training loop stores them
    enc_cl = enc.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(enc_cl(x_cl)[0], mean, atol=1e-5)


def test_conv_docstring_states_the_padding():
    doc = ConvNetwork.__doc__ or ""
    assert "Any image size" in doc and "zero-pads" in doc and "crops" in doc


def test_conv_still_refuses_tiny_images_and_vectors():
    with pytest.raises(DataError, match="at least 4x4"):
        ConvNetwork().check_shape((1, 3, 40))
    with pytest.raises(DataError, match='Use network="mlp"'):
        ConvNetwork().check_shape((5,))
    with pytest.raises(DataError, match='network="conv1d" for signals.*"layout": "image"'):
        ConvNetwork().check_shape((1, 128))


# -- conv1d -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "full", "stages"),
    [((1, 128), 128, 4), ((2, 100), 112, 4), ((3, 9), 16, 4), ((1, 4), 4, 2), ((1, 5), 8, 3)],
)
def test_conv1d_pads_to_its_stride_and_crops_back(shape, full, stages):
    net = Conv1dNetwork(width=4)
    check_network(net, data_shape=shape, latent_dim=3)
    enc = net.build_encoder(shape, 3)
    dec = net.build_decoder(shape, 3, output="tanh")
    convs = [m for m in enc if isinstance(m, torch.nn.Conv1d)]
    ups = [m for m in dec if isinstance(m, torch.nn.ConvTranspose1d)]
    assert len(convs) == len(ups) == stages
    assert isinstance(enc[0], PadTo) == (full != shape[1])
    assert isinstance(dec[-1], CropTo) == (full != shape[1])
    x = torch.rand(5, *shape)
    assert dec(enc(x)).shape == x.shape


def test_conv1d_depth_and_shape_errors():
    net = Conv1dNetwork(width=2, depth=2, kernel=4, batch_norm=False)
    enc = net.build_encoder((1, 64), 2)
    assert sum(isinstance(m, torch.nn.Conv1d) for m in enc) == 2
    assert enc[-1].mean.in_features == 4 * 16  # width * 2 channels of length 64 / 4
    with pytest.raises(DataError, match=r'signals shaped \(C, L\).*network="conv"'):
        net.check_shape((1, 28, 28))
    with pytest.raises(DataError, match='network="mlp"'):
        net.check_shape((10,))
    with pytest.raises(DataError, match="length at least 4"):
        net.check_shape((2, 3))
    with pytest.raises(UsageError, match="kernel"):
        Conv1dNetwork(kernel=7)


# -- how arrays are read ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "options", "sample"),
    [
        ((20, 1, 128), {}, (1, 128)),  # mono signals
        ((20, 12, 500), {}, (12, 500)),  # 12-lead ECG
        ((20, 16, 128), {}, (16, 128)),
        ((20, 16, 127), {}, (1, 16, 127)),  # B < 8 A: an image
        ((20, 17, 1000), {}, (1, 17, 1000)),  # A > 16: an image
        ((20, 28, 28), {}, (1, 28, 28)),
        ((20, 1, 128), {"layout": "image"}, (1, 1, 128)),
        ((20, 28, 28), {"layout": "signal"}, (28, 28)),
        ((20, 64), {"layout": "signal"}, (1, 64)),
        ((20, 64), {}, (64,)),
        ((20, 3, 8, 8), {"layout": "image"}, (3, 8, 8)),
    ],
)
def test_layout_rule(tmp_path, array, options, sample):
    x = np.random.default_rng(0).random(array, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    for name in ("x.npy", "x.npz"):
        data = load_dataset(str(tmp_path / name), options)
        assert data.sample_shape == sample
        kind = {3: "images", 2: "signals", 1: "vectors"}[len(sample)]
        assert f"{kind} of shape" in data.description
    if len(sample) == 2 and len(array) == 3:  # signals keep their values in place
        assert torch.equal(
            torch.cat([data.train, data.test]).sort(0)[0], torch.from_numpy(x).sort(0)[0]
        )


def test_layout_refusals(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((4, 3, 8, 8), np.float32))
    np.save(tmp_path / "vectors.npy", np.zeros((4, 8), np.float32))
    with pytest.raises(DataError, match=r"layout=signal takes \(N, C, L\)"):
        load_dataset(str(tmp_path / "images.npy"), {"layout": "signal"})
    with pytest.raises(DataError, match="layout=image takes"):
        load_dataset(str(tmp_path / "vectors.npy"), {"layout": "image"})
    with pytest.raises(DataError, match="auto, image, signal|'auto', 'image', 'signal'"):
        load_dataset(str(tmp_path / "vectors.npy"), {"layout": "pixels"})


# -- size= and crop= for arrays, as for folders of images ---------------------------------------


def _smooth_images(n: int, h: int, w: int) -> np.ndarray:
    """uint8 RGB images (n, h, w, 3) of smooth gradients and blobs, as photographs are."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 4, 3)
        img = np.stack([np.sin(a * xx + c), np.cos(b * yy), np.sin(a * xx * b * yy)], -1)
        out.append(((img + 1) * 127.5).round().astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def same_images(tmp_path):
    """Twelve 37x53 RGB images as PNG files, and as uint8 and float arrays in both layouts."""
    images = _smooth_images(12, 37, 53)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:02d}.png")
    np.save(tmp_path / "hwc.npy", images)
    np.save(tmp_path / "chw.npy", images.transpose(0, 3, 1, 2).copy())
    np.save(tmp_path / "float.npy", images.astype(np.float32) / 255)
    return tmp_path


@pytest.mark.parametrize(
    "options", [{"size": 16}, {"crop": 30}, {"crop": 30, "size": 24}, {"size": 64}]
)
def test_array_size_and_crop_match_a_folder_of_images(same_images, options):
    folder = load_dataset(str(same_images / "pngs"), options)
    side = options.get("size", options.get("crop"))
    assert folder.sample_shape == (3, side, side)
    for name in ("hwc.npy", "chw.npy"):  # uint8: the very same pixels
        array = load_dataset(str(same_images / name), options)
        assert torch.equal(array.train, folder.train) and torch.equal(array.test, folder.test)
    # Floats are resized without the 8-bit rounding (to 1/255) of the result and of the
    # intermediate image between the two passes: within 1/255, up to that intermediate rounding.
    floats = load_dataset(str(same_images / "float.npy"), options)
    assert floats.value_range == (0.0, 1.0)  # bicubic overshoot is clipped, as for 8-bit pixels
    for part in ("train", "test"):
        diff = (getattr(floats, part) - getattr(folder, part)).abs()
        assert diff.max() <= 1.1 / 255 and diff.mean() <= 0.3 / 255, (diff.max(), diff.mean())


def test_array_resize_keeps_ranges_and_applies_to_a_test_file(tmp_path):
    rng = np.random.default_rng(2)
    noise = rng.uniform(-1, 1, size=(10, 1, 20, 20)).astype(np.float32)  # in [-1, 1]
    np.save(tmp_path / "train.npy", noise)
    np.save(tmp_path / "test.npy", noise[:3, 0])  # (N, H, W): another layout, same images
    data = load_dataset(
        str(tmp_path / "train.npy"), {"size": 9, "test": str(tmp_path / "test.npy")}
    )
    assert data.sample_shape == (1, 9, 9) and data.test.shape == (3, 1, 9, 9)
    assert data.value_range == (-1.0, 1.0)
    assert torch.equal(data.test, data.train[:3])


def test_array_resize_refusals(tmp_path):
    np.save(tmp_path / "vectors.npy", np.zeros((4, 8), np.float32))
    np.save(tmp_path / "signals.npy", np.zeros((4, 2, 64), np.float32))
    np.save(tmp_path / "images.npy", np.zeros((4, 1, 10, 12), np.float32))
    with pytest.raises(DataError, match="size=8 resizes images.*holds vectors"):
        load_dataset(str(tmp_path / "vectors.npy"), {"size": 8})
    with pytest.raises(DataError, match="crop=4 resizes images.*holds signals"):
        load_dataset(str(tmp_path / "signals.npy"), {"crop": 4})
    with pytest.raises(DataError, match=r'12x10 pixels, smaller than data_opts=\{"crop": 11\}'):
        load_dataset(str(tmp_path / "images.npy"), {"crop": 11})
    with pytest.raises(DataError, match="positive integer"):
        load_dataset(str(tmp_path / "images.npy"), {"size": 0})


# -- training and figures that fit the data -----------------------------------------------------


def _png_ok(path) -> tuple[int, int]:
    """A valid PNG of sensible size that is not blank; returns its size."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        w, h = img.size
        assert 200 <= w <= 3000 and 60 <= h <= 3000, (path.name, img.size)
        assert len(np.unique(np.asarray(img.convert("L")))) > 2, path.name  # not blank
    return w, h


@pytest.fixture(scope="module")
def shaped_runs(tmp_path_factory):
    """One short run per kind of data: signals (conv1d), 37x53 images (conv), 5-D vectors."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 100, dtype=np.float32)
    phase = rng.uniform(0, 6.28, size=(120, 1, 1)).astype(np.float32)
    signals = np.concatenate([np.sin(18 * t + phase), np.cos(30 * t + phase)], 1)
    np.save(root / "signals.npy", signals)  # (120, 2, 100): signals by the layout rule
    np.save(root / "images.npy", _smooth_images(40, 37, 53))
    np.save(root / "vectors.npy", rng.normal(size=(200, 5)).astype(np.float32))
    common = {"epochs": 2, "device": "cpu", "batch_size": 20}
    runs = {
        "signals": ("signals.npy", "conv1d", {"width": 4}),
        "images": ("images.npy", "conv", {"width": 4}),
        "vectors": ("vectors.npy", "mlp", {"hidden": (16,)}),
    }
    for name, (file, network, options) in runs.items():
        model = wt.fit(
            data=str(root / file),
            network=network,
            network_opts=options,
            out=str(root / name),
            **common,
        )
        assert np.isfinite(model.summary["test_cost"])
    return root


@pytest.mark.parametrize(
    ("kind", "shape", "figures", "absent"),
    [
        (
            "signals",
            [2, 100],
            ["samples", "reconstructions", "latent", "losses"],
            ["interpolations", "data"],
        ),
        (
            "images",
            [3, 37, 53],
            ["samples", "reconstructions", "interpolations", "latent"],
            ["data"],
        ),
        (
            "vectors",
            [5],
            ["samples", "reconstructions", "latent", "losses"],
            ["interpolations", "data"],
        ),
    ],
)
def test_runs_write_the_figures_that_fit_the_data(shaped_runs, kind, shape, figures, absent):
    run = shaped_runs / kind
    record = wt.load_run(run).record
    assert record["data"]["sample_shape"] == shape
    for name in figures:
        _png_ok(run / f"{name}.png")
    for name in absent:
        assert not (run / f"{name}.png").exists()
    if kind == "images":  # a grid of 37x53 images
        with Image.open(run / "samples.png") as img:
            assert img.size == (8 * (53 + 2) + 2, 8 * (37 + 2) + 2)
    summary = json.loads((run / "summary.json").read_text())
    assert {f"{n}.png" for n in figures} <= set(summary["files"])


def test_report_shows_the_figures_of_each_kind(shaped_runs, capsys):
    for kind, captions in (
        ("signals", ["a line per channel", "(dashed)"]),
        ("vectors", ["Pair plot", "against samples"]),
        ("images", ["Rows of held-out images"]),
    ):
        run = shaped_runs / kind
        code, _, err = wae(capsys, "report", str(run))
        assert code == 0, err
        page = (run / "report.html").read_text(encoding="utf-8")
        shown = set(re.findall(r'data-file="([a-z]+\.png)"', page))
        assert {"samples.png", "reconstructions.png", "latent.png"} <= shown, kind
        for caption in captions:
            assert caption in page, (kind, caption)
        pixelated = re.findall(r'<img class="pixels"[^>]*data-file="([a-z]+\.png)"', page)
        assert bool(pixelated) == (kind == "images")  # plots are not drawn pixelated
        if kind != "images":
            assert "interpolations; the data are" in page and "not images" in page
            assert "data.png" not in page  # no note about the 2-D scatter plot


def test_comparison_of_runs_of_different_kinds(shaped_runs, tmp_path, capsys):
    target = tmp_path / "cmp.html"
    runs = [str(shaped_runs / k) for k in ("signals", "images", "vectors")]
    code, _, err = wae(capsys, "report", *runs, "--out", str(target))
    assert code == 0, err
    page = target.read_text(encoding="utf-8")
    assert page.count('data-file="samples.png"') == 3
    assert page.count('data-file="reconstructions.png"') == 3
    assert "drawn as fits each run" in page


def test_plots_for_one_coordinate_and_many_channels(tmp_path):
    x = torch.randn(300, 1)
    w, h = _png_ok(save_pair_plot(tmp_path / "one.png", "one", x, x + 0.1, "samples"))
    assert w == h  # a 1x1 pair plot: the histogram
    sig = torch.randn(5, 12, 50)
    _png_ok(save_signals(tmp_path / "many.png", "twelve channels", sig, overlay=sig * 0.5))
