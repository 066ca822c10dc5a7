"""Data-parallel training on several GPUs or processes: ``torchrun --nproc_per_node=N -m training.train ...``.

What changes when ``training.train`` runs under torchrun (``WORLD_SIZE`` > 1); nothing does otherwise:

* one process per device: ``cuda:LOCAL_RANK`` with NCCL on GPUs, the CPU with gloo;
* the model is wrapped in ``DistributedDataParallel``; its BatchNorm layers become :class:`SyncedBatchNorm2d`,
  which normalises over the batches of all ranks (below: why it is needed);
* ``data.batch_size`` stays the **global** batch: each rank trains on ``batch_size / WORLD_SIZE`` windows of its
  own data stream, so a recipe means the same with 1 or 8 GPUs (same learning rate, same steps);
* rank 0 alone writes the log, the training states and ``ema.safetensors``, and runs the periodic evaluation;
  every rank logs the same numbers (the loss is averaged over ranks) and stops at the same iteration;
* the world size and both batch sizes are recorded in ``config.yaml`` and in every training state.

Data streams. The global batch of iteration ``i`` is made of ``S`` streams (``train.data_streams``, default:
the world size). Stream ``s`` draws ``batch_size / S`` windows from ``numpy.random.default_rng([seed, i, s])``;
the scale of the batch comes from ``default_rng([seed, i])``, as in a single-process run, so every stream (and
rank) uses the same scale. Rank ``r`` of ``W`` takes streams ``r*S/W .. (r+1)*S/W - 1``. With ``S = 1`` the
batch is exactly the single-process one (``TrainData.batch``). Batches stay a pure function of (seed,
iteration, stream), so resuming (with the same world size) is exact, and one process with
``--set train.data_streams=W`` trains on exactly the batches of a ``W``-process run.

BatchNorm. The network's BatchNorm layers (PFRB masks, and the OSConv trunks, which normalise a ``(B, C, 1, 1)``
tensor: one value per window) compute batch statistics. Per rank those would be statistics of ``B / W``
windows: a different forward pass from the single-process one (so the steps differ), and degenerate for small
per-GPU batches (the trunk normalises 2 values per channel at 2 windows per GPU). Synchronised BatchNorm
computes them over the global batch. ``torch.nn.SyncBatchNorm`` runs on CUDA only, so this module has its own,
built on two all-reduces (sum, then centred sum of squares) whose backward is an all-reduce too; it serves
gloo (CPU) and NCCL (GPU) alike. ``train.sync_batchnorm: false`` keeps per-rank statistics.

Rendezvous. torchrun sets ``MASTER_ADDR``/``MASTER_PORT`` (``env://``); ``VSSAVSR_DIST_INIT`` may give another
``init_method`` (e.g. ``file:///shared/rdzv-file``). With gloo and a loopback ``MASTER_ADDR`` (single machine),
gloo's connections use the loopback interface unless ``GLOO_SOCKET_IFNAME`` says otherwise.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.data import TrainData
from training.scales import gt_patch_size

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``size == 1``: not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> World:
    """The world torchrun describes in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_spec: str | None) -> tuple[World, torch.device | None]:
    """Join the process group when launched by torchrun. Returns the world and the device to train on
    (``None``: not distributed, the caller picks its device as before)."""
    world = from_environment()
    if not world.active:
        return world, None
    use_cuda = torch.cuda.is_available() and device_spec in (None, "auto", "cuda")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    else:
        device = torch.device("cpu")
        _gloo_on_loopback()
    if not dist.is_initialized():
        kwargs = {"backend": backend, "timeout": datetime.timedelta(minutes=30)}
        init = os.environ.get("VSSAVSR_DIST_INIT")
        if init:
            kwargs.update(init_method=init, rank=world.rank, world_size=world.size)
        if use_cuda:
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
    return World(world.rank, world.size, world.local_rank, backend), device


def _gloo_on_loopback() -> None:
    if "GLOO_SOCKET_IFNAME" in os.environ:
        return
    if os.environ.get("MASTER_ADDR", "127.0.0.1") not in LOOPBACK_HOSTS and not os.environ.get("VSSAVSR_DIST_INIT", "").startswith("file://"):
        return
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    if names:
        os.environ["GLOO_SOCKET_IFNAME"] = names[0]


def teardown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------
# batch sizes and data streams
# ------------------------------------------------------------------------------------------------


def streams_for(world: World, data_streams: int | None) -> tuple[int, list[int]]:
    """(streams in the global batch, the streams this rank draws)."""
    total = int(data_streams or world.size)
    if total < 1 or total % world.size:
        raise ValueError(f"train.data_streams={total} must be a positive multiple of the number of processes ({world.size})")
    per_rank = total // world.size
    return total, list(range(world.rank * per_rank, (world.rank + 1) * per_rank))


