"""Building blocks for multi-process (DDP) training with :mod:`torch.distributed`.

One process per device, launched by ``torchrun``; every rank holds a full replica of the model,
the prior and the penalty (with its critic, for an adversarial penalty), and a disjoint shard of
the data.

What is gathered, and why
-------------------------
The WAE objective of one step is ``mean_i c(x_i, G(z_q_i)) + lambda * D_Z(z_q, z_p)``. The cost is
a mean over samples, so each rank can average it over its own shard and DDP's gradient averaging
recovers the gradient of the mean over the global batch. The latent penalty is not: an MMD, a
Sinkhorn divergence or a critic's loss is a function of the whole batch of codes (the MMD sums a
kernel over all pairs). Computing it per rank on the local batch of ``B / N`` codes, as pythae
does for its WAE-MMD, gives another estimator of the same divergence: it misses every pair of
codes that lie on different ranks, so it is noisier (a U-statistic on ``B / N`` samples instead of
``B``), and the biased V-statistic overestimates by ``O(N / B)`` instead of ``O(1 / B)``.

Here each rank instead all-gathers its codes and its prior samples with :func:`gather`, which is
differentiable, and evaluates the penalty on the global batch: the value is the single-process
estimator on the concatenated batch, identical on every rank, and the gradients that reach each
rank's own codes are those of the single-process objective (see :func:`gather` for the
derivation). The price is that every rank computes the full ``(N B) x (N B)`` kernel, so the
penalty's cost per rank does not shrink with ``N``; for the batch sizes WAEs use it is small next
to the networks.

An adversarial penalty is replicated the same way: its critic starts from the same weights on every
rank (:func:`sync_module`) and every rank runs ``critic_step`` on the same gathered, detached codes
and prior samples, so the critic updates are identical and the replicas stay equal without any
gradient communication.

The helpers
-----------
* :class:`DistContext`, :func:`init_from_env`, :func:`shutdown`: the process group.
* :func:`gather`: differentiable all-gather along dim 0.
* :func:`epoch_permutation`, :func:`shard_indices`, :func:`seed_for_rank`: data sharding and
  randomness.
* :func:`sync_module`, :func:`average_gradients`, :func:`wrap_ddp`, :func:`ddp_model`,
  :func:`max_divergence`: keeping the replicas equal.
* :func:`all_reduce_mean`, :func:`barrier`: logging and coordination.

Every function is a no-op (or the identity) when no process group is initialised or its world size
is 1, so a training loop can call them unconditionally. The library never prints; only the main
rank (``ctx.is_main``) should write files.

Wiring into a training loop (launched as ``torchrun --nproc-per-node N ...``)::

    ctx = init_from_env()                                  # world size 1 without torchrun
    torch.manual_seed(seed)                                # same initial weights on every rank
    model, penalty = build(...); penalty.bind(model.prior)
    model.to(ctx.device); penalty.to(ctx.device)
    sync_module(model); sync_module(penalty)               # rank 0's weights, critic included
    view = ddp_model(model, ctx)                           # DDP encoder and decoder
    opt = adam(model.parameters(), ...)                    # the optimizer sees `model`
    torch.manual_seed(seed_for_rank(seed, ctx.rank))       # distinct prior samples per rank
    for epoch in ...:
        local = shard_indices(epoch_permutation(n, seed, epoch, ctx.device), b,
                              rank=ctx.rank, world_size=ctx.world_size)
        for i in range(len(local) // b):
            x = train_x[local[i * b : (i + 1) * b]]
            mean, log_var = view.encode_stats(x); z_q = view.draw(mean, log_var)
            z_p = model.prior.sample(b)
            z_all, zp_all = gather(z_q), gather(z_p)
            if penalty.adversarial:
                penalty.critic_step(z_all.detach(), zp_all.detach())
            loss = cost(x, view.decode(z_q)).mean() + lam * penalty(z_all, zp_all)
            opt.zero_grad(); loss.backward()
            average_gradients(model.prior)                 # only if the prior is learnable
            opt.step()
        logs = all_reduce_mean(epoch_means)                # every rank, then:
        if ctx.is_main: write metrics, evaluate, save weights of `model`
    shutdown(ctx)
"""

from __future__ import annotations

from wae_toolkit.engine.distributed.collectives import (
    all_reduce_mean,
    gather,
)
from wae_toolkit.engine.distributed.context import (
    ENV_VARS,
    DistContext,
    barrier,
    epoch_permutation,
    init_from_env,
    launched_rank,
    rank,
    seed_for_rank,
    shard_indices,
    shutdown,
    world_size,
)
from wae_toolkit.engine.distributed.replicas import (
    average_gradients,
    ddp_model,
    max_divergence,
    sync_module,
    wrap_ddp,
)

__all__ = [
    "DistContext",
    "init_from_env",
    "launched_rank",
    "shutdown",
    "world_size",
    "rank",
    "gather",
    "epoch_permutation",
    "shard_indices",
    "seed_for_rank",
    "sync_module",
    "average_gradients",
    "wrap_ddp",
    "ddp_model",
    "max_divergence",
    "all_reduce_mean",
    "barrier",
    "ENV_VARS",
]
