"""The training loop: setup, step, log, checkpoint, evaluation hook.

``train(cfg, out_dir)`` runs (or resumes) a run. Each piece is one function or class below:

- ``setup``: seeds, the ``Learner`` (network, optimizer, EMA: ``training.learner``), a resumed state, the data;
- the step: ``Learner.step`` then ``Learner.apply`` for each batch of ``training.data.batch_iterator``;
- ``StepLog``: losses kept on the device until read, ``log.csv`` rows, the progress bar; a non-finite loss stops
  the run before the weights move;
- the checkpoint: a training state (``training.state``) every ``train.checkpoint_every`` iterations, on Ctrl-C /
  SIGTERM, at a time limit and at the end, then ``ema.safetensors`` (``training.export``) when the run is done;
- ``evaluation_hook``: a quick Vid4 check of the EMA weights every ``train.eval_every`` iterations (``eval.csv``).

Batches and the scale curriculum are a pure function of (seed, iteration), so a resumed run sees the same batches
as an uninterrupted one.

Under torchrun (``training.distributed``) each process runs this loop on its share of the global batch; the hooks
marked ``[distributed]`` join the processes, and leave the run folder (config, log, states, evaluation, export)
to rank 0. Without torchrun they change nothing.
"""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training import distributed
from training.config import dump
from training.data import TrainData, batch_iterator
from training.evaluate import DEFAULT_VID4, evaluate, find_sequences, model_upscaler
from training.export import export_state
from training.learner import Learner
from training.scales import parse_scale, scale_label
from training.state import load_state, make_state, model_config, save_state, set_rng_state
from vssavsr.model import load_checkpoint

CSV_FIELDS = ["iteration", "time_s", "loss", "lr", "sy", "sx", "grad_norm", "it_per_s", "data_s"]


