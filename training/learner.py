"""The per-step model of training: the network, its optimizer and EMA copy, and what one iteration does to them.

``Learner.step(batch, iteration)``: asBI inputs from the batch's GT frames, the learning rate of the iteration,
forward (bf16 autocast on CUDA, ``torch.compile`` where configured), the pixel loss (Charbonnier or MSE), fresh gradients, clipping;
``Learner.apply(iteration)`` then moves the weights (Adam) and the EMA. The loop (``training.loop``) decides when to
log, save and evaluate; it never touches the network directly. BasicSR keeps its loop apart from its
per-step model in the same way. Under torchrun the network's BatchNorm layers are synchronised and it is wrapped in
DistributedDataParallel (``training.distributed``); the loss a step returns is then that of the global batch.
"""

from __future__ import annotations

import copy
import math
import sys

import torch

from training import distributed
from training.degrade import asbi
from training.distill import FeatureDistillation
from training.grow import grow_into
from training.state import build_network


#: ``loss.type`` values: Charbonnier (the reference's) or MSE, which is what PSNR measures.
LOSS_TYPES = ("charbonnier", "mse")


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: str = "charbonnier", eps: float = 1e-3) -> torch.Tensor:
    if loss_type == "mse":
        return torch.nn.functional.mse_loss(pred, target)
    return charbonnier(pred, target, eps)


def loss_settings(cfg: dict) -> tuple[str, float]:
    """``loss.type`` and ``loss.eps`` of a training config, checked."""
    lcfg = cfg.get("loss", {}) or {}
    loss_type = str(lcfg.get("type", "charbonnier"))
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss.type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}: set it in the config or "
                         f"with --set loss.type=mse")
    return loss_type, float(lcfg.get("eps", 1e-3))