def batch_sizes(global_batch: int, streams: int, world: World) -> dict:
    if global_batch % streams:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the {streams} data streams "
                         f"({world.size} processes); e.g. data.batch_size={streams * max(1, round(global_batch / streams))}")
    return {"world_size": world.size, "global_batch": global_batch, "batch_per_rank": global_batch // world.size,
            "data_streams": streams, "backend": world.backend}


def stream_batch(data: TrainData, iteration: int, streams: list[int], total: int) -> dict:
    """The windows of ``streams`` (out of ``total``) of the global batch of ``iteration`` (see the docstring)."""
    if total == 1:
        return data.batch(iteration)
    scale = data.schedule.sample(int(iteration), np.random.default_rng([data.seed, int(iteration)]))
    size = gt_patch_size(data.lr_patch, scale)
    per_stream = data.batch_size // total
    samples = []
    for s in streams:
        rng = np.random.default_rng([data.seed, int(iteration), int(s)])
        samples.extend(data.sample(rng, size) for _ in range(per_stream))
    return {"gt": torch.stack(samples), "scale": torch.tensor(scale, dtype=torch.float64), "iteration": int(iteration)}


class RankBatches:
    """This rank's share of every global batch: ``batch(i)`` as ``TrainData.batch`` has it, for
    ``training.data.batch_iterator`` (and its DataLoader workers)."""

    def __init__(self, data: TrainData, streams: list[int], total: int):
        self.data, self.streams, self.total = data, streams, total

    def batch(self, iteration: int) -> dict:
        return stream_batch(self.data, iteration, self.streams, self.total)


def share(cfg: dict, data: TrainData, world: World,
          resumed: dict | None = None) -> tuple[dict, TrainData | RankBatches]:
    """This rank's part of a run: ``cfg`` with the batch sizes recorded under ``distributed`` (so in
    ``config.yaml`` and every state), and the batches this rank trains on: ``data`` itself when the global batch
    is one data stream (a single process, as before), else its :class:`RankBatches`."""
    total, mine = streams_for(world, (cfg.get("train", {}) or {}).get("data_streams"))
    sizes = batch_sizes(data.batch_size, total, world)
    if world.active and world.is_main:
        print(f"distributed: {world.size} processes ({world.backend}), global batch {sizes['global_batch']}, "
              f"{sizes['batch_per_rank']} per process", file=sys.stderr)
    if resumed and (resumed["config"].get("distributed") or {}).get("data_streams", 1) != total:
        print("warning: this run draws its batches from another number of data streams than the run it resumes; "
              "from here on it sees other batches than an uninterrupted run would", file=sys.stderr)
    return {**cfg, "distributed": sizes}, data if total == 1 else RankBatches(data, mine, total)


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; its gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        g = grad.clone()
        dist.all_reduce(g)
        return g


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of every rank (any backend)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        # Every rank holds a batch of the same shape (one scale and patch size per iteration), so the global
        # count needs no communication (nor a device sync).
        n = x.numel() // c * dist.get_world_size()
        if n <= 1:  # one value per channel: no batch statistics (like BatchNorm2dAnyBatch)
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        xf = x.float()
        mean = _AllReduceSum.apply(xf.sum(dim=(0, 2, 3))) / n
        centred = xf - mean.view(1, c, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dim=(0, 2, 3))) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
            self.running_var.lerp_((var.detach() * (n / (n - 1))).to(self.running_var.dtype), factor)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def sync_batchnorm(net: nn.Module) -> int:
    """Replace every BatchNorm2d of ``net`` by a :class:`SyncedBatchNorm2d` with the same state (in place).
    Returns how many were replaced. State-dict keys do not change."""
    count = 0
    for parent in net.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SyncedBatchNorm2d):
                new = SyncedBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                        child.track_running_stats)
                new.load_state_dict(child.state_dict())
                new.to(device=next(iter(child.state_dict().values())).device)
                new.train(child.training)
                setattr(parent, name, new)
                count += 1
    return count


def synced_batchnorm(world: World, train_cfg: dict) -> bool:
    """Whether BatchNorm statistics cover the global batch (``train.sync_batchnorm``, on by default)."""
    return world.active and bool(train_cfg.get("sync_batchnorm", True))


def wrap(net: nn.Module, world: World, device: torch.device, synced: bool = True) -> nn.Module:
    """``DistributedDataParallel`` around ``net``, or ``net`` itself when not distributed. ``net`` keeps its
    parameters: optimiser, EMA and states use ``net`` itself. Rank 0's weights are broadcast to every rank here."""
    if not world.active:
        return net
    ids = [device.index] if device.type == "cuda" else None
    kwargs = {}
    if synced:  # every rank computes the same running statistics: no broadcast before each forward
        newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        kwargs["forward_sync_buffers" if newer else "broadcast_buffers"] = False
    return DistributedDataParallel(net, device_ids=ids, **kwargs)


def mean(world: World, value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over the ranks (itself when not distributed)."""
    if not world.active:
        return value
    v = value.detach().clone()
    dist.all_reduce(v)
    return v / world.size


def any_rank(world: World, flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any rank (so that every rank stops at the same iteration)."""
    if not world.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)
