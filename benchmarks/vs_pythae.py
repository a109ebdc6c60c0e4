"""Training speed of the same WAE-MMD in pythae 0.1.2 and in wae-toolkit.

Both libraries train the same model on the same data, one after the other in one process,
alternating, ``--repeats`` times:

* the same networks: pythae gets thin ``BaseEncoder``/``BaseDecoder`` wrappers around the very
  ``nn.Module`` objects that wae-toolkit's ``mlp``/``conv`` network plugins build, so the
  arithmetic of the forward and backward passes is identical;
* the same objective: squared L2 reconstruction summed over each sample and averaged over the
  batch (pythae's ``F.mse_loss(..., reduction="none").sum(-1).mean()`` times
  ``reconstruction_loss_scale`` = our ``l2`` cost with the same ``scale``) plus
  ``lambda * MMD^2`` with the multi-scale IMQ kernel ``sum_s C s / (C s + ||a - b||^2)``,
  ``C = 2 D sigma^2`` (pythae: ``2 * latent_dim * kernel_bandwidth**2`` with bandwidth 1 = our
  default for the standard Gaussian prior), scales 0.1, 0.2, 0.5, 1, 2, 5, 10 (the defaults of
  both), and the same estimator (within-sample terms without the diagonal, cross term over all
  pairs: our ``paper`` estimator);
* the same deterministic encoder, latent dimension 8, standard Gaussian prior drawn afresh each
  step, Adam with lr 1e-3 and betas (0.5, 0.999), no learning-rate schedule, the same batch size,
  and the same number of steps (pythae gets the ``steps_per_epoch * batch`` first training
  samples, so it takes the same number of full batches per epoch as our loop, which drops the
  ragged end).

What is timed is the training loop of each library, from its first step to the end of its last
epoch: pythae's ``BaseTrainer.train`` from ``on_train_begin`` to the last ``on_epoch_end`` (its
DataLoader, its per-step ``loss.item()``, its per-epoch ``deepcopy`` of the best model included;
its final ``save_model`` excluded), and wae-toolkit's ``train()`` loop as ``summary.json``'s
``seconds`` minus the time spent in its held-out evaluations (the figures and weights are written
after the timed part). pythae's console logging and tqdm bars are silenced (``TQDM_DISABLE``).

    python benchmarks/vs_pythae.py                                  # every case, 3 pairs
    python benchmarks/vs_pythae.py --cases cpu-mlp-digits --threads 1 --json /tmp/vs.json
    python benchmarks/vs_pythae.py --cases cpu-conv-28 --cpu-conv-steps 4   # paper width, quick
    python benchmarks/vs_pythae.py --cases cpu-conv-28 --width 32           # lighter conv net
    python benchmarks/vs_pythae.py --cases gpu-mlp-digits --repeats 2 --epochs 20   # shorter

On one CPU core the paper's conv net (width 128, about 22M parameters) takes about 4.5 s per
step of 100 images, so the default 30 steps of ``cpu-conv-28`` take over two minutes per run.
The GPU cases are skipped with a message when torch sees no CUDA device; on a GPU, one untimed
epoch of each library comes first (CUDA context, cuDNN autotuning, allocator).

Needs the ``bench`` extra: ``pip install 'wae-toolkit[bench]'`` (pythae 0.1.2).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # pythae forces a tqdm bar; silence it before import

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import wae_toolkit.engine.hooks as wae_hooks  # noqa: E402
from wae_toolkit.api import train as wae_train  # noqa: E402
from wae_toolkit.assembly.components import build_components  # noqa: E402
from wae_toolkit.config.settings import RunConfig  # noqa: E402
from wae_toolkit.data import load_dataset  # noqa: E402
from wae_toolkit.engine.setup import _threads_for  # noqa: E402

LAMBDA = 10.0
LATENT = 8
LR = 1e-3
BETAS = (0.5, 0.999)


@dataclass
class Case:
    name: str
    device: str
    batch: int
    epochs: int
    steps_per_epoch: int
    network: str
    network_opts: dict[str, Any] = field(default_factory=dict)
    data: str = "digits"  # "digits" or "synthetic28"
    cost_scale: float = 1.0
    note: str = ""


def _cases(width: int, cpu_conv_steps: int) -> dict[str, Case]:
    conv = {"width": width, "depth": 4, "kernel": 4}
    per_epoch = max(1, cpu_conv_steps // 2)
    return {
        "cpu-mlp-digits": Case(
            "cpu-mlp-digits",
            "cpu",
            100,
            150,  # epochs: 150 x 14 steps, >= 5 s per run on one core
            14,
            "mlp",
            {"hidden": (256, 256)},
            note="digits 8x8, MLP 64-256-256-8 and back",
        ),
        "cpu-conv-28": Case(
            "cpu-conv-28",
            "cpu",
            100,
            max(1, cpu_conv_steps // per_epoch),
            per_epoch,
            "conv",
            conv,
            data="synthetic28",
            cost_scale=0.05,
            note=f"synthetic 28x28, paper MNIST conv net (width {width}, kernel 4)",
        ),
        "gpu-mlp-digits": Case(
            "gpu-mlp-digits",
            "cuda",
            100,
            50,  # epochs: 50 x 14 steps
            14,
            "mlp",
            {"hidden": (256, 256)},
            note="digits 8x8, MLP 64-256-256-8 and back",
        ),
        "gpu-conv-28-b100": Case(
            "gpu-conv-28-b100",
            "cuda",
            100,
            4,
            100,
            "conv",
            conv,
            data="synthetic28",
            cost_scale=0.05,
            note=f"synthetic 28x28, conv width {width}",
        ),
        "gpu-conv-28-b1024": Case(
            "gpu-conv-28-b1024",
            "cuda",
            1024,
            4,
            20,
            "conv",
            conv,
            data="synthetic28",
            cost_scale=0.05,
            note=f"synthetic 28x28, conv width {width}",
        ),
    }


def _data_spec(case: Case, tmp: Path) -> tuple[str, dict[str, Any]]:
    """The data argument and options of RunConfig: digits, or a synthetic uint8 .npy file."""
    if case.data == "digits":
        return "digits", {}
    n_train = case.batch * case.steps_per_epoch
    n_test = 100
    path = tmp / f"synthetic28_{n_train}.npy"
    if not path.exists():
        rng = np.random.default_rng(0)
        # Smooth blobs rather than pure noise; the content does not change the speed.
        yy, xx = np.mgrid[0:28, 0:28]
        n = n_train + n_test
        cy, cx = rng.uniform(6, 22, (2, n, 1, 1))
        r = rng.uniform(3, 8, (n, 1, 1))
        img = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        np.save(path, img.astype(np.uint8))
    # A slightly larger test share than needed so that the training split is not short.
    return str(path), {"test_fraction": n_test / (n_train + n_test), "seed": 0}


#: wae-toolkit-only settings from the command line (--precision, --compile, --compile-mode);
#: pythae has none of them.
WAE_EXTRA: dict[str, Any] = {}


def _config(case: Case, tmp: Path, threads: int | None, out: Path) -> RunConfig:
    data, data_opts = _data_spec(case, tmp)
    return RunConfig(
        **WAE_EXTRA,
        data=data,
        data_opts=data_opts,
        network=case.network,
        network_opts=dict(case.network_opts),
        cost="l2",
        cost_opts={"scale": case.cost_scale},
        penalty="mmd-imq",
        penalty_opts={"estimator": "paper"},
        prior="gaussian",
        latent_dim=LATENT,
        encoder="deterministic",
        lam=LAMBDA,
        epochs=case.epochs,
        batch_size=case.batch,
        lr=LR,
        beta1=BETAS[0],
        beta2=BETAS[1],
        lr_schedule=[],
        seed=0,
        device=case.device,
        threads=threads,
        out=str(out),
        overwrite=True,
        log_every=50,
        eval_every=10**6,
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_wae(case: Case, tmp: Path, threads: int | None, default_threads: int) -> dict[str, float]:
    """One wae-toolkit run; the loop's seconds without the evaluations."""
    config = _config(case, tmp, threads, tmp / f"wae_{case.name}")
    eval_seconds = 0.0
    original = wae_hooks.evaluate

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        nonlocal eval_seconds
        _sync(case.device)
        t0 = time.perf_counter()
        res = original(*args, **kwargs)
        _sync(case.device)
        eval_seconds += time.perf_counter() - t0
        return res

    torch.set_num_threads(default_threads)  # so that threads=None sees torch's own default
    wae_hooks.evaluate = timed_evaluate
    try:
        result = wae_train(config)
    finally:
        wae_hooks.evaluate = original
    s = result.summary
    seconds = s["seconds"] - eval_seconds
    samples = s["steps"] * case.batch
    assert s["steps"] == case.epochs * case.steps_per_epoch, (s["steps"], case)
    return {
        "samples_per_second": samples / seconds,
        "seconds": seconds,
        "steps": s["steps"],
        "summary_samples_per_second": s["samples_per_second"],
        "threads_used": _threads_used(config, result),
    }


