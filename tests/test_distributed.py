"""wae_toolkit.engine.distributed: 2 CPU processes with gloo against one process on the global
batch.

One spawn (module fixture) runs every distributed scenario and saves plain tensors; the tests
compare them in the parent with the same computation done in one process on the concatenated
batch.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from wae_toolkit.assembly.model import WAE
from wae_toolkit.builtins.costs import SquaredL2Cost
from wae_toolkit.builtins.gan import JSGANPenalty
from wae_toolkit.builtins.mmd import IMQMMDPenalty
from wae_toolkit.builtins.priors import GaussianPrior
from wae_toolkit.engine.distributed import (
    DistContext,
    all_reduce_mean,
    average_gradients,
    barrier,
    ddp_model,
    epoch_permutation,
    gather,
    init_from_env,
    max_divergence,
    seed_for_rank,
    shard_indices,
    shutdown,
    sync_module,
    wrap_ddp,
)
from wae_toolkit.errors import UsageError
from wae_toolkit.plugins.interfaces import LatentPenalty

WORLD = 2
BATCH = 6  # per rank
IN, DIM = 5, 3
LAM = 3.0
N_DATA = WORLD * BATCH * 3  # 3 steps per epoch
STEPS = 5  # spans two epochs
ESTIMATORS = ("unbiased", "paper")
MODES = ("average_gradients", "ddp")
SPAWN_TIMEOUT_S = 120.0
F64 = torch.float64


# -- the computations, written once for a rank and for the single process -----------------------


def _ranks(ctx: DistContext) -> list[int]:
    """The ranks whose data this process handles: its own, or all of them in a single process."""
    return [ctx.rank] if ctx.is_distributed else list(range(WORLD))


def _model() -> WAE:
    torch.manual_seed(0)
    prior = GaussianPrior(DIM).to(F64)
    return WAE(nn.Linear(IN, DIM).to(F64), nn.Linear(DIM, IN).to(F64), prior, gaussian=False)


def _one_step(ctx: DistContext, estimator: str, mode: str) -> dict[str, Tensor]:
    """One WAE-MMD loss and backward; parameter gradients averaged over ranks as DDP does."""
    model = _model()
    gen = torch.Generator().manual_seed(1)
    x_all = torch.randn(WORLD * BATCH, IN, dtype=F64, generator=gen)
    zp_all = torch.randn(WORLD * BATCH, DIM, dtype=F64, generator=gen)
    rows = torch.cat([torch.arange(r * BATCH, (r + 1) * BATCH) for r in _ranks(ctx)])
    x, zp = x_all[rows], zp_all[rows]
    penalty = IMQMMDPenalty(estimator=estimator)  # type: ignore[arg-type]
    penalty.bind(model.prior)
    view = ddp_model(model, ctx) if mode == "ddp" else model
    z = view.encode(x)
    z_all = gather(z)
    pen = penalty(z_all, gather(zp))
    rec = SquaredL2Cost()(x, view.decode(z)).mean()
    (rec + LAM * pen).backward()
    if mode == "average_gradients":
        average_gradients(model)
    out = {"penalty": pen.detach(), "codes": z_all.detach()}
    return out | {f"grad.{k}": p.grad.clone() for k, p in model.named_parameters()}  # type: ignore[union-attr]


def _train(ctx: DistContext, kind: str) -> dict[str, Tensor]:
    """STEPS Adam steps over sharded data with DDP, as the training loop would run them."""
    model = _model()
    data = torch.randn(N_DATA, IN, dtype=F64)
    penalty: LatentPenalty
    if kind == "gan":
        torch.manual_seed(100 + ctx.rank)  # rank 1 starts from another critic: sync_module fixes it
        penalty = JSGANPenalty(hidden=8, layers=2, lr=1e-3)
    else:
        penalty = IMQMMDPenalty(estimator="unbiased")
    penalty.bind(model.prior)
    logs = {"divergence_before": torch.tensor(max_divergence(penalty))}
    sync_module(model)
    sync_module(penalty)
    logs["divergence_after"] = torch.tensor(max_divergence(penalty))
    view = ddp_model(model, ctx)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    cost = SquaredL2Cost()
    gens = {r: torch.Generator().manual_seed(seed_for_rank(7, r)) for r in _ranks(ctx)}
    batch = BATCH * len(_ranks(ctx))
    step, epoch = 0, 0
    while step < STEPS:
        perm = epoch_permutation(N_DATA, 3, epoch)
        local = shard_indices(perm, batch, rank=ctx.rank, world_size=ctx.world_size)
        for i in range(len(local) // batch):
            if step == STEPS:
                break
            x = data[local[i * batch : (i + 1) * batch]]
            z = view.encode(x)
            zp = torch.cat([model.prior.sample(BATCH, generator=gens[r]) for r in _ranks(ctx)])
            z_all, zp_all = gather(z), gather(zp)
            if penalty.adversarial:
                penalty.critic_step(z_all.detach(), zp_all.detach())
            loss = cost(x, view.decode(z)).mean() + LAM * penalty(z_all, zp_all)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        epoch += 1
    logs["divergence_end"] = torch.tensor(max_divergence(model) + max_divergence(penalty))
    params = {f"model.{k}": p.detach().clone() for k, p in model.named_parameters()}
    return (
        logs | params | {f"penalty.{k}": p.detach().clone() for k, p in penalty.named_parameters()}
    )


def _checks(ctx: DistContext) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "is_main": ctx.is_main,
        "backend": ctx.backend,
    }
    for name, t in {
        "rows": torch.zeros(3 + ctx.rank, 2),
        "dtype": torch.zeros(3, 2, dtype=torch.float32 if ctx.rank == 0 else F64),
    }.items():
        try:
            gather(t)
            out[f"error.{name}"] = ""
        except UsageError as e:
            out[f"error.{name}"] = str(e)
    # The group is still usable after a refused gather.
    out["after_error"] = gather(torch.full((2, 1), float(ctx.rank)))
    means = all_reduce_mean({"a": torch.tensor(ctx.rank + 1.0), "b": torch.tensor([ctx.rank, 2.0])})
    out["mean.a"], out["mean.b"] = means["a"], means["b"]
    barrier()
    return out


def _worker(rank: int, port: int, out_dir: str) -> None:
    import os

    # The C++ side (gloo) writes to fd 2 before an abort: keep it for the failure message.
    log = os.open(Path(out_dir) / f"rank{rank}.stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 2)
    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    ctx = init_from_env(backend="gloo", timeout=timedelta(seconds=60), device="cpu")
    try:
        results: dict[str, Any] = {"checks": _checks(ctx)}
        for est in ESTIMATORS:
            for mode in MODES:
                results[f"step.{est}.{mode}"] = _one_step(ctx, est, mode)
        for kind in ("mmd", "gan"):
            results[f"train.{kind}"] = _train(ctx, kind)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
        barrier()  # no rank closes its connections while another still uses them
    finally:
        shutdown(ctx)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every rank's results; the workers fail (not hang) on a collective after 60 s."""
    out = tmp_path_factory.mktemp("dist")
    # The free port is found by binding and releasing it, so another process (a torchrun test
    # running beside this one) can take it first: then the group fails to form, and one new
    # attempt on a new port is made. A failure of the code under test fails both attempts.
    for attempt in (1, 2):
        procs = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False)
        deadline = time.monotonic() + SPAWN_TIMEOUT_S
        try:
            while not procs.join(timeout=1.0):
                if time.monotonic() > deadline:
                    for p in procs.processes:
                        p.kill()
                    pytest.fail(f"the {WORLD} workers did not finish within {SPAWN_TIMEOUT_S} s")
            break
        # A worker raised, or died of a signal (gloo aborts on some connection faults).
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            for p in procs.processes:
                p.kill()
            if attempt == 2:
                logs = [out / f"rank{r}.stderr" for r in range(WORLD)]
                text = "\n".join(
                    f"--- {f.name} ---\n{f.read_text(errors='replace')}" for f in logs if f.exists()
                )
                raise AssertionError(f"{e}\n{text}") from e
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _close(a: Tensor, b: Tensor, atol: float = 1e-10) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0.0)


