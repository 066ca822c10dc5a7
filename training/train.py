"""Train SAVSR (``vssavsr.model``) with the reference recipe or a smaller one.

Examples::

    python -m training.train --config cpu-smoke --out runs/smoke                  # a minute on a CPU
    python -m training.train --config cpu-default --out runs/cpu                   # compact savsr-s, 1 thread
    python -m training.train --resume runs/cpu                                     # exact resume (last.pt)
    python -m training.train --config cpu-default --init vssavsr/weights/savsr-s.safetensors --out runs/cpu2
    python -m training.train --config quick-gpu --out runs/q --set optim.lr=1e-4 data.batch_size=24
    python -m training.train --config reference --out runs/ref                     # the published recipe

Charbonnier loss, Adam with cosine annealing with restarts, EMA weights, bf16 autocast on CUDA, gradient
clipping, optional ``torch.compile``; a training state every ``train.checkpoint_every`` iterations and on Ctrl-C
/ SIGTERM (model, optimizer, EMA, iteration; batches and the scale curriculum are a pure function of
(seed, iteration), so a resumed run sees the same batches as an uninterrupted one); ``log.csv`` (plot it with
``python -m training.plot_log``); at the end ``ema.safetensors`` in the plugin's checkpoint format.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from training import distributed
from training.config import apply_overrides, dump, load_config
from training.data import TrainData, batch_iterator
from training.degrade import asbi

STATE_FORMAT = "vssavsr-train-state"
STATE_VERSION = 1


# ------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------


def model_config(model_cfg: dict | None):
    """The ``SAVSRConfig`` a config's ``model`` section names: ``name`` (a key of NAMED_CONFIGS or 'savsr' for
    the published default) plus ``overrides`` (SAVSRConfig fields)."""
    from vssavsr.model import SAVSRConfig, resolve_config

    model_cfg = dict(model_cfg or {})
    if model_cfg.get("config"):  # a full SAVSRConfig dict (e.g. adopted from an --init checkpoint)
        return SAVSRConfig.from_dict(model_cfg["config"])
    name = model_cfg.get("name", "savsr")
    try:
        base = resolve_config(None if name == "default" else name)
    except ValueError as e:
        raise ValueError(f"model.name: {e}") from None
    overrides = model_cfg.get("overrides") or {}
    try:
        return dataclasses.replace(base, **overrides)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(base)]
        raise ValueError(f"model.overrides: {e}; SAVSRConfig fields: {fields}") from None


def build_network(model_cfg: dict | None):
    from vssavsr.model import SAVSR

    return SAVSR(model_config(model_cfg))


def network_from_state(path: str | Path, weights: str = "ema"):
    """The network of a training state (EMA weights by default), in eval mode."""
    state = load_state(path)
    net = build_network(state["config"].get("model"))
    net.load_state_dict(state["ema" if weights == "ema" else "model"])
    return net.eval()


# ------------------------------------------------------------------------------------------------
# recipe pieces
# ------------------------------------------------------------------------------------------------


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def backward_pass(net: torch.nn.Module, opt: torch.optim.Optimizer, out: torch.Tensor, target: torch.Tensor,
                  eps: float = 1e-3, grad_clip: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Charbonnier loss of ``out`` against ``target``, fresh gradients, clipped to ``grad_clip`` (0: no clipping).

    Returns (loss, gradient norm before clipping) as tensors, so that reading them need not wait for the device;
    the caller decides whether to ``opt.step()`` (the training loop first checks that the loss is finite)."""
    loss = charbonnier(out.float(), target, eps)
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


class _PendingSteps:
    """Per-step loss and gradient norm kept on the device until they are read in one transfer.

    Reading a CUDA scalar makes the host wait for the GPU; reading them only every few steps lets
    the host queue the next iterations while the GPU works."""

    def __init__(self):
        self.items: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, iteration: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.items.append((iteration, loss.detach().float(), grad_norm.detach().float()))

    def read(self) -> list[tuple[int, float, float]]:
        """(iteration, loss, grad norm) for every pending step, oldest first; empties the queue."""
        if not self.items:
            return []
        values = torch.stack([torch.stack((loss, gn)) for _, loss, gn in self.items]).tolist()
        out = [(it, lv, gn) for (it, _, _), (lv, gn) in zip(self.items, values)]
        self.items = []
        return out


