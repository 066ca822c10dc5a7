"""SAVSR hyper-parameters: one frozen dataclass and the named configurations.

Every number that shapes the network lives here, so tests and training can build small
variants (``dataclasses.replace(cfg, channels=8)``) and checkpoints can carry the exact
architecture as a JSON-able dict (:meth:`SAVSRConfig.to_dict` / :meth:`SAVSRConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Mapping

__all__ = ["SAVSRConfig", "NAMED_CONFIGS", "resolve_config", "LAYOUTS"]

#: Block layouts a configuration can name (see SAVSRConfig.layout).
LAYOUTS = ("paper", "official")
#: The official layout sizes each OSConv attention trunk max(osconv_hidden, in_channels // 16).
OFFICIAL_TRUNK_RATIO = 16


@dataclass(frozen=True)
class SAVSRConfig:
    """Architecture of one SAVSR network (defaults: the paper's model, 11.48 M parameters).

    Attributes:
        channels: feature width C.
        num_frames: frames per window T (odd; the output is the centre frame).
        sub_window: frames seen by one recurrent step (odd, >= 3: a centre and its neighbours).
        fusion_window: features fused by one pyramid-fusion step (odd, >= 3).
        recurrent_blocks: PFRBs per recurrent window unit (the first has no OSConv).
        fusion_blocks: scale-aware PFRBs per pyramid-fusion stage.
        residual_groups: RCAN residual groups in the reconstruction (each followed by a
            scale-adaptive module).
        rcab_per_group: residual channel-attention blocks per group.
        ca_reduction: channel-attention squeeze ratio (C -> max(1, C // ca_reduction)).
        num_kernels: candidate kernels in every scale-attention convolution (OSConv).
        osconv_hidden: width of the OSConv attention trunk.
        sam_ratio: the scale-adaptive module's mask branch works on C // sam_ratio channels.
        num_experts: experts in the upsampler's per-pixel mixture.
        expert_ratio: expert bottleneck: compress C -> C // expert_ratio.
        embed_channels: width of the upsampler's per-HR-pixel scale/phase embedding.
        filter_size: side of the upsampler's per-pixel spatial filter (odd).
        negative_slope: LeakyReLU slope of the default activation.
        in_channels: colour channels of the frames (RGB).
        layout: which block layout, both SAVSR (``../shared/reference/README.md`` lists the differences):
            ``"paper"``: our reading of the paper, sized to its 11.48 M parameters: a PFRB merges its
            branches with a 1 x 1 conv, then a scale-aware one adds a C -> C OSConv refinement; one
            gamma per residual group; the scale-adaptive mask convs have no bias; every OSConv trunk
            is ``osconv_hidden`` wide.
            ``"official"``: the authors' released code (18.89 M at the defaults, the layout of their
            ``savsr_best.pth``): in a scale-aware PFRB the OSConv (N*C -> C) *is* the merge; one gamma
            shared by the residual groups; the mask convs have biases (in front of BatchNorm); each
            OSConv trunk is max(osconv_hidden, in_channels // 16) wide; one pyramid-fusion window
            (num_frames - sub_window + 1 == fusion_window).
    """

    channels: int = 64
    num_frames: int = 7
    sub_window: int = 3
    fusion_window: int = 5
    recurrent_blocks: int = 4
    fusion_blocks: int = 2
    residual_groups: int = 4
    rcab_per_group: int = 8
    ca_reduction: int = 16
    num_kernels: int = 8
    osconv_hidden: int = 16
    sam_ratio: int = 4
    num_experts: int = 4
    expert_ratio: int = 8
    embed_channels: int = 64
    filter_size: int = 5
    negative_slope: float = 0.2
    in_channels: int = 3
    layout: str = "paper"

    def __post_init__(self) -> None:
        self._check_types()
        self._check_windows()

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "layout":
                if value not in LAYOUTS:
                    raise ValueError(f"SAVSRConfig.layout must be one of {', '.join(map(repr, LAYOUTS))}, got {value!r}")
            elif f.name == "negative_slope":
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"SAVSRConfig.negative_slope must be a number >= 0, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SAVSRConfig.{f.name} must be a positive int, got {value!r}")

    def _check_windows(self) -> None:
        for name in ("num_frames", "sub_window", "fusion_window", "filter_size"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"SAVSRConfig.{name} must be odd, got {getattr(self, name)}")
        if self.sub_window < 3 or self.fusion_window < 3:
            raise ValueError("SAVSRConfig.sub_window and fusion_window must be >= 3")
        n = self.num_positions
        if n < self.fusion_window or (n - 1) % (self.fusion_window - 1):
            raise ValueError(
                f"SAVSRConfig: num_frames={self.num_frames} with sub_window={self.sub_window} gives "
                f"{n} aligned features; pyramid fusion with fusion_window={self.fusion_window} needs "
                f"n >= fusion_window and (n - 1) divisible by fusion_window - 1"
            )
        if self.layout == "official" and n != self.fusion_window:
            raise ValueError(
                f"SAVSRConfig: the official layout fuses all aligned features in one window: needs "
                f"num_frames - sub_window + 1 == fusion_window, got {n} and {self.fusion_window}"
            )

    @property
    def num_positions(self) -> int:
        """Number of recurrent-window centres (aligned features): T - sub_window + 1."""
        return self.num_frames - self.sub_window + 1

    @property
    def fusion_stages(self) -> int:
        """Pyramid-fusion stages; each shrinks the feature list by fusion_window - 1."""
        return (self.num_positions - 1) // (self.fusion_window - 1)

    @property
    def osconv_merge(self) -> bool:
        """Whether a scale-aware PFRB merges its branches with the OSConv itself (official layout)."""
        return self.layout == "official"

    @property
    def shared_gamma(self) -> bool:
        """Whether one learned gamma serves every residual group (official layout)."""
        return self.layout == "official"

    @property
    def mask_bias(self) -> bool:
        """Whether the scale-adaptive mask convs have biases before their BatchNorm (official layout)."""
        return self.layout == "official"

    def osconv_trunk(self, in_channels: int) -> int:
        """Width of the attention trunk of an OSConv reading ``in_channels`` channels."""
        if self.layout == "official":
            return max(self.osconv_hidden, in_channels // OFFICIAL_TRUNK_RATIO)
        return self.osconv_hidden

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SAVSRConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them. Fields added later
        (e.g. ``layout``) take their defaults, which are the layout of older checkpoints."""
        if not isinstance(data, Mapping):
            raise ValueError(f"SAVSRConfig.from_dict expects a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SAVSRConfig keys: {', '.join(map(str, unknown))}")
        return cls(**dict(data))


NAMED_CONFIGS: dict[str, SAVSRConfig] = {
    # The paper's network: C = 64, 4 + 2 PFRBs, 4 x 8 RCABs, 8 kernels, 4 experts (11.48 M).
    "savsr": SAVSRConfig(),
    # The authors' released code at its defaults (the layout of their savsr_best.pth, 18,890,044 parameters).
    "savsr-official": SAVSRConfig(layout="official"),
    # Compact variant for CPU: every block kept, fewer and narrower.
    "savsr-s": SAVSRConfig(
        channels=24,
        recurrent_blocks=2,
        fusion_blocks=2,
        residual_groups=4,
        rcab_per_group=2,
        num_kernels=8,
        num_experts=4,
    ),
}


def resolve_config(name_or_config: "str | SAVSRConfig | Mapping[str, Any] | None") -> SAVSRConfig:
    """A config from a name in NAMED_CONFIGS, a dict (see from_dict), a config, or None (default)."""
    if name_or_config is None:
        return SAVSRConfig()
    if isinstance(name_or_config, SAVSRConfig):
        return name_or_config
    if isinstance(name_or_config, str):
        try:
            return NAMED_CONFIGS[name_or_config]
        except KeyError:
            names = ", ".join(sorted(NAMED_CONFIGS))
            raise ValueError(f"unknown SAVSR configuration {name_or_config!r} (known: {names})") from None
    if isinstance(name_or_config, Mapping):
        return SAVSRConfig.from_dict(name_or_config)
    raise TypeError(f"expected a config name, dict or SAVSRConfig, got {type(name_or_config).__name__}")
