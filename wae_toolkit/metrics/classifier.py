"""A small classifier trained on a data set's own labels, for the classifier Fréchet distance.

FID measures generated images in the feature space of an Inception network trained on ImageNet,
whose weights cannot be downloaded here. Our offline stand-in trains a small network on the
labelled training split of the run's own data set and uses its penultimate layer (``width = 128``
ReLU features) as the feature space of a Fréchet distance (:mod:`wae_toolkit.metrics.frechet`).

* Images ``(C, H, W)``: two 3x3 convolutions of stride 2 (16 and 32 channels, ReLU), then a
  linear layer to the 128 features. Vectors ``(F,)``: two linear layers (256, then 128 features).
* Adam (lr 1e-3), batches of 128, a fixed number of steps (default 1,500: about 3 epochs of
  MNIST, many of the 1,437 digits), on the training split only; the accuracy on the held-out
  split is recorded. Deterministic for a seed on one device: the global RNG is left untouched,
  and on the CPU it trains on one thread (a net this small gains nothing from more, and its
  weights then do not depend on the machine's core count). About 2 s for digits and 8 s for an
  MNIST-sized set on one core.
* Cached per data set: ``<root>/classifiers/<name>-<key>.safetensors`` (weights, never a
  pickle) and ``.json`` (the key, its accuracy and how long it trained). ``key`` hashes the
  data set's name, options and the *content* of its training and held-out tensors and labels,
  with the classifier's settings, so changed files, options or a different data set never reuse
  a classifier. The root is the ``cache_dir`` argument, else ``$WAE_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/wae-toolkit``, else ``~/.cache/wae-toolkit``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wae_toolkit._version import __version__
from wae_toolkit.data import Dataset
from wae_toolkit.errors import UsageError
from wae_toolkit.metrics.batching import batched
from wae_toolkit.runs.folder import save_weights, write_json

__all__ = ["Classifier", "ClassifierNet", "cache_root", "dataset_key", "load_or_train"]

#: Bump when the architecture or the training recipe changes: old cache entries stop matching.
RECIPE = "wae-toolkit-classifier-1"
WIDTH = 128


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The toolkit's cache folder: ``cache_dir``, ``$WAE_CACHE_DIR``, ``$XDG_CACHE_HOME/
    wae-toolkit`` or ``~/.cache/wae-toolkit``, in that order."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("WAE_CACHE_DIR"):
        return Path(os.environ["WAE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "wae-toolkit"


class ClassifierNet(nn.Module):
    """``features`` (the penultimate layer, ``(B, WIDTH)``) followed by a linear ``head``."""

    def __init__(self, sample_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        if len(sample_shape) == 3:
            conv = nn.Sequential(
                nn.Conv2d(sample_shape[0], 16, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Flatten(),
            )
            flat = math.ceil(math.ceil(sample_shape[1] / 2) / 2)
            flat *= math.ceil(math.ceil(sample_shape[2] / 2) / 2) * 32
            self.features = nn.Sequential(*conv, nn.Linear(flat, WIDTH), nn.ReLU())
        else:
            dim = math.prod(sample_shape)
            self.features = nn.Sequential(
                nn.Flatten(), nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, WIDTH), nn.ReLU()
            )
        self.head = nn.Linear(WIDTH, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


@dataclass
class Classifier:
    """A trained (or cached) classifier and where it is stored."""

    net: ClassifierNet
    accuracy: float
    path: Path
    cached: bool
    train_seconds: float

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Penultimate-layer features ``(N, WIDTH)`` (float32, CPU) of samples ``x`` ``(N, *S)``."""
        self.net.eval()
        dev = next(self.net.parameters()).device
        return batched(self.net.features, x, batch_size, dev).float().cpu()

    def info(self) -> dict[str, Any]:
        """What ``eval.json`` records about the classifier."""
        return {
            "accuracy": self.accuracy,
            "path": str(self.path),
            "cached": self.cached,
            "train_seconds": round(self.train_seconds, 3),
        }