# ------------------------------------------------------------------------------------------------
# state files
# ------------------------------------------------------------------------------------------------


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except Exception:
            pass


def load_state(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"training state not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a vssavsr training state (for plugin checkpoints use --init)")
    if state.get("version", 0) > STATE_VERSION:
        raise ValueError(f"{path}: training state version {state['version']} is newer than this code ({STATE_VERSION})")
    return state


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_state(run_dir: Path, state: dict, keep: int = 3) -> Path:
    """Write ``state-XXXXXXX.pt``, point ``last.pt`` at it, keep the ``keep`` newest numbered states."""
    path = run_dir / f"state-{state['iteration']:07d}.pt"
    _save_atomic(state, path)
    last = run_dir / "last.pt"
    tmp = run_dir / "last.pt.tmp"
    try:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(path.name)
        os.replace(tmp, last)
    except OSError:
        _save_atomic(state, last)
    if keep > 0:
        olds = sorted(run_dir.glob("state-*.pt"))
        for old in olds[:-keep]:
            old.unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------


class _StopFlag:
    """First Ctrl-C / SIGTERM: finish the current iteration, save, stop. Second Ctrl-C: stop at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        def handler(signum, frame):
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True
            print(f"\n{signal.Signals(signum).name}: stopping after this iteration and saving (Ctrl-C again to abort)",
                  file=sys.stderr, flush=True)

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _device(spec: str) -> torch.device:
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


CSV_FIELDS = ["iteration", "time_s", "loss", "lr", "sy", "sx", "grad_norm", "it_per_s", "data_s"]


def _open_log(path: Path, start: int):
    """Open log.csv for appending; on resume drop the rows after the resumed iteration."""
    if start > 0 and path.is_file():
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= start]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
    new = not path.is_file() or start == 0
    f = path.open("w" if new else "a", newline="")
    w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    if new:
        w.writeheader()
    return f, w


def train(
    cfg: dict,
    out_dir: str | Path,
    resume: str | Path | None = None,
    init: str | Path | None = None,
    stop_at: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
) -> dict:
    """Run (or resume) training. Returns ``{"losses": {iteration: loss}, "iteration": n, "state": path, ...}``.

    ``stop_at``: stop (and save) once this many iterations are done, as Ctrl-C would; ``max_minutes``: the same
    after a wall-clock budget (sessions on shared machines). ``train.threads`` applies for the run only."""
    threads = torch.get_num_threads()
    try:
        return _train(cfg, out_dir, resume, init, stop_at, max_minutes, progress)
    finally:
        torch.set_num_threads(threads)


def _train(cfg, out_dir, resume, init, stop_at, max_minutes, progress) -> dict:
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tcfg = cfg.get("train", {}) or {}
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    world, dist_device = distributed.setup(tcfg.get("device", "auto"))  # [distributed] torchrun: join the group
    device = dist_device or _device(tcfg.get("device", "auto"))
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)

    state = load_state(resume) if resume else None
    src = None
    if init and not state:
        from vssavsr.model import load_checkpoint

        src, _meta = load_checkpoint(str(init))
        if src.config != model_config(cfg.get("model")):
            print(f"--init {init}: using its architecture instead of model {cfg.get('model')}", file=sys.stderr)
            cfg = {**cfg, "model": {"config": src.config.to_dict()}}
        cfg = {**cfg, "init": str(init)}
    net = build_network(cfg.get("model"))
    if src is not None:
        net.load_state_dict(src.state_dict())
        print(f"initialised from {init}", file=sys.stderr)
        del src
    net.to(device).train()
    if tcfg.get("channels_last", True):
        net.use_channels_last()
    synced_bn = world.active and bool(tcfg.get("sync_batchnorm", True))
    if synced_bn:  # [distributed] BatchNorm statistics over the global batch (before the optimiser sees the params)
        distributed.sync_batchnorm(net)

    ocfg = cfg.get("optim", {}) or {}
    base_lr = float(ocfg.get("lr", 2e-4))
    opt = torch.optim.Adam(
        net.parameters(), lr=base_lr, betas=tuple(float(b) for b in ocfg.get("betas", (0.9, 0.999))),
        weight_decay=float(ocfg.get("weight_decay", 0.0)),
    )
    ecfg = cfg.get("ema", {}) or {}
    ema = EMA(net, decay=float(ecfg.get("decay", 0.999)), warmup=bool(ecfg.get("warmup", False)))
    start = 0
    elapsed0 = 0.0
    if state:
        net.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        start = int(state["iteration"])
        elapsed0 = float(state.get("elapsed_s", 0.0))
        print(f"resumed {resume} at iteration {start}", file=sys.stderr)

    total = int(tcfg.get("iterations", 1000))
    if stop_at is not None:
        total_this = min(total, int(stop_at))
    else:
        total_this = total
    dcfg = cfg["data"]
    base = Path(cfg["_file"]).parent if cfg.get("_file") else None
    data = TrainData.from_config(dcfg, cfg.get("scales"), seed, base)
    # [distributed] this rank's data streams; the global batch, the per-rank batch and the world size are recorded
    n_streams, my_streams = distributed.streams_for(world, tcfg.get("data_streams"))
    cfg = {**cfg, "distributed": distributed.batch_sizes(data.batch_size, n_streams, world)}
    if world.active and world.is_main:
        d = cfg["distributed"]
        print(f"distributed: {d['world_size']} processes ({d['backend']}), global batch {d['global_batch']}, "
              f"{d['batch_per_rank']} per process", file=sys.stderr)
    if state and state["config"].get("distributed", {}).get("data_streams", 1) != n_streams:
        print("warning: this run draws its batches from another number of data streams than the run it resumes; "
              "from here on it sees other batches than an uninterrupted run would", file=sys.stderr)
    lr_patch = data.lr_patch
    quantize = bool(dcfg.get("quantize_lr", False))
    print(f"data ({time.strftime('%H:%M:%S')}):\n{data.describe()}", file=sys.stderr)

    precision = str(tcfg.get("precision", "bf16"))
    use_bf16 = device.type == "cuda" and precision == "bf16"
    base_net = distributed.wrap(net, world, device, synced_bn) if world.active else net  # [distributed] DDP
    step_net = base_net
    compile_opt = tcfg.get("compile", "auto")
    if compile_opt is True or (compile_opt == "auto" and device.type == "cuda"):
        try:
            step_net = torch.compile(base_net, dynamic=True)
        except Exception as e:  # pragma: no cover - depends on the platform
            print(f"torch.compile unavailable ({e}); running eagerly", file=sys.stderr)
    grad_clip = float(ocfg.get("grad_clip", 0.0) or 0.0)
    eps = float((cfg.get("loss", {}) or {}).get("eps", 1e-3))
    ckpt_every = int(tcfg.get("checkpoint_every", 1000))
    keep = int(tcfg.get("keep_checkpoints", 3))
    log_every = max(1, int(tcfg.get("log_every", 1)))
    eval_every = int(tcfg.get("eval_every", 0) or 0)
    workers = int(dcfg.get("workers", 0) or 0)

    if world.is_main:  # [distributed] rank 0 writes the run folder
        (run_dir / "config.yaml").write_text(dump(cfg))
        log_f, log_w = _open_log(run_dir / "log.csv", start)
    else:
        log_f = open(os.devnull, "w")
        log_w = csv.DictWriter(log_f, fieldnames=CSV_FIELDS)
    losses: dict[int, float] = {}
    t_start = time.time()
    deadline = t_start + 60.0 * max_minutes if max_minutes else None

    def make_state(it: int) -> dict:
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION, "iteration": it, "config": cfg,
            "model": net.state_dict(), "ema": ema.model.state_dict(), "optimizer": opt.state_dict(),
            "rng": _rng_state(), "elapsed_s": elapsed0 + time.time() - t_start,
        }

    bar = None
    if progress and world.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, dynamic_ncols=True, smoothing=0.05, unit="it")
    it = start
    acc = {"loss": 0.0, "n": 0, "gn": 0.0, "data": 0.0}
    smooth = None
    pending = _PendingSteps()
    # On CUDA the step values are read at log steps only; a progress bar wants them every step.
    read_every = log_every if device.type == "cuda" and bar is None else 1

    def read_pending() -> None:
        nonlocal smooth
        for i, lv, gn in pending.read():
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at iteration {i}; last good state: {saved_at}")
            losses[i] = lv
            smooth = lv if smooth is None else 0.95 * smooth + 0.05 * lv
            acc["loss"] += lv
            acc["gn"] += gn

    last_t = time.time()
    last_it = start
    stopped_by = None
    saved_at = None
    with _StopFlag() as stop:
        if n_streams > 1:  # [distributed] this rank's share of the global batch
            batches = distributed.batch_iterator(data, start, total_this, my_streams, n_streams, workers)
        else:
            batches = batch_iterator(data, start, total_this, workers=workers)
        t_data = time.time()
        for batch in batches:
            data_s = time.time() - t_data
            gt = batch["gt"].to(device, non_blocking=True).float().div_(255.0)  # (B, T, 3, Hg, Wg)
            lr_frames = asbi(gt, (lr_patch, lr_patch), quantize=quantize)
            target = gt[:, gt.shape[1] // 2]
            lr_now = learning_rate(it, base_lr, ocfg.get("schedule"))
            for g in opt.param_groups:
                g["lr"] = lr_now
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                try:
                    out = step_net(lr_frames, out_size=tuple(target.shape[-2:]))
                except Exception as e:
                    if step_net is base_net:
                        raise
                    print(f"torch.compile failed ({type(e).__name__}: {e}); running eagerly", file=sys.stderr)
                    step_net = base_net
                    out = base_net(lr_frames, out_size=tuple(target.shape[-2:]))
            loss, gn = backward_pass(net, opt, out, target, eps, grad_clip)
            pending.add(it, distributed.mean(world, loss), gn)  # [distributed] the loss over all ranks
            if len(pending) >= read_every:
                read_pending()  # a non-finite loss stops here, before opt.step on CPU
            opt.step()
            ema.update(net, it)
            it += 1
            acc["data"] += data_s
            acc["n"] += 1
            sy, sx = (float(v) for v in batch["scale"])
            if acc["n"] >= log_every or it == total_this:
                read_pending()
                now = time.time()
                ips = (it - last_it) / max(now - last_t, 1e-9)
                log_w.writerow({
                    "iteration": it, "time_s": round(elapsed0 + now - t_start, 2), "loss": f"{acc['loss'] / acc['n']:.6f}",
                    "lr": f"{lr_now:.4e}", "sy": sy, "sx": sx, "grad_norm": f"{acc['gn'] / acc['n']:.4f}",
                    "it_per_s": f"{ips:.4f}", "data_s": f"{acc['data'] / acc['n']:.4f}",
                })
                log_f.flush()
                acc = {"loss": 0.0, "n": 0, "gn": 0.0, "data": 0.0}
                last_t, last_it = now, it
            if bar is not None:
                bar.set_postfix_str(f"loss {smooth:.4f} lr {lr_now:.2e} x{sy:g}/{sx:g} {bar.format_dict.get('rate') or 0:.3f} it/s", refresh=False)
                bar.update(1)
            if eval_every and it % eval_every == 0:
                read_pending()
                if world.is_main:  # [distributed]
                    _periodic_eval(cfg, ema.model, it, run_dir, device)
            if it % ckpt_every == 0 and it < total:
                read_pending()  # a state is saved only after its losses were seen to be finite
                if world.is_main:  # [distributed]
                    saved_at = save_state(run_dir, make_state(it), keep)
            late = bool(deadline and time.time() > deadline)
            if distributed.any_rank(world, stop.requested or late, device):  # [distributed] all ranks stop together
                stopped_by = "signal" if stop.requested else "time limit" if late else "another rank"
                break
            t_data = time.time()
    read_pending()
    if bar is not None:
        bar.close()
    log_f.close()
    if not world.is_main:  # [distributed] rank 0 saves and exports
        distributed.teardown(world)
        return {"losses": losses, "iteration": it, "state": None, "stopped_by": stopped_by, "run_dir": str(run_dir)}
    saved_at = save_state(run_dir, make_state(it), keep)
    result = {"losses": losses, "iteration": it, "state": str(saved_at), "stopped_by": stopped_by, "run_dir": str(run_dir)}
    if it >= total:
        from training.export import export_state

        ckpt = export_state(saved_at, run_dir / "ema.safetensors")
        result["checkpoint"] = str(ckpt)
    msg = f"stopped ({stopped_by}) at" if stopped_by else "finished at" if it >= total else "paused at"
    print(f"{msg} iteration {it}/{total}; state {saved_at}" + (f"; checkpoint {result.get('checkpoint')}" if result.get("checkpoint") else ""),
          file=sys.stderr)
    distributed.teardown(world)  # [distributed]
    return result


def _periodic_eval(cfg: dict, net: torch.nn.Module, it: int, run_dir: Path, device: torch.device) -> None:
    """Quick Vid4 check of the EMA weights during training, appended to eval.csv (monitoring only)."""
    from training.degrade import parse_scale, scale_label
    from training.evaluate import DEFAULT_VID4, evaluate, find_sequences, model_upscaler

    ecfg = (cfg.get("train", {}) or {}).get("eval", {}) or {}
    root = Path(ecfg.get("data", DEFAULT_VID4))
    if not root.is_dir():
        return
    scales = [parse_scale(s) for s in ecfg.get("scales", [2, 4])]
    frames = ecfg.get("frames", [16])
    was = net.training
    res = evaluate(find_sequences(root), scales, {"model": model_upscaler(net, device)}, frames, progress=False)
    net.train(was)
    path = run_dir / "eval.csv"
    new = not path.is_file()
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["iteration", "scale", "psnr", "ssim"])
        for s in scales:
            p, q = res["mean"]["model"][scale_label(s)]
            w.writerow([it, scale_label(s), f"{p:.3f}", f"{q:.4f}"])


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", "-c", default=None, help="YAML file or shipped name: reference, quick-gpu, cpu-default, cpu-smoke")
    ap.add_argument("--out", "-o", default=None, help="run folder (default runs/<config name>)")
    ap.add_argument("--resume", default=None, help="training state (.pt) or run folder: exact resume")
    ap.add_argument("--init", default=None, help="start from these weights (plugin .safetensors checkpoint)")
    ap.add_argument("--set", "-s", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. optim.lr=1e-4 train.iterations=2000")
    ap.add_argument("--stop-at", type=int, default=None, help="save and stop after this many iterations (resume later)")
    ap.add_argument("--max-minutes", type=float, default=None, help="save and stop after this much wall time")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    if args.resume:
        state = load_state(args.resume)
        cfg = state["config"]
        if args.config:
            print("--resume: using the configuration stored in the state (plus --set overrides)", file=sys.stderr)
        out = args.out or (Path(args.resume) if Path(args.resume).is_dir() else Path(args.resume).parent)
        del state
    else:
        cfg = load_config(args.config or "cpu-default")
        out = args.out or Path("runs") / cfg.get("name", "run")
        if (Path(out) / "last.pt").exists():
            raise SystemExit(f"{out} already holds a run: --resume {out} to continue it, or choose another --out")
    try:
        cfg = apply_overrides(cfg, args.set)
    except (ValueError, KeyError) as exc:
        raise SystemExit(f"--set: {exc}") from None
    return train(cfg, out, resume=args.resume, init=args.init, stop_at=args.stop_at,
                 max_minutes=args.max_minutes, progress=not args.no_progress)


if __name__ == "__main__":
    main()
