"""SAVSR network in pure PyTorch (no VapourSynth).

>>> from vssavsr.model import SAVSR
>>> net = SAVSR.from_config("savsr-s").eval()
>>> out = net(frames, out_size=(H, W))  # frames (B, 7, 3, h, w) in [0, 1] -> (B, 3, H, W)
"""

from .checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from .config import NAMED_CONFIGS, SAVSRConfig, resolve_config
from .savsr import SAVSR

__all__ = [
    "SAVSR",
    "SAVSRConfig",
    "NAMED_CONFIGS",
    "resolve_config",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "FORMAT_VERSION",
]