# -- the distributed results against one process on the global batch ----------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_mmd_on_gathered_codes_equals_single_process_value_and_gradients(ranks, estimator, mode):
    ref = _one_step(DistContext(), estimator, mode)
    grads = [k for k in ref if k.startswith("grad.")]
    assert grads
    for res in ranks:
        got = res[f"step.{estimator}.{mode}"]
        _close(got["codes"], ref["codes"])  # rank order = single-process order
        _close(got["penalty"], ref["penalty"])
        for k in grads:
            _close(got[k], ref[k])


def test_ranks_stay_in_sync_and_match_single_process_mmd(ranks):
    ref = _train(DistContext(), "mmd")
    first, second = ranks[0]["train.mmd"], ranks[1]["train.mmd"]
    assert float(first["divergence_end"]) == 0.0
    init = _model().state_dict()
    for k, v in ref.items():
        if k.startswith("model."):
            assert torch.equal(first[k], second[k]), k
            _close(first[k], v, atol=1e-8)
            assert not torch.equal(v, init[k.removeprefix("model.")]), f"{k} did not train"


def test_critic_is_replicated_and_stays_in_sync_gan(ranks):
    ref = _train(DistContext(), "gan")
    first, second = ranks[0]["train.gan"], ranks[1]["train.gan"]
    assert float(first["divergence_before"]) > 0.0  # the ranks built different critics
    assert float(first["divergence_after"]) == 0.0  # sync_module copied rank 0's
    assert float(first["divergence_end"]) == 0.0
    critic = [k for k in ref if k.startswith("penalty.discriminator.")]
    assert critic
    for k in critic + [k for k in ref if k.startswith("model.")]:
        assert torch.equal(first[k], second[k]), k
        _close(first[k], ref[k], atol=1e-8)


