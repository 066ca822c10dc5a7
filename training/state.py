"""The training-state file and the network built from it.

A training state (``state-XXXXXXX.pt``, ``last.pt``) holds everything an exact resume needs: the configuration,
the model, its EMA copy, the optimizer, the random-number generators, the iteration and the wall time so far.
``training.loop`` writes it, ``training.evaluate`` and ``training.export`` read its network; only this module
knows its layout. The plugin's own checkpoint format (``.safetensors``) is ``vssavsr.model.checkpoint``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import torch

from vssavsr.model import SAVSR, SAVSRConfig, load_checkpoint, resolve_config

STATE_FORMAT = "vssavsr-train-state"
STATE_VERSION = 1


# ------------------------------------------------------------------------------------------------
# the network a configuration names
# ------------------------------------------------------------------------------------------------


def model_config(model_cfg: dict | None) -> SAVSRConfig:
    """The ``SAVSRConfig`` a config's ``model`` section names: ``name`` (a key of NAMED_CONFIGS or 'savsr' for
    the published default) plus ``overrides`` (SAVSRConfig fields)."""
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


def build_network(model_cfg: dict | None) -> SAVSR:
    return SAVSR(model_config(model_cfg))


# ------------------------------------------------------------------------------------------------
# the state file
# ------------------------------------------------------------------------------------------------


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(st["cuda"])
        except Exception:
            pass


def make_state(iteration: int, cfg: dict, net: torch.nn.Module, ema: torch.nn.Module, opt: torch.optim.Optimizer,
               elapsed_s: float) -> dict:
    """A training state of the run at ``iteration`` (the random-number generators as they are now)."""
    return {
        "format": STATE_FORMAT, "version": STATE_VERSION, "iteration": iteration, "config": cfg,
        "model": net.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
        "rng": rng_state(), "elapsed_s": elapsed_s,
    }


def load_state(path: str | Path) -> dict:
    """A training state from its file, or from a run folder (its ``last.pt``)."""
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
# networks from files
# ------------------------------------------------------------------------------------------------


def network_of(state: dict, weights: str = "ema") -> SAVSR:
    """The network of a loaded training state (``weights``: "ema" or "raw"), in eval mode."""
    net = build_network(state["config"].get("model"))
    net.load_state_dict(state["ema" if weights == "ema" else "model"])
    return net.eval()


def network_from_state(path: str | Path, weights: str = "ema") -> SAVSR:
    """The network of a training state file or run folder (EMA weights by default), in eval mode."""
    return network_of(load_state(path), weights)


def load_network(path: str | Path, weights: str = "ema") -> SAVSR:
    """A SAVSR network from a plugin checkpoint (.safetensors), the authors' released weights (.pth, read by
    ``load_checkpoint``) or a training state (.pt or run folder; EMA weights by default)."""
    path = Path(path)
    if path.suffix == ".pt" or path.is_dir():  # a run folder means its last.pt
        return network_from_state(path, weights=weights)
    net, _meta = load_checkpoint(str(path))
    return net