def _threads_used(config: RunConfig, result: Any) -> int:
    n_params = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    return _threads_for(config, torch.device(config.device), n_params)


def pythae_wae_mmd(model_config: Any, encoder: nn.Module, decoder: nn.Module) -> Any:
    """pythae's ``WAE_MMD`` around the very modules wae-toolkit built, through thin wrappers
    that only rename their outputs (``embedding``, ``reconstruction``)."""
    from pythae.models import WAE_MMD
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, net: nn.Module) -> None:
            BaseEncoder.__init__(self)
            self.net = net

        def forward(self, x: torch.Tensor) -> ModelOutput:
            return ModelOutput(embedding=self.net(x))

    class Decoder(BaseDecoder):
        def __init__(self, net: nn.Module) -> None:
            BaseDecoder.__init__(self)
            self.net = net

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z))

    return WAE_MMD(model_config, encoder=Encoder(encoder), decoder=Decoder(decoder))


def run_pythae(case: Case, tmp: Path, threads: int) -> dict[str, float]:
    """One pythae run with the same networks, objective, data, batch, optimizer and steps."""
    from pythae.models import WAE_MMD_Config
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class Clock(TrainingCallback):
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_begin(self, training_config: Any, **kwargs: Any) -> None:
            _sync(case.device)
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            _sync(case.device)
            self.end = time.perf_counter()

    config = _config(case, tmp, threads, tmp / "unused")
    torch.manual_seed(0)
    data = load_dataset(config.data, config.data_opts)
    comps = build_components(config, data.sample_shape, data.value_range)
    n = case.batch * case.steps_per_epoch
    assert len(data.train) >= n, (len(data.train), n)
    x = data.train[:n].contiguous()
    model_config = WAE_MMD_Config(
        input_dim=tuple(data.sample_shape),
        latent_dim=LATENT,
        kernel_choice="imq",
        reg_weight=LAMBDA,
        kernel_bandwidth=1.0,
        scales=[0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        reconstruction_loss_scale=case.cost_scale,
    )
    model = pythae_wae_mmd(model_config, comps.model.encoder, comps.model.decoder)
    from pythae.data.datasets import BaseDataset

    train_set = BaseDataset(x, torch.zeros(n))
    out = tempfile.mkdtemp(dir=tmp, prefix="pythae_")
    trainer_config = BaseTrainerConfig(
        output_dir=out,
        per_device_train_batch_size=case.batch,
        num_epochs=case.epochs,
        learning_rate=LR,
        optimizer_cls="Adam",
        optimizer_params={"betas": BETAS},
        steps_saving=None,
        steps_predict=None,
        seed=0,
        no_cuda=not case.device.startswith("cuda"),
    )
    torch.set_num_threads(threads)
    clock = Clock()
    trainer = BaseTrainer(model, train_set, None, trainer_config, callbacks=[clock])
    t0 = time.perf_counter()
    trainer.train()
    call_seconds = time.perf_counter() - t0
    seconds = clock.end - clock.start
    samples = case.epochs * n
    return {
        "samples_per_second": samples / seconds,
        "seconds": seconds,
        "steps": case.epochs * case.steps_per_epoch,
        "call_seconds": call_seconds,
    }


def quiet_pythae() -> None:
    """pythae's loggers at WARNING (its trainer logs every epoch to stdout)."""
    import pythae.trainers.base_trainer.base_trainer  # noqa: F401  (its logger, to silence)

    for name in (
        "pythae",
        "pythae.trainers.base_trainer.base_trainer",
        "pythae.trainers.training_callbacks",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        default="cpu-mlp-digits,cpu-conv-28,gpu-mlp-digits,gpu-conv-28-b100,gpu-conv-28-b1024",
        help="comma-separated cases",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs of every case (default: each case's own)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs per case")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for both (default: torch's)"
    )
    parser.add_argument("--width", type=int, default=128, help="conv width (the paper: 128)")
    parser.add_argument(
        "--cpu-conv-steps", type=int, default=30, help="steps of the cpu-conv-28 case"
    )
    parser.add_argument("--json", default=None, help="where to write the results (JSON)")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="wae-toolkit's precision (pythae always trains in fp32; bf16 is not like for like)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="wae-toolkit compiles its step (compilation time is counted in its training time)",
    )
    parser.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune"],
        help="the torch.compile mode with --compile (reduce-overhead: CUDA graphs)",
    )
    args = parser.parse_args()
    WAE_EXTRA.update(precision=args.precision, compile=args.compile)
    if args.compile:
        WAE_EXTRA["compile_mode"] = args.compile_mode

    try:
        import pythae
    except ImportError:
        sys.exit("pythae is not installed: pip install 'wae-toolkit[bench]' (pythae==0.1.2)")

    quiet_pythae()
    default_threads = torch.get_num_threads()
    threads = args.threads or default_threads
    all_cases = _cases(args.width, args.cpu_conv_steps)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in all_cases]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {', '.join(all_cases)}")

    print(
        f"torch {torch.__version__}, pythae {getattr(pythae, '__version__', '0.1.2')}, "
        f"{threads} thread(s) for both (torch default {default_threads}), "
        f"{args.repeats} pair(s) per case; wae-toolkit precision {args.precision}, "
        f"compile {args.compile}" + (f" ({args.compile_mode})" if args.compile else "")
    )
    results: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": threads,
        "torch_default_threads": default_threads,
        "repeats": args.repeats,
        "wae_precision": args.precision,
        "wae_compile": args.compile,
        "wae_compile_mode": args.compile_mode if args.compile else None,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="vs_pythae_") as tmp_name:
        tmp = Path(tmp_name)
        for name in names:
            case = all_cases[name]
            if args.epochs is not None:
                case = replace(case, epochs=args.epochs)
            if case.device == "cuda" and not torch.cuda.is_available():
                print(f"{name}: skipped (torch sees no CUDA GPU)")
                results["cases"][name] = {"skipped": "no CUDA GPU"}
                _write(args.json, results)
                continue
            if case.device == "cuda":
                # One untimed epoch of each first: the CUDA context, cuDNN's autotuning (which
                # wae-toolkit turns on for conv nets) and the allocator's pools are warm before
                # the first timed pair, as they are for every later one.
                warm = replace(case, epochs=1)
                run_pythae(warm, tmp, threads)
                run_wae(warm, tmp, threads, default_threads)
            # Does wae-toolkit's automatic thread choice differ from the fixed one?
            auto_cfg = _config(case, tmp, None, tmp / "probe")
            probe = load_dataset(auto_cfg.data, auto_cfg.data_opts)
            comps = build_components(auto_cfg, probe.sample_shape, probe.value_range)
            n_params = sum(p.numel() for p in comps.model.parameters() if p.requires_grad)
            torch.set_num_threads(default_threads)
            auto_threads = _threads_for(auto_cfg, torch.device(case.device), n_params)
            with_auto = case.device == "cpu" and auto_threads != threads
            pairs: list[dict[str, Any]] = []
            for rep in range(args.repeats):
                p = run_pythae(case, tmp, threads)
                w = run_wae(case, tmp, threads, default_threads)
                pair = {
                    "pythae": p,
                    "wae": w,
                    "ratio": w["samples_per_second"] / p["samples_per_second"],
                }
                if with_auto:
                    pair["wae_auto"] = run_wae(case, tmp, None, default_threads)
                pairs.append(pair)
                auto_txt = (
                    f", wae auto({auto_threads}t) {pair['wae_auto']['samples_per_second']:.0f}"
                    if with_auto
                    else ""
                )
                print(
                    f"  {name} pair {rep + 1}: pythae {p['samples_per_second']:.0f}/s "
                    f"({p['seconds']:.1f} s), wae {w['samples_per_second']:.0f}/s "
                    f"({w['seconds']:.1f} s), ratio {pair['ratio']:.2f}{auto_txt}",
                    flush=True,
                )
            py = [p["pythae"]["samples_per_second"] for p in pairs]
            wa = [p["wae"]["samples_per_second"] for p in pairs]
            ratios = [p["ratio"] for p in pairs]
            row: dict[str, Any] = {
                "note": case.note,
                "device": case.device,
                "batch": case.batch,
                "steps": case.epochs * case.steps_per_epoch,
                "epochs": case.epochs,
                "threads": threads if case.device == "cpu" else None,
                "pythae_samples_per_second": statistics.median(py),
                "wae_samples_per_second": statistics.median(wa),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "pairs": pairs,
            }
            if with_auto:
                row["wae_auto_threads"] = auto_threads
                row["wae_auto_samples_per_second"] = statistics.median(
                    [p["wae_auto"]["samples_per_second"] for p in pairs]
                )
            results["cases"][name] = row
            _write(args.json, results)  # after every case: a run stopped part-way keeps them

    print()
    header = (
        f"{'case':<20} {'thr':>3} {'batch':>5} {'steps':>5} {'pythae/s':>9} {'wae/s':>9} "
        f"{'wae/pythae':>10} {'ratio range':>12} {'wae auto/s':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results["cases"].items():
        if "skipped" in row:
            print(f"{name:<20} skipped: {row['skipped']}")
            continue
        ratios = [p["ratio"] for p in row["pairs"]]
        auto = (
            f"{row['wae_auto_samples_per_second']:.0f} ({row['wae_auto_threads']}t)"
            if "wae_auto_samples_per_second" in row
            else "same"
        )
        thr = row["threads"] if row["threads"] is not None else "-"
        print(
            f"{name:<20} {thr:>3} {row['batch']:>5} {row['steps']:>5} "
            f"{row['pythae_samples_per_second']:>9.0f} {row['wae_samples_per_second']:>9.0f} "
            f"{row['ratio_median']:>10.2f} {_spread(ratios):>12} {auto:>12}"
        )
    if args.json:
        _write(args.json, results)
        print(f"\nwrote {args.json}")


def _write(path: str | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