def backward_pass(net: torch.nn.Module, opt: torch.optim.Optimizer, out: torch.Tensor, target: torch.Tensor,
                  eps: float = 1e-3, grad_clip: float = 0.0,
                  extra: torch.Tensor | None = None, loss_type: str = "charbonnier") -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel loss (``loss_type``) of ``out`` against ``target`` (plus ``extra``, another loss term), fresh
    gradients, the network's clipped to ``grad_clip`` (0: no clipping).

    Returns (loss, gradient norm before clipping) as tensors, so that reading them need not wait for the device;
    the caller decides whether to ``opt.step()`` (the training loop first checks that the loss is finite)."""
    loss = pixel_loss(out.float(), target, loss_type, eps)
    if extra is not None:
        loss = loss + extra
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    return loss, grad_norm


def learning_rate(it: int, base_lr: float, sched: dict | None) -> float:
    """Cosine annealing with restarts (the reference's schedule), optional linear warm-up.

    ``periods`` (iterations per cosine period), ``restart_weights`` (peak of each period relative to ``base_lr``),
    ``eta_min`` (floor). After the last period the rate stays at the floor."""
    sched = sched or {}
    periods = [int(p) for p in sched.get("periods", [300000] * 4)]
    weights = [float(w) for w in sched.get("restart_weights", [1.0] + [0.5] * (len(periods) - 1))]
    eta_min = float(sched.get("eta_min", 1e-7))
    warmup = int(sched.get("warmup", 0))
    if len(weights) != len(periods):
        raise ValueError("optim.schedule: restart_weights and periods differ in length")
    start = 0
    lr = eta_min
    for period, w in zip(periods, weights):
        if it < start + period:
            lr = eta_min + w * 0.5 * (base_lr - eta_min) * (1 + math.cos(math.pi * (it - start) / period))
            break
        start += period
    if warmup > 0 and it < warmup:
        lr *= (it + 1) / warmup
    return lr


class EMA:
    """Exponential moving average of all weights and float buffers (BatchNorm statistics included)."""

    def __init__(self, net: torch.nn.Module, decay: float = 0.999, warmup: bool = False):
        self.model = copy.deepcopy(net).eval()
        self.model.requires_grad_(False)
        self.decay = float(decay)
        self.warmup = bool(warmup)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, net: torch.nn.Module, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        src = net.state_dict()
        mine, theirs = [], []
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                mine.append(v)
                theirs.append(src[k])
            else:
                v.copy_(src[k])
        # One fused launch instead of one kernel per tensor (hundreds on CUDA); the copy has net's dtypes and device.
        torch._foreach_lerp_(mine, theirs, weight)


class Learner:
    """Network, Adam, EMA and the recipe's per-step settings, built from a training config."""

    def __init__(self, cfg: dict, device: torch.device, init_net: torch.nn.Module | None = None,
                 world: distributed.World = distributed.World()):
        tcfg = cfg.get("train", {}) or {}
        self.device = device
        self.world = world
        self.net = build_network(cfg.get("model"))
        if init_net is not None and cfg.get("init_grow"):
            grown = grow_into(self.net, init_net)
            more = f", ... ({len(grown)} tensors in all)" if len(grown) > 4 else ""
            print(f"grown from the init weights: {', '.join(grown[:4])}{more}", file=sys.stderr)
        elif init_net is not None:
            self.net.load_state_dict(init_net.state_dict())
        self.net.to(device).train()
        if tcfg.get("channels_last", True):
            self.net.use_channels_last()
        synced = distributed.synced_batchnorm(world, tcfg)
        if synced:  # [distributed] BatchNorm statistics over the global batch (before Adam sees the parameters)
            distributed.sync_batchnorm(self.net)
        ocfg = cfg.get("optim", {}) or {}
        self.base_lr = float(ocfg.get("lr", 2e-4))
        self.schedule = ocfg.get("schedule")
        self.distill = FeatureDistillation.from_config(cfg, self.net, device)
        head = list(self.distill.head.parameters()) if self.distill is not None else []
        self.opt = torch.optim.Adam(
            list(self.net.parameters()) + head, lr=self.base_lr,
            betas=tuple(float(b) for b in ocfg.get("betas", (0.9, 0.999))), weight_decay=float(ocfg.get("weight_decay", 0.0)),
        )
        ecfg = cfg.get("ema", {}) or {}
        self.ema = EMA(self.net, decay=float(ecfg.get("decay", 0.999)), warmup=bool(ecfg.get("warmup", False)))
        if self.distill is not None:  # after the EMA copy, which must not inherit the hook
            self.distill.attach(self.net)
        self.grad_clip = float(ocfg.get("grad_clip", 0.0) or 0.0)
        self.loss_type, self.eps = loss_settings(cfg)
        dcfg = cfg.get("data", {}) or {}
        self.lr_patch = int(dcfg.get("lr_patch", 60))
        self.quantize = bool(dcfg.get("quantize_lr", False))
        self.use_bf16 = device.type == "cuda" and str(tcfg.get("precision", "bf16")) == "bf16"
        self.eager_net = distributed.wrap(self.net, world, device, synced)  # [distributed] DDP under torchrun
        self.step_net = self.eager_net
        compile_opt = tcfg.get("compile", "auto")
        if compile_opt is True or (compile_opt == "auto" and device.type == "cuda"):
            try:
                self.step_net = torch.compile(self.eager_net, dynamic=True)
            except Exception as e:  # pragma: no cover - depends on the platform
                print(f"torch.compile unavailable ({e}); running eagerly", file=sys.stderr)
        self.lr_now = self.base_lr

    def extra_state(self) -> dict:
        """What a training state holds besides the network, EMA and optimizer: the distillation head."""
        return {"distill_head": self.distill.head.state_dict()} if self.distill is not None else {}

    def load(self, state: dict) -> None:
        """Weights, EMA and optimizer of a training state (``training.state``)."""
        self.net.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        if self.distill is not None:
            self.distill.head.load_state_dict(state["distill_head"])

    def _forward(self, lr_frames: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            try:
                return self.step_net(lr_frames, out_size=out_size)
            except Exception as e:
                if self.step_net is self.eager_net:
                    raise
                print(f"torch.compile failed ({type(e).__name__}: {e}); running eagerly", file=sys.stderr)
                self.step_net = self.eager_net
                return self.eager_net(lr_frames, out_size=out_size)

    def step(self, batch: dict, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradients of one batch (GT ``(B, T, 3, Hg, Wg)`` uint8); returns (loss, grad norm) tensors,
        both of the global batch under torchrun. The weights move only in ``apply``, once the caller has seen the
        loss is finite where it checks."""
        gt = batch["gt"].to(self.device, non_blocking=True).float().div_(255.0)
        lr_frames = asbi(gt, (self.lr_patch, self.lr_patch), quantize=self.quantize)
        target = gt[:, gt.shape[1] // 2]
        self.lr_now = learning_rate(iteration, self.base_lr, self.schedule)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_now
        out = self._forward(lr_frames, tuple(target.shape[-2:]))
        extra = self.distill.loss(lr_frames[:, lr_frames.shape[1] // 2]) if self.distill is not None else None
        loss, grad_norm = backward_pass(self.net, self.opt, out, target, self.eps, self.grad_clip, extra,
                                        self.loss_type)
        return distributed.mean(self.world, loss), grad_norm  # [distributed] DDP averaged the gradients already

    def apply(self, iteration: int) -> None:
        """The optimizer step and the EMA update of ``iteration``."""
        self.opt.step()
        self.ema.update(self.net, iteration)