def _labels(data: Dataset) -> tuple[Tensor, Tensor, int]:
    if data.train_labels is None or data.test_labels is None:
        raise UsageError(f"The data set '{data.name}' has no labels to train a classifier on.")
    both = torch.cat([data.train_labels, data.test_labels])
    if int(both.min()) < 0 or len(torch.unique(both)) < 2:
        raise UsageError(
            f"The labels of '{data.name}' must be integers >= 0 with at least two classes."
        )
    return data.train_labels, data.test_labels, int(both.max()) + 1


def dataset_key(data: Dataset, seed: int, steps: int) -> str:
    """A hex digest identifying the data set (name, options, tensor contents) and the recipe."""
    h = hashlib.blake2b(digest_size=16)
    head = {"recipe": RECIPE, "seed": seed, "steps": steps, "name": data.name}
    head |= {"options": data.options, "shape": list(data.sample_shape)}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for t in (data.train_tensor, data.test, data.train_labels, data.test_labels):
        if t is not None:
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


@contextmanager
def _one_cpu_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread, then restore the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(data: Dataset, seed: int, steps: int, device: str) -> tuple[ClassifierNet, float]:
    """Train on ``data.train``; return the network and its accuracy on ``data.test``."""
    with _one_cpu_thread():
        return _train_steps(data, seed, steps, device)


def _train_steps(data: Dataset, seed: int, steps: int, device: str) -> tuple[ClassifierNet, float]:
    y_train, y_test, n_classes = _labels(data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClassifierNet(data.sample_shape, n_classes).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = data.train_tensor.to(device), y_train.to(device)
    batch = min(128, len(x))
    perm, pos = torch.randperm(len(x), generator=gen), 0
    net.train()
    for _ in range(steps):
        if pos + batch > len(x):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        idx = perm[pos : pos + batch].to(device)
        pos += batch
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    pred = batched(lambda t: net(t).argmax(1), data.test, 1000, device)
    return net, float((pred.cpu() == y_test).double().mean())


def _slug(name: str) -> str:
    stem = Path(name).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")[:40] or "data"


def _load_cached(meta_path: Path, weights: Path, key: str) -> tuple[ClassifierNet, dict] | None:
    """The cached network when both files exist and the key matches, else None."""
    from safetensors.torch import load_file

    if not (meta_path.is_file() and weights.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        net = ClassifierNet(tuple(meta["sample_shape"]), int(meta["n_classes"]))
        net.load_state_dict(load_file(str(weights)))
    except Exception:  # safetensors raises its own error types; a damaged entry is retrained
        return None
    return net, meta


def load_or_train(
    data: Dataset,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    steps: int = 1500,
    device: str = "cpu",
) -> Classifier:
    """The classifier of ``data``: loaded from the cache when its key matches, else trained
    (on ``data.train``) and cached.

    Args:
        data: a labelled data set (its ``train_labels`` and ``test_labels`` are used).
        cache_dir: the cache root (classifiers go to ``<root>/classifiers``); see
            :func:`cache_root` for the default.
        seed: seed of the initialisation and of the batches.
        steps: optimisation steps.
        device: where to train and compute features.

    Raises:
        UsageError: the data set has no usable labels.
    """
    _, _, n_classes = _labels(data)
    key = dataset_key(data, seed, steps)
    folder = cache_root(cache_dir) / "classifiers"
    stem = f"{_slug(data.name)}-{key[:16]}"
    weights, meta_path = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    cached = _load_cached(meta_path, weights, key)
    if cached is not None:
        net, meta = cached
        return Classifier(
            net.to(device).eval(), float(meta["accuracy"]), weights, True, meta["train_seconds"]
        )
    started = time.perf_counter()
    net, accuracy = _train(data, seed, steps, device)
    seconds = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(weights, dict(net.state_dict()))
    meta = {
        "key": key,
        "recipe": RECIPE,
        "data": data.name,
        "options": data.options,
        "sample_shape": list(data.sample_shape),
        "n_classes": n_classes,
        "train_size": len(data.train),
        "test_size": len(data.test),
        "seed": seed,
        "steps": steps,
        "accuracy": accuracy,
        "train_seconds": round(seconds, 3),
        "device": device,
        "wae_toolkit_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(meta_path, meta)
    return Classifier(net, accuracy, weights, False, seconds)
