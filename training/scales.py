"""Training and evaluation scales: the reference's lists, its curriculum, patch sizes, and the scale notation.

A scale is (sy, sx): height scale, width scale. ``scale_label`` writes the published tables' notation
('x2', 'x1.5/x3.5' = height/width) and ``parse_scale`` reads it back. Nothing here imports the rest of ``training``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

Scale = tuple[float, float]  # (sy, sx): height scale, width scale

#: The reference's 30 symmetric training scales: 1.1, 1.2, ..., 4.0.
SYMMETRIC_SCALES: tuple[float, ...] = tuple(round(1.0 + 0.1 * k, 1) for k in range(1, 31))
#: The values whose ordered pairs (sy != sx) are the reference's 30 asymmetric training scales.
ASYMMETRIC_VALUES: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
ASYMMETRIC_SCALES: tuple[Scale, ...] = tuple(
    (a, b) for a in ASYMMETRIC_VALUES for b in ASYMMETRIC_VALUES if a != b
)
#: All 60 training scales of the reference, as (sy, sx).
REFERENCE_SCALES: tuple[Scale, ...] = tuple((s, s) for s in SYMMETRIC_SCALES) + ASYMMETRIC_SCALES
INTEGER_SCALES: tuple[Scale, ...] = ((2.0, 2.0), (3.0, 3.0), (4.0, 4.0))


def round_half_up(x: float) -> int:
    """round() as people expect it (2.5 -> 3), not Python's banker's rounding."""
    return int(math.floor(x + 0.5))


def gt_patch_size(lr_patch: int | tuple[int, int], scale: Scale) -> tuple[int, int]:
    """GT patch size for an LR patch of P x P (or (Ph, Pw)) at scale (sy, sx): round(P*sy) x round(P*sx)."""
    ph, pw = (lr_patch, lr_patch) if isinstance(lr_patch, int) else lr_patch
    sy, sx = scale
    return round_half_up(ph * sy), round_half_up(pw * sx)


def parse_scale(text: str | float | Sequence[float]) -> Scale:
    """'2' -> (2, 2); '1.5/3.5' or '1.5x3.5' -> (1.5, 3.5) as (sy, sx); numbers and pairs pass through."""
    if isinstance(text, (int, float)):
        return float(text), float(text)
    if not isinstance(text, str):
        a, b = text
        return float(a), float(b)
    t = text.strip().lower().lstrip("x")
    for sep in ("/", ",", "x", ":"):
        if sep in t:
            a, b = t.split(sep, 1)
            return float(a.strip().lstrip("x")), float(b.strip().lstrip("x"))
    return float(t), float(t)


def scale_label(scale: Scale) -> str:
    """(2, 2) -> 'x2', (1.5, 3.5) -> 'x1.5/x3.5' (the published tables' notation: height/width)."""

    def f(v: float) -> str:
        return f"{v:g}"

    sy, sx = scale
    return f"x{f(sy)}" if sy == sx else f"x{f(sy)}/x{f(sx)}"


# ----------------------------------------------------------------------------------------------
# Scale choice per batch: the reference's list and curriculum, counted in iterations
# ----------------------------------------------------------------------------------------------


@dataclass
class ScaleSchedule:
    """Which (sy, sx) a batch uses, as a pure function of (iteration, rng).

    The reference: for the first 120 epochs, cycles of 10 epochs = 4 epochs at x4 only, 2 epochs of integer
    scales (x2/x3/x4), 4 epochs random from the 60-scale list; afterwards random from the list. Here the
    curriculum is counted in iterations: ``cycle`` iterations per cycle, split by ``phases`` (mode, relative
    length), applied until iteration ``until`` (0 disables the curriculum).
    """

    scales: list[Scale] = field(default_factory=lambda: list(REFERENCE_SCALES))
    cycle: int = 0
    phases: list[tuple[str, float]] = field(default_factory=lambda: [("x4", 4), ("integer", 2), ("random", 4)])
    until: int = 0
    fixed: Scale | None = None

    @classmethod
    def from_config(cls, cfg: dict | None) -> "ScaleSchedule":
        cfg = dict(cfg or {})
        if cfg.get("fixed") is not None:
            return cls(fixed=parse_scale(cfg["fixed"]))
        scales: list[Scale] = []
        sym = cfg.get("symmetric", "reference")
        if sym == "reference":
            sym = SYMMETRIC_SCALES
        scales += [(float(s), float(s)) for s in (sym or [])]
        asym = cfg.get("asymmetric", "reference")
        if asym == "reference":
            asym = ASYMMETRIC_SCALES
        scales += [parse_scale(p) for p in (asym or [])]
        if not scales:
            raise ValueError("scales: empty list of training scales")
        cur = cfg.get("curriculum") or {}
        phases = [(str(p[0]), float(p[1])) for p in cur.get("phases", [("x4", 4), ("integer", 2), ("random", 4)])]
        for mode, _ in phases:
            if mode not in ("x4", "integer", "random"):
                raise ValueError(f"scales.curriculum.phases: unknown mode {mode!r} (x4, integer, random)")
        return cls(scales=scales, cycle=int(cur.get("cycle", 0)), phases=phases, until=int(cur.get("until", 0)))

    def mode_at(self, iteration: int) -> str:
        if self.fixed is not None:
            return "fixed"
        if self.cycle <= 0 or iteration >= self.until:
            return "random"
        pos = (iteration % self.cycle) / self.cycle
        total = sum(length for _, length in self.phases)
        acc = 0.0
        for mode, length in self.phases:
            acc += length / total
            if pos < acc - 1e-12:
                return mode
        return self.phases[-1][0]

    def sample(self, iteration: int, rng: np.random.Generator) -> Scale:
        mode = self.mode_at(iteration)
        if mode == "fixed":
            return self.fixed  # type: ignore[return-value]
        if mode == "x4":
            return (4.0, 4.0)
        if mode == "integer":
            return INTEGER_SCALES[int(rng.integers(len(INTEGER_SCALES)))]
        return tuple(self.scales[int(rng.integers(len(self.scales)))])  # type: ignore[return-value]