def test_context_from_torchrun_variables(ranks):
    for r, res in enumerate(ranks):
        checks = res["checks"]
        assert (checks["rank"], checks["world_size"], checks["backend"]) == (r, WORLD, "gloo")
        assert checks["is_main"] == (r == 0)


def test_gather_refuses_unequal_shapes_on_every_rank(ranks):
    for res in ranks:
        checks = res["checks"]
        msg = checks["error.rows"]
        assert "same shape and dtype on every rank" in msg
        assert "rank 0 (3 rows" in msg and "rank 1 (4 rows" in msg
        assert "float32" in checks["error.dtype"] and "float64" in checks["error.dtype"]
        _close(checks["after_error"], torch.tensor([[0.0], [0.0], [1.0], [1.0]]))


def test_all_reduce_mean_averages_named_tensors(ranks):
    for res in ranks:
        _close(res["checks"]["mean.a"], torch.tensor(1.5))
        _close(res["checks"]["mean.b"], torch.tensor([0.5, 2.0]))


# -- single process --------------------------------------------------------------------------------


def test_gather_with_one_process_is_the_identity():
    t = torch.randn(4, 3, requires_grad=True)
    assert gather(t) is t


def test_gather_needs_a_batch_dimension():
    with pytest.raises(UsageError, match="batch dimension"):
        gather(torch.tensor(1.0))


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_init_from_env_without_variables_is_a_single_process(no_torchrun_env):
    ctx = init_from_env(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank) == (0, 1, 0)
    assert ctx.is_main and not ctx.is_distributed and not ctx.owns_group
    assert ctx.device == torch.device("cpu")
    assert not dist.is_initialized()
    shutdown(ctx)  # a no-op


def test_init_from_env_with_world_size_one(no_torchrun_env):
    no_torchrun_env.setenv("WORLD_SIZE", "1")
    assert init_from_env(device="cpu").world_size == 1
    assert not dist.is_initialized()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
        ({"WORLD_SIZE": "2"}, "RANK is not set"),
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK must be an integer in \[0, 2\)"),
    ],
)
def test_init_from_env_refuses_incomplete_variables(no_torchrun_env, env, match):
    for k, v in env.items():
        no_torchrun_env.setenv(k, v)
    with pytest.raises(UsageError, match=match):
        init_from_env(device="cpu")
    assert not dist.is_initialized()


def test_shards_are_disjoint_equal_and_concatenate_to_the_global_batches():
    perm = epoch_permutation(50, seed=3, epoch=0)
    shards = [shard_indices(perm, 4, rank=r, world_size=3) for r in range(3)]
    assert all(len(s) == 4 * 4 for s in shards)  # 50 // 12 = 4 steps of 4 per rank
    assert len(set(torch.cat(shards).tolist())) == 48
    single = shard_indices(perm, 12, rank=0, world_size=1)
    for i in range(4):
        step = torch.cat([s[i * 4 : (i + 1) * 4] for s in shards])
        assert torch.equal(step, single[i * 12 : (i + 1) * 12])
    with pytest.raises(UsageError, match="at most 16"):
        shard_indices(perm, 17, rank=0, world_size=3)
    with pytest.raises(UsageError, match="rank must be in"):
        shard_indices(perm, 4, rank=3, world_size=3)


def test_epoch_permutation_depends_on_seed_and_epoch_only():
    torch.manual_seed(0)
    a = epoch_permutation(20, 5, 1)
    torch.manual_seed(1)
    assert torch.equal(a, epoch_permutation(20, 5, 1))
    assert sorted(a.tolist()) == list(range(20))
    assert not torch.equal(a, epoch_permutation(20, 5, 2))
    assert not torch.equal(a, epoch_permutation(20, 6, 1))


def test_seed_for_rank_keeps_rank_0_and_separates_the_others():
    assert seed_for_rank(42, 0) == 42
    assert len({seed_for_rank(42, r) for r in range(8)}) == 8


def test_helpers_do_nothing_in_a_single_process():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model.decode(model.encode(torch.randn(4, IN, dtype=F64))).sum()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}  # type: ignore[union-attr]
    sync_module(model)
    average_gradients(model)
    barrier()
    ctx = DistContext()
    assert wrap_ddp(model.encoder, ctx) is model.encoder
    assert ddp_model(model, ctx) is model
    assert max_divergence(model) == 0.0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    for k, p in model.named_parameters():
        assert torch.equal(p.grad, grads[k])  # type: ignore[arg-type]
    t = torch.tensor(2.0, requires_grad=True)
    assert all_reduce_mean({"t": t})["t"].requires_grad is False
