"""Which frames each task renders: chunks cut at the output's scene cuts, and the plan file of a work folder.

The planner evaluates the script once with ``Upscale`` in props-only mode (``vssavsr.plugin.scenes``): it
decodes and detects, but runs no model, and reads the scene flags the output frames would carry. Chunks
then follow the scenes: consecutive scenes share a chunk up to ``chunk_frames`` frames, and a longer scene
is split into equal parts of at most ``chunk_frames``. Where the clip has no cut, that is a chunk every
``chunk_frames`` frames.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

PLAN_FILE = "plan.json"
PLAN_VERSION = 1
#: Default chunk length: about this many seconds of output.
DEFAULT_CHUNK_SECONDS = 10.0
#: Chunk length when the clip's frame rate is unknown (variable).
FALLBACK_CHUNK_FRAMES = 240


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int  # exclusive

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def filename(self) -> str:
        return f"chunk-{self.start:08d}-{self.end:08d}.mkv"


def plan_chunks(num_frames: int, cuts: Sequence[int], chunk_frames: int) -> list[Chunk]:
    """Chunks covering ``0 .. num_frames`` whose boundaries are scene cuts, except inside scenes longer
    than ``chunk_frames`` (split evenly). No chunk is longer than ``chunk_frames``."""
    if num_frames < 1:
        raise ValueError("the clip has no frames")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    bounds = [0] + sorted({int(c) for c in cuts if 0 < int(c) < num_frames}) + [num_frames]
    chunks: list[Chunk] = []
    open_start = 0  # first frame of the chunk being filled with whole scenes
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e - s > chunk_frames:
            if open_start < s:
                chunks.append(Chunk(open_start, s))
            pieces = math.ceil((e - s) / chunk_frames)
            edges = [s + round(k * (e - s) / pieces) for k in range(pieces + 1)]
            chunks.extend(Chunk(a, b) for a, b in zip(edges[:-1], edges[1:]))
            open_start = e
        elif e - open_start > chunk_frames:
            chunks.append(Chunk(open_start, s))
            open_start = s
    if open_start < num_frames:
        chunks.append(Chunk(open_start, num_frames))
    return chunks


def default_chunk_frames(fps: tuple[int, int]) -> int:
    num, den = fps
    if num <= 0 or den <= 0:
        return FALLBACK_CHUNK_FRAMES
    return max(1, round(DEFAULT_CHUNK_SECONDS * num / den))


def scan_cuts(node, progress: bool = True) -> list[int]:
    """Frames of ``node`` that start a scene, from its scene props (frames without them: detected)."""
    from vssavsr.plugin import scenes

    flagged = scenes.mark_scene_cuts(node, None)
    if not progress:
        return scenes.cut_list(flagged)
    from tqdm import tqdm

    with tqdm(total=node.num_frames, unit="fr", desc="scene cuts", dynamic_ncols=True, leave=False) as bar:
        return scenes.cut_list(flagged, on_frame=lambda n: bar.update(1))


@dataclass
class Plan:
    """What a work folder holds chunks of: the encode's identity, the output clip, its cuts and chunks."""

    identity: dict
    num_frames: int
    fps: tuple[int, int]
    cuts: list[int]
    chunk_frames: int
    chunks: list[Chunk] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        data = asdict(self)
        data["version"] = PLAN_VERSION
        data["chunks"] = [[c.start, c.end] for c in self.chunks]
        tmp = folder / (PLAN_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, folder / PLAN_FILE)

    @classmethod
    def load(cls, folder: Path) -> "Plan | None":
        path = folder / PLAN_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if data.get("version") != PLAN_VERSION:
            return None
        return cls(
            identity=data["identity"], num_frames=int(data["num_frames"]), fps=tuple(data["fps"]),
            cuts=[int(c) for c in data["cuts"]], chunk_frames=int(data["chunk_frames"]),
            chunks=[Chunk(int(a), int(b)) for a, b in data["chunks"]],
        )
