"""Scene-cut detectors on the team's real clips: cuts found, cuts missed, false cuts, speed.

    .venv/bin/python scripts/bench_scenes.py            # ours, plus scd.Detect / scxvid when installed
    .venv/bin/pip install vapoursynth-scenechange vapoursynth-scxvid   # to compare with them

Ground truth: city_night changes shot between frames 115 and 116 (../shared/data/README.md); bikes.mp4 at
30, 76, 137, 187 and 242 (checked by eye on thumbnails; the bundled sample is its first 75 frames);
the other clips have no cut. Speed: frames per second of decoding plus detection, beside decoding alone,
in the same run (noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import vapoursynth as vs

import vssavsr
from vssavsr.plugin import scenes
from vssavsr.plugin.arrays import clip_from_arrays

core = vs.core
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

VIDEOS = [
    ("city_night", DATA / "validation" / "city_night_720x405.mpg", [116]),
    ("bikes sample", Path(vssavsr.sample_clip_path()), [30]),
    ("bikes", DATA / "clips" / "bikes.mp4", [30, 76, 137, 187, 242]),
    ("bigbuckbunny", DATA / "clips" / "bigbuckbunny.mp4", []),
    ("pedestrians", DATA / "validation" / "pedestrians_768x576.avi", []),
    ("desk_cube", DATA / "validation" / "desk_cube_640x480_gray.mkv", []),
]
FOLDERS = [("ntia_aspen", DATA / "train" / "ntia_aspen")] + [
    (f"vid4 {s}", DATA / "vid4" / s) for s in ("calendar", "city", "foliage", "walk")
]


def folder_clip(folder: Path) -> vs.VideoNode:
    from PIL import Image

    images = [np.asarray(Image.open(f).convert("RGB")).transpose(2, 0, 1) for f in sorted(folder.glob("*.png"))]
    rgb = clip_from_arrays(images, format=vs.RGB24)
    return core.resize.Bicubic(rgb, format=vs.YUV420P8, matrix_s="709")


def flagged(clip: vs.VideoNode) -> list[int]:
    return [n for n, f in enumerate(clip.frames()) if n and f.props.get("_SceneChangePrev")]


def luma8(clip: vs.VideoNode) -> vs.VideoNode:
    return clip if clip.format.id == vs.GRAY8 else core.resize.Point(clip, format=vs.GRAY8)


def yuv420p8(clip: vs.VideoNode) -> vs.VideoNode:
    if clip.format.id != vs.YUV420P8:
        clip = core.resize.Point(clip, format=vs.YUV420P8)
    return core.std.Crop(clip, right=clip.width % 2, bottom=clip.height % 2)


def detectors() -> dict:
    found = {"ours": lambda c: scenes.cut_list(scenes.detect(c))}
    if hasattr(core, "scd"):
        for t in (15, 20, 30):
            found[f"scd.Detect thresh={t}" + (" (default)" if t == 15 else "")] = (
                lambda c, t=t: flagged(core.scd.Detect(luma8(c), thresh=t)))
    if hasattr(core, "scxvid"):
        found["scxvid"] = lambda c: flagged(core.scxvid.Scxvid(yuv420p8(c)))
    return found


def timed(fn, clip):
    t = time.perf_counter()
    out = fn(clip)
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args(argv)
    clips = [(name, core.bs.VideoSource(str(p)), truth) for name, p, truth in VIDEOS if p.is_file()]
    clips += [(name, folder_clip(p), []) for name, p in FOLDERS if p.is_dir()]
    if len(clips) < 2:
        print(f"note: ../shared/data not found at {DATA}; only the bundled sample is measured", file=sys.stderr)
    dets = detectors()
    print("| detector | " + " | ".join(f"{name} ({c.num_frames} fr, cuts {truth or '-'})" for name, c, truth in clips)
          + " | missed | false |")
    print("|---" * (len(clips) + 3) + "|")
    speed = {}
    for dname, fn in dets.items():
        cells, missed, false = [], 0, 0
        for name, clip, truth in clips:
            sum(1 for _ in clip.frames())  # decode once so that both timings below see a warm source
            _, t_decode = timed(lambda c: sum(1 for _ in c.frames()), clip)
            found, t_det = timed(fn, clip)
            speed.setdefault(dname, []).append((clip.num_frames / t_det, clip.num_frames / t_decode))
            miss = sorted(set(truth) - set(found))
            extra = sorted(set(found) - set(truth))
            missed += len(miss)
            false += len(extra)
            cells.append("ok" if not miss and not extra else
                         " ".join([f"missed {miss}" if miss else "", f"false {extra}" if extra else ""]).strip())
        print(f"| {dname} | " + " | ".join(cells) + f" | {missed} | {false} |")
    print()
    for dname, rows in speed.items():
        ratio = np.median([det / dec for det, dec in rows])
        print(f"{dname}: decode + detection runs at {ratio:.2f}x the speed of decoding alone (median over clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
