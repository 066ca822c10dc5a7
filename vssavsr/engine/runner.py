"""Running SAVSR on frames: device, precision, shared models, batching and bounded caches.

Tensors in, tensors (or arrays) out; no VapourSynth here.

* :func:`resolve_device` / :func:`resolve_precision` turn the user's ``device_index`` / ``fp16``
  into a torch device and dtype, with messages that name the argument.
* :func:`get_runner` loads a checkpoint once per process for each (file, device, precision)
  and hands out the same :class:`ModelRunner` to every caller (several clips in one script,
  or a script evaluated many times by a chunked encoder).
* :class:`UpscaleSession` is the per-clip frame logic used by the VapourSynth filter: which
  input frames to fetch for output ``n`` (:meth:`~UpscaleSession.plan`), batching of the
  following windows when frames are requested in order, and bounded LRU caches of converted
  input frames and of outputs computed ahead (:meth:`~UpscaleSession.process`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from vssavsr.engine import tiling, windows
from vssavsr.engine.ensemble import ensemble_forward

#: Shipped model names and their files under vssavsr/weights/ (best first for the GPU).
SHIPPED_MODELS = ("savsr", "savsr-s")
#: Largest scale factor the model accepts (per axis).
try:
    from vssavsr.model.savsr import MAX_SCALE
except ImportError:  # pragma: no cover - older model package
    MAX_SCALE = 8.0


class EngineError(ValueError):
    """A bad engine argument; the message names the argument and says how to fix it."""


# ------------------------------------------------------------------------------------------
# devices and checkpoints


def cuda_available() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:  # pragma: no cover - broken driver
        return False


def resolve_device(device_index: int | None) -> torch.device:
    """``None``: CUDA device 0 when CUDA is available, else the CPU; ``-1``: the CPU; ``k``: CUDA device k."""
    if device_index is None:
        return torch.device("cuda", 0) if cuda_available() else torch.device("cpu")
    if isinstance(device_index, bool) or not isinstance(device_index, int):
        raise EngineError(f"device_index must be an int (-1 for the CPU, 0.. for a CUDA device), got {device_index!r}")
    if device_index == -1:
        return torch.device("cpu")
    if device_index < -1:
        raise EngineError(f"device_index={device_index} is not a device: use -1 for the CPU or 0.. for a CUDA device")
    if not cuda_available():
        raise EngineError(
            f"device_index={device_index} asks for CUDA device {device_index}, but CUDA is not available "
            f"here (torch {torch.__version__}, cuda build: {torch.version.cuda or 'none'}); "
            "use device_index=-1 (or leave it unset) to run on the CPU"
        )
    count = torch.cuda.device_count()
    if device_index >= count:
        raise EngineError(
            f"device_index={device_index}: unknown CUDA device, this machine has {count} "
            f"(valid: 0..{count - 1}, or -1 for the CPU)"
        )
    return torch.device("cuda", device_index)


def resolve_precision(device: torch.device, fp16: bool | int | None) -> bool:
    """Whether to run in half precision: default on for CUDA, off (and not allowed) on the CPU."""
    if fp16 is None:
        return device.type == "cuda"
    fp16 = bool(fp16)
    if fp16 and device.type != "cuda":
        raise EngineError(
            "fp16=True needs a CUDA device; on the CPU the model runs in float32 (leave fp16 unset or pass fp16=False)"
        )
    return fp16


def weights_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "weights"


def shipped_checkpoint(name: str) -> Path:
    """Path of the shipped checkpoint ``name`` ("savsr-s", "savsr"); raises EngineError if absent."""
    if name not in SHIPPED_MODELS:
        raise EngineError(f"model={name!r} is not a shipped model: use one of {', '.join(SHIPPED_MODELS)}, or checkpoint=PATH")
    path = weights_dir() / f"{name}.safetensors"
    if not path.is_file():
        raise EngineError(
            f"model={name!r}: its weights file {path} is not part of this installation; "
            "pass checkpoint=PATH to use a checkpoint file"
        )
    return path


def default_checkpoint(device: torch.device) -> Path:
    """The best shipped checkpoint for ``device``: the full model on CUDA when shipped, else the compact one."""
    order = ("savsr", "savsr-s") if device.type == "cuda" else ("savsr-s", "savsr")
    for name in order:
        path = weights_dir() / f"{name}.safetensors"
        if path.is_file():
            return path
    raise EngineError(
        f"no shipped weights file in this installation ({weights_dir()}/savsr-s.safetensors is missing): "
        "pass checkpoint=PATH to a SAVSR checkpoint"
    )


class ModelRunner:
    """One loaded network on one device and precision. Thread-safe: calls are serialised."""

    def __init__(self, net: torch.nn.Module, device: torch.device, fp16: bool, metadata: Mapping | None = None,
                 path: str | None = None):
        self.net = net
        self.device = device
        self.fp16 = fp16
        self.metadata = dict(metadata or {})
        self.path = path
        self.lock = threading.Lock()
        cfg = getattr(net, "config", None) or getattr(net, "cfg", None)
        self.num_frames = int(getattr(cfg, "num_frames", windows.WINDOW))

    def forward(self, frames: torch.Tensor, out_size: tuple[int, int], scale: tuple[float, float],
                offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
        """One model call: (B, T, 3, h, w) float in [0, 1] on the device -> (B, 3, H, W) float32."""
        with torch.inference_mode():
            if self.fp16:
                with torch.autocast(self.device.type, dtype=torch.float16):
                    out = self.net(frames, out_size=tuple(out_size), scale=tuple(scale), offset=tuple(offset))
            else:
                out = self.net(frames, out_size=tuple(out_size), scale=tuple(scale), offset=tuple(offset))
        return out.float()

    def __call__(self, frames: torch.Tensor, out_size: tuple[int, int], scale: tuple[float, float],
                 offset: tuple[float, float] = (0.0, 0.0), tile: int | tuple[int, int] | None = None,
                 tile_pad: int | None = None, ensemble: int = 1) -> torch.Tensor:
        pad = tiling.DEFAULT_PAD if tile_pad is None else tile_pad

        def tiled(x, size, sc, off, t):
            return tiling.tiled_forward(self.forward, x, size, sc, off, t, pad)

        with self.lock, torch.inference_mode():
            frames = frames.to(self.device, torch.float32, non_blocking=True)
            return ensemble_forward(tiled, frames, out_size, scale, offset, ensemble, tile)


_RUNNERS: dict[tuple, ModelRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def get_runner(checkpoint: str | os.PathLike, device: torch.device, fp16: bool) -> ModelRunner:
    """The process-wide runner for (checkpoint file, device, precision); loads it on first use.

    Raises EngineError for a missing file and the model's CheckpointError for a bad one.
    """
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise EngineError(f"checkpoint={str(checkpoint)!r}: no such file")
    key = (_file_key(path), str(device), bool(fp16))
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            from vssavsr.model import load_checkpoint

            net, metadata = load_checkpoint(str(path), map_location="cpu")
            net = net.for_inference(device)
            runner = ModelRunner(net, device, fp16, metadata, str(path))
            _RUNNERS[key] = runner
        return runner


def clear_runners() -> None:
    """Forget every loaded model (tests; frees memory once no clip uses them)."""
    with _RUNNERS_LOCK:
        _RUNNERS.clear()


# ------------------------------------------------------------------------------------------
# per-clip frame logic


@dataclass
class _Group:
    """Outputs computed together in one model call, and the input frames they need."""

    members: list[int]
    request: list[int]


class UpscaleSession:
    """Frame logic for one upscaled clip: plans requests, batches windows, caches (bounded).

    Protocol (the VapourSynth filter calls these; any thread):

    1. ``plan(n)`` -> the input frame indices to fetch for output ``n`` (always includes ``n``).
    2. ``process(n, frames, flags)`` with the fetched frames -> the output of frame ``n``,
       a (3, H, W) float32 array (do not modify it). ``frames[i]`` is a sequence of the 3 planes
       (h, w) of input frame ``i`` (views are fine: they are copied, never kept);
       ``flags[i]`` = (_SceneChangePrev, _SceneChangeNext) of frame ``i``.
    3. or ``cancel(n)`` when the request failed before ``process``.

    When ``n`` follows a frame that was just planned (in-order access), ``plan`` groups
    ``n .. n + batch - 1`` and asks for the frames of all their windows; the first ``process``
    of the group computes them in one model call and caches the others. The same output is
    produced whatever the access order.
    """

    def __init__(
        self,
        runner: Callable[..., torch.Tensor],
        num_frames: int,
        lr_size: tuple[int, int],
        out_size: tuple[int, int],
        scale: tuple[float, float] | None = None,
        offset: tuple[float, float] = (0.0, 0.0),
        batch: int = 1,
        tile: int | tuple[int, int] | None = None,
        tile_pad: int | None = None,
        ensemble: int = 1,
        window: int = windows.WINDOW,
        device: torch.device | None = None,
        out_cache_size: int | None = None,
        in_cache_size: int | None = None,
    ):
        if num_frames < 1:
            raise EngineError("the clip has no frames")
        if batch < 1:
            raise EngineError(f"batch must be >= 1, got {batch}")
        self.runner = runner
        self.num_frames = int(num_frames)
        self.lr_size = (int(lr_size[0]), int(lr_size[1]))
        self.out_size = (int(out_size[0]), int(out_size[1]))
        if scale is None:
            scale = (self.out_size[0] / self.lr_size[0], self.out_size[1] / self.lr_size[1])
        self.scale = (float(scale[0]), float(scale[1]))
        self.offset = (float(offset[0]), float(offset[1]))
        self.batch = int(batch)
        self.tile = tile
        self.tile_pad = tile_pad
        self.ensemble = int(ensemble)
        self.window = int(window)
        self.device = device if device is not None else getattr(runner, "device", torch.device("cpu"))
        self.out_cache_size = out_cache_size or (2 * self.batch + 2)
        self.in_cache_size = in_cache_size or (self.batch + self.window + 2)
        self._state = threading.Lock()
        self._compute = threading.Lock()
        self._out: OrderedDict[int, np.ndarray] = OrderedDict()
        self._in: OrderedDict[int, tuple[torch.Tensor, tuple[bool, bool]]] = OrderedDict()
        self._pins: Counter[int] = Counter()
        self._groups: dict[int, _Group] = {}
        self.model_calls = 0
        self.windows_computed = 0

    # -- planning ---------------------------------------------------------------------------

    def _needed(self, members: Sequence[int]) -> list[int]:
        need: set[int] = set()
        for m in members:
            need.update(windows.needed_frames(m, self.num_frames, self.window))
        return sorted(need)

    def plan(self, n: int) -> list[int]:
        if not 0 <= n < self.num_frames:
            raise IndexError(f"frame {n} outside a clip of {self.num_frames} frames")
        with self._state:
            self._pins[n] += 1
            if n in self._out:
                self._out.move_to_end(n)
                return [n]
            group = self._groups.get(n)
            if group is None:
                members = [n]
                in_order = n == 0 or (n - 1) in self._groups or (n - 1) in self._out
                if in_order and self.batch > 1:
                    for m in range(n + 1, min(self.num_frames, n + self.batch)):
                        if m not in self._groups and m not in self._out:
                            members.append(m)
                group = _Group(members, self._needed(members))
                for m in members:
                    self._groups[m] = group
            return list(group.request)

    def cancel(self, n: int) -> None:
        with self._state:
            self._unpin(n)
            group = self._groups.get(n)
            if group is not None and not any(self._pins[m] for m in group.members):
                for m in group.members:
                    if self._groups.get(m) is group:
                        del self._groups[m]

    def _unpin(self, n: int) -> None:
        if self._pins[n] > 1:
            self._pins[n] -= 1
        else:
            self._pins.pop(n, None)

    # -- processing -------------------------------------------------------------------------

    def _input(self, i: int, frames: Mapping[int, Sequence[np.ndarray]], flags: Mapping[int, tuple[bool, bool]]):
        hit = self._in.get(i)
        if hit is not None:
            self._in.move_to_end(i)
            return hit
        planes = frames.get(i)
        if planes is None:
            return None
        arr = np.stack([np.asarray(p, dtype=np.float32) for p in planes])  # copies the planes
        t = torch.from_numpy(arr).to(self.device)
        entry = (t, tuple(bool(v) for v in flags.get(i, (False, False))))
        self._in[i] = entry
        while len(self._in) > self.in_cache_size:
            self._in.popitem(last=False)
        return entry

    def process(
        self,
        n: int,
        frames: Mapping[int, Sequence[np.ndarray]],
        flags: Mapping[int, tuple[bool, bool]] | None = None,
    ) -> np.ndarray:
        flags = flags or {}
        with self._compute, torch.inference_mode():
            with self._state:
                out = self._out.get(n)
                if out is not None:
                    self._out.move_to_end(n)
                    self._unpin(n)
                    return out
                group = self._groups.get(n)
                members = list(group.members) if group is not None else [n]
                todo = [m for m in members if m not in self._out]
                if n not in todo:
                    todo.insert(0, n)
            # Inputs: fetched now or converted earlier.
            inputs: dict[int, tuple[torch.Tensor, tuple[bool, bool]]] = {}
            for i in set(frames) | set(self._needed(todo)):
                entry = self._input(i, frames, flags)
                if entry is not None:
                    inputs[i] = entry
            available = [m for m in todo if all(i in inputs for i in windows.needed_frames(m, self.num_frames, self.window))]
            if n not in available:
                missing = [i for i in windows.needed_frames(n, self.num_frames, self.window) if i not in inputs]
                raise RuntimeError(f"internal error: input frames {missing} of output {n} were not fetched")
            all_flags = {i: e[1] for i, e in inputs.items()}
            wins = windows.windows_from_flags(available, self.num_frames, all_flags, self.window)
            results: dict[int, np.ndarray] = {}
            for start in range(0, len(available), self.batch):
                chunk = available[start:start + self.batch]
                chunk_wins = wins[start:start + self.batch]
                x = torch.stack([torch.stack([inputs[i][0] for i in win]) for win in chunk_wins])
                y = self.runner(x.clamp_(0.0, 1.0), self.out_size, self.scale, self.offset, self.tile, self.tile_pad,
                                self.ensemble)
                y = y.clamp_(0.0, 1.0).cpu().numpy()
                self.model_calls += 1
                self.windows_computed += len(chunk)
                for k, m in enumerate(chunk):
                    results[m] = y[k]
            with self._state:
                for m, arr in results.items():
                    self._out[m] = arr
                    self._out.move_to_end(m)
                    if group is not None and self._groups.get(m) is group:
                        del self._groups[m]
                self._unpin(n)
                self._evict(keep=n)
            return results[n]

    def _evict(self, keep: int) -> None:
        if len(self._out) <= self.out_cache_size:
            return
        for m in list(self._out):
            if len(self._out) <= self.out_cache_size:
                break
            if m != keep and not self._pins.get(m):
                del self._out[m]

    def stats(self) -> dict:
        with self._state:
            return {
                "model_calls": self.model_calls,
                "windows_computed": self.windows_computed,
                "cached_outputs": len(self._out),
                "cached_inputs": len(self._in),
                "groups": len(self._groups),
                "pins": sum(self._pins.values()),
            }