# ------------------------------------------------------------------------------------------------
# setup
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything the loop needs, as ``setup`` built it."""

    cfg: dict
    run_dir: Path
    device: torch.device
    world: distributed.World  # this process among the training processes (size 1: not distributed)
    learner: Learner
    data: TrainData | distributed.RankBatches  # the batches this process trains on
    start: int  # first iteration of this session
    elapsed0: float  # training seconds before this session
    total: int  # iterations of the whole run
    stop_at: int  # last iteration of this session

    def setting(self, key: str, default):
        return (self.cfg.get("train", {}) or {}).get(key, default)


def _device(spec: str) -> torch.device:
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _adopt_init(cfg: dict, init: str | Path) -> tuple[dict, torch.nn.Module]:
    """The weights of a plugin checkpoint to start from, and the config, with their architecture when the config
    names another."""
    src, _meta = load_checkpoint(str(init))
    if cfg.get("init_grow"):
        print(f"--init {init}: growing {src.config} into {model_config(cfg.get('model'))}", file=sys.stderr)
    elif src.config != model_config(cfg.get("model")):
        print(f"--init {init}: using its architecture instead of model {cfg.get('model')}", file=sys.stderr)
        cfg = {**cfg, "model": {"config": src.config.to_dict()}}
    return {**cfg, "init": str(init)}, src


def setup(cfg: dict, out_dir: str | Path, resume: str | Path | None, init: str | Path | None,
          stop_at: int | None) -> Run:
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tcfg = cfg.get("train", {}) or {}
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    world, rank_device = distributed.setup(tcfg.get("device", "auto"))  # [distributed] torchrun: join the group
    device = rank_device or _device(tcfg.get("device", "auto"))
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)

    state = load_state(resume) if resume else None
    src = None
    if init and not state:
        cfg, src = _adopt_init(cfg, init)
    learner = Learner(cfg, device, init_net=src, world=world)
    if src is not None:
        print(f"initialised from {init}", file=sys.stderr)
        del src
    start, elapsed0 = 0, 0.0
    if state:
        learner.load(state)
        set_rng_state(state["rng"])
        start = int(state["iteration"])
        elapsed0 = float(state.get("elapsed_s", 0.0))
        print(f"resumed {resume} at iteration {start}", file=sys.stderr)

    total = int(tcfg.get("iterations", 1000))
    base = Path(cfg["_file"]).parent if cfg.get("_file") else None
    data = TrainData.from_config(cfg["data"], cfg.get("scales"), seed, base)
    print(f"data ({time.strftime('%H:%M:%S')}):\n{data.describe()}", file=sys.stderr)
    # [distributed] this process's data streams; the world size, global and per-process batch go in cfg
    cfg, batches = distributed.share(cfg, data, world, state)
    if world.is_main:  # [distributed] rank 0 writes the run folder
        (run_dir / "config.yaml").write_text(dump(cfg))
    return Run(cfg, run_dir, device, world, learner, batches, start, elapsed0, total,
               total if stop_at is None else min(total, int(stop_at)))


# ------------------------------------------------------------------------------------------------
# log
# ------------------------------------------------------------------------------------------------


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


class StepLog:
    """The values of each step: read from the device (checked finite), averaged into ``log.csv`` rows every
    ``train.log_every`` iterations, shown on a progress bar."""

    def __init__(self, run: Run, progress: bool):
        self.run = run
        self.log_every = max(1, int(run.setting("log_every", 1)))
        if run.world.is_main:  # [distributed] rank 0 alone writes log.csv and shows the bar (all have the same values)
            self.file, self.writer = _open_log(run.run_dir / "log.csv", run.start)
        else:
            self.file = open(os.devnull, "w")
            self.writer = csv.DictWriter(self.file, fieldnames=CSV_FIELDS)
        self.bar = None
        if progress and run.world.is_main:
            self.bar = tqdm(total=run.total, initial=run.start, dynamic_ncols=True, smoothing=0.05, unit="it")
        # On CUDA the step values are read at log steps only; a progress bar wants them every step.
        self.read_every = self.log_every if run.device.type == "cuda" and self.bar is None else 1
        self.pending = _PendingSteps()
        self.losses: dict[int, float] = {}
        self.smooth = None
        self.saved_at: Path | None = None  # the last state written (named when a loss is not finite)
        self.t_start = time.time()
        self.last_t, self.last_it = self.t_start, run.start
        self._reset()

    def _reset(self) -> None:
        self.acc = {"loss": 0.0, "n": 0, "gn": 0.0, "data": 0.0}

    def elapsed(self) -> float:
        """Training seconds of the whole run so far (earlier sessions included)."""
        return self.run.elapsed0 + time.time() - self.t_start

    def add(self, iteration: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.pending.add(iteration, loss, grad_norm)
        if len(self.pending) >= self.read_every:
            self.read()  # a non-finite loss stops here, before the weights move on the CPU

    def read(self) -> None:
        """Take the pending values off the device; raise FloatingPointError at a non-finite loss."""
        for i, lv, gn in self.pending.read():
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss is {lv} at iteration {i}; last good state: {self.saved_at}")
            self.losses[i] = lv
            self.smooth = lv if self.smooth is None else 0.95 * self.smooth + 0.05 * lv
            self.acc["loss"] += lv
            self.acc["gn"] += gn

    def end_step(self, it: int, lr_now: float, scale: tuple[float, float], data_s: float) -> None:
        """After iteration ``it`` - 1 moved the weights: a log row when one is due, the progress bar."""
        self.acc["data"] += data_s
        self.acc["n"] += 1
        sy, sx = scale
        if self.acc["n"] >= self.log_every or it == self.run.stop_at:
            self.read()
            now = time.time()
            n = self.acc["n"]
            self.writer.writerow({
                "iteration": it, "time_s": round(self.run.elapsed0 + now - self.t_start, 2),
                "loss": f"{self.acc['loss'] / n:.6f}", "lr": f"{lr_now:.4e}", "sy": sy, "sx": sx,
                "grad_norm": f"{self.acc['gn'] / n:.4f}", "it_per_s": f"{(it - self.last_it) / max(now - self.last_t, 1e-9):.4f}",
                "data_s": f"{self.acc['data'] / n:.4f}",
            })
            self.file.flush()
            self._reset()
            self.last_t, self.last_it = now, it
        if self.bar is not None:
            rate = self.bar.format_dict.get("rate") or 0
            self.bar.set_postfix_str(f"loss {self.smooth:.4f} lr {lr_now:.2e} x{sy:g}/{sx:g} {rate:.3f} it/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        """Read the last values (a non-finite one still raises), close the bar and the file."""
        try:
            self.read()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.file.close()


# ------------------------------------------------------------------------------------------------
# checkpoint and evaluation hook
# ------------------------------------------------------------------------------------------------


def checkpoint(run: Run, log: StepLog, it: int) -> Path | None:
    """Save the training state at iteration ``it`` (after its losses were seen to be finite). Returns its path
    (``None`` on ranks other than 0)."""
    log.read()
    if not run.world.is_main:  # [distributed] rank 0 alone writes the states
        return None
    learner = run.learner
    state = {**make_state(it, run.cfg, learner.net, learner.ema.model, learner.opt, log.elapsed()), **learner.extra_state()}
    log.saved_at = save_state(run.run_dir, state, int(run.setting("keep_checkpoints", 3)))
    return log.saved_at


def evaluation_hook(cfg: dict, net: torch.nn.Module, it: int, run_dir: Path, device: torch.device) -> None:
    """Quick Vid4 check of the EMA weights during training, appended to eval.csv (monitoring only)."""
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


def _iterate(run: Run, log: StepLog, max_minutes: float | None) -> tuple[int, str | None]:
    """The steps of this session; returns (iterations done, what stopped it early or None)."""
    learner = run.learner
    ckpt_every = int(run.setting("checkpoint_every", 1000))
    eval_every = int(run.setting("eval_every", 0) or 0)
    workers = int(run.cfg["data"].get("workers", 0) or 0)
    deadline = log.t_start + 60.0 * max_minutes if max_minutes else None
    it = run.start
    with _StopFlag() as stop:
        t_data = time.time()
        for batch in batch_iterator(run.data, run.start, run.stop_at, workers=workers):
            data_s = time.time() - t_data
            loss, grad_norm = learner.step(batch, it)
            log.add(it, loss, grad_norm)
            learner.apply(it)
            it += 1
            log.end_step(it, learner.lr_now, tuple(float(v) for v in batch["scale"]), data_s)
            if eval_every and it % eval_every == 0:
                log.read()
                if run.world.is_main:  # [distributed] rank 0 alone evaluates
                    evaluation_hook(run.cfg, learner.ema.model, it, run.run_dir, run.device)
            if it % ckpt_every == 0 and it < run.total:
                checkpoint(run, log, it)
            late = bool(deadline and time.time() > deadline)
            if distributed.any_rank(run.world, stop.requested or late, run.device):  # [distributed] all stop together
                return it, "signal" if stop.requested else "time limit" if late else "another process"
            t_data = time.time()
    return it, None


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
        run = setup(cfg, out_dir, resume, init, stop_at)
        log = StepLog(run, progress)
        try:
            it, stopped_by = _iterate(run, log, max_minutes)
        finally:
            log.close()
        saved_at = checkpoint(run, log, it)
        result = {"losses": log.losses, "iteration": it, "state": str(saved_at) if saved_at else None,
                  "stopped_by": stopped_by, "run_dir": str(run.run_dir)}
        if it >= run.total and saved_at:
            result["checkpoint"] = str(export_state(saved_at, run.run_dir / "ema.safetensors"))
        distributed.teardown(run.world)  # [distributed] once rank 0 has saved
    finally:
        torch.set_num_threads(threads)
    if run.world.is_main:  # [distributed] the others saved nothing
        msg = f"stopped ({stopped_by}) at" if stopped_by else "finished at" if it >= run.total else "paused at"
        done = f"; checkpoint {result['checkpoint']}" if "checkpoint" in result else ""
        print(f"{msg} iteration {it}/{run.total}; state {saved_at}{done}", file=sys.stderr)
    return result
