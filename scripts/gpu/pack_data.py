#!/usr/bin/env python3
"""Pack the team's training data into ``gpu_carry/``, small enough to travel to a lent GPU machine.

The device tool sends the working tree plus at most 8 carried (git-ignored) paths, 64 MiB in all, and
``../shared`` does not travel. This script re-encodes the training data (never Vid4) into a format the existing
sources read, so ``training/configs/gpu-full.yaml`` trains on it unchanged:

    gpu_carry/photos/*.jpg            stills   the 61 photographs, long side <= 1600 px, JPEG q90 4:2:0 (+ SOURCES.md)
    gpu_carry/aspen/NNNNN.jpg         frames   ntia_aspen, 960x540, JPEG q92 4:4:4
    gpu_carry/bigbuckbunny/shotNN/    frames   bigbuckbunny.mp4 decoded at 640x360 (downscale 2), split into shots
                                               at its scene cuts, JPEG q90 4:2:0
    gpu_carry/bikes/shotNN/           frames   bikes.mp4 decoded at 427x181 (downscale 1.5, as the CPU configs
                                               read it), split into shots, JPEG q90 4:2:0
    gpu_carry/manifest.json           what was packed, how, and the sizes

Video is decoded here (VapourSynth + bestsource, ffmpeg fallback: ``training.data.video``) because the GPU
machine has neither. Shots shorter than 7 frames give no training window and are left out.

    .venv/bin/python scripts/gpu/pack_data.py                       # -> gpu_carry/ (about 33 MiB)
    .venv/bin/python scripts/gpu/pack_data.py --out /tmp/x --limit 1  # tiny subset (tests)

Exit status 2 when the pack (or the whole travelling tree) is over budget.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MIB = 1 << 20
#: the device tool's limit on everything that travels (tracked + untracked-not-ignored files + carried paths)
TREE_LIMIT_MIB = 64.0
T = 7
PARTS = ("photos", "aspen", "bigbuckbunny", "bikes")


CHROMA = {"444": 0, "422": 1, "420": 2}


def _jpeg_bytes(img, quality: int, chroma: str = "444") -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality), subsampling=CHROMA[str(chroma)], optimize=True)
    return buf.getvalue()


def _save_frames(frames, folder: Path, quality: int, chroma: str, first: int = 1) -> int:
    """Write ``(N, 3, H, W)`` uint8 frames as ``folder/NNNNN.jpg``; returns bytes written."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for k in range(frames.shape[0]):
        arr = frames[k].permute(1, 2, 0).contiguous().numpy()
        data = _jpeg_bytes(Image.fromarray(arr, "RGB"), quality, chroma)
        (folder / f"{first + k:05d}.jpg").write_bytes(data)
        total += len(data)
    return total


def pack_photos(src: Path, out: Path, long_side: int, quality: int, chroma: str, limit: int | None) -> dict:
    from PIL import Image

    from training.data.frames import image_files

    paths = image_files(src)
    if limit:
        paths = paths[:limit]
    out.mkdir(parents=True, exist_ok=True)
    nbytes, mp = 0, 0.0
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            f = long_side / max(im.size)
            if f < 1.0:
                im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.LANCZOS, reducing_gap=3.0)
            data = _jpeg_bytes(im, quality, chroma)
            mp += im.width * im.height / 1e6
        (out / (p.stem + ".jpg")).write_bytes(data)
        nbytes += len(data)
    if (src / "SOURCES.md").is_file():  # licenses and authors travel with the images (not an image: not read)
        shutil.copyfile(src / "SOURCES.md", out / "SOURCES.md")
    return {"files": len(paths), "megapixels": round(mp, 1), "long_side": long_side, "quality": quality, "chroma": chroma,
            "bytes": nbytes}


def pack_frames(src: Path, out: Path, quality: int, chroma: str, limit: int | None) -> dict:
    import torch

    from training.data.frames import image_files, load_image

    paths = image_files(src)
    if limit:
        paths = paths[: T * limit]
    frames = torch.stack([load_image(p) for p in paths])
    nbytes = _save_frames(frames, out, quality, chroma)
    return {"frames": len(paths), "size": list(frames.shape[-2:]), "quality": quality, "chroma": chroma, "bytes": nbytes}


def pack_video(src: Path, out: Path, quality: int, chroma: str, downscale: float, limit: int | None) -> dict:
    """Decode once, split at the marked and detected scene cuts, one folder per shot of >= 7 frames."""
    from training.data.video import read_video
    from training.data.windows import detect_scene_cuts

    frames, marked = read_video(str(src), max_frames=T * limit if limit else None, downscale=downscale)
    cuts = sorted(set(marked) | set(detect_scene_cuts(frames)))
    bounds = [0, *[c for c in cuts if 0 < c < frames.shape[0]], frames.shape[0]]
    nbytes, shots, dropped = 0, [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a < T:
            dropped.append([a, b])
            continue
        nbytes += _save_frames(frames[a:b], out / f"shot{len(shots):02d}", quality, chroma, first=a + 1)
        shots.append([a, b])
    if not shots:
        raise ValueError(f"{src}: no shot of at least {T} frames")
    return {
        "frames": int(frames.shape[0]), "size": list(frames.shape[-2:]), "downscale": downscale, "quality": quality,
        "chroma": chroma,
        "cuts": cuts, "shots": shots, "dropped_short_shots": dropped, "bytes": nbytes,
    }


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def travelling_repo_bytes(repo: Path = REPO) -> int | None:
    """Bytes of what the device tool sends besides carried paths: tracked + untracked-not-ignored files.
    (Read-only ``git ls-files``; None where git or the repository is unavailable.)"""
    try:
        names = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True, timeout=60,
        ).stdout.split(b"\0")
    except (OSError, subprocess.SubprocessError):
        return None
    total = 0
    for n in names:
        p = repo / os.fsdecode(n)
        if n and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


#: defaults (measured on the shared data, 2026-11-24): photos 1600 px q90 4:2:0 (stills render GT at >= 2 photo px
#: per GT px, so 4:2:0 chroma still has one sample per GT pixel), Aspen q92 4:4:4 (GT at native resolution, from
#: PNG), video frames q90 4:2:0 (the H.264 sources are 4:2:0 already); Big Buck Bunny decoded at 640x360
#: (its 1 MB H.264 is heavily compressed: shrinking by 2 cleans the GT and halves the bytes), bikes at 427x181
#: (as the CPU configs read it; smaller would not fit x3 GT patches)
DEFAULTS = {
    "photo_long_side": 1600, "photo_quality": 90, "photo_chroma": "420",
    "frame_quality": 92, "frame_chroma": "444",
    "video_quality": 90, "video_chroma": "420", "bigbuckbunny_downscale": 2.0, "bikes_downscale": 1.5,
}


def pack(src: Path, out: Path, limit: int | None = None, parts=PARTS, force: bool = False, **settings) -> dict:
    """Pack ``parts`` of the data folder ``src`` into ``out``; returns the manifest (also out/manifest.json)."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown settings {sorted(unknown)}")
    st = {**DEFAULTS, **settings}
    src, out = Path(src), Path(out)
    if any(q.lower().startswith(("vid4", "udm10")) for q in out.resolve().parts):
        raise ValueError(f"{out}: refusing to pack into an evaluation-set folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty: pass --force to replace it")
        if not (out / "manifest.json").is_file():
            raise FileExistsError(f"{out} holds no manifest.json: not a pack of this script, not deleting it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    info: dict = {"format": "vssavsr-gpu-carry", "version": 1, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "source": str(src), "limit": limit, "settings": st, "parts": {}}
    train = src / "train"
    clips = src / "clips"
    if "photos" in parts:
        info["parts"]["photos"] = pack_photos(train / "photos", out / "photos", st["photo_long_side"],
                                              st["photo_quality"], st["photo_chroma"], limit)
    if "aspen" in parts:
        info["parts"]["aspen"] = pack_frames(train / "ntia_aspen", out / "aspen", st["frame_quality"],
                                             st["frame_chroma"], limit)
    for name in ("bigbuckbunny", "bikes"):
        if name in parts:
            info["parts"][name] = pack_video(clips / f"{name}.mp4", out / name, st["video_quality"], st["video_chroma"],
                                             st[f"{name}_downscale"], limit)
    info["seconds"] = round(time.time() - t0, 1)
    (out / "manifest.json").write_text(json.dumps(info, indent=1))
    info["pack_bytes"] = tree_bytes(out)
    (out / "manifest.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=str(REPO.parent / "shared" / "data"), help="the team's data folder (../shared/data)")
    ap.add_argument("--out", default=str(REPO / "gpu_carry"), help="output folder (default gpu_carry/, git-ignored)")
    ap.add_argument("--limit", type=int, default=None,
                    help="tiny subset: the first N photos and the first 7*N frames of each sequence")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    for key, val in DEFAULTS.items():
        opt = "--" + key.replace("_", "-")
        if key.endswith("chroma"):
            ap.add_argument(opt, choices=sorted(CHROMA), default=val)
        else:
            ap.add_argument(opt, type=type(val), default=val)
    ap.add_argument("--budget-mib", type=float, default=36.0,
                    help="largest pack allowed (MiB); leaves room under the 64 MiB travelling limit for the repo and "
                         "a future full checkpoint (~23 MB)")
    ap.add_argument("--force", action="store_true", help="replace an existing pack")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"--parts: unknown {bad} (choose from {PARTS})")
    info = pack(Path(args.src), Path(args.out), args.limit, parts, args.force,
                **{k: getattr(args, k) for k in DEFAULTS})
    for name, part in info["parts"].items():
        print(f"  {name:13s} {part['bytes'] / MIB:6.2f} MiB  " + ", ".join(
            f"{k} {v}" for k, v in part.items() if k in ("files", "frames", "megapixels", "size", "shots")))
    pack_mib = info["pack_bytes"] / MIB
    repo = travelling_repo_bytes()
    status = 0
    print(f"pack {args.out}: {pack_mib:.2f} MiB (budget {args.budget_mib:g} MiB), {info['seconds']} s")
    if pack_mib > args.budget_mib:
        print(f"OVER BUDGET: the pack is {pack_mib:.2f} MiB > --budget-mib {args.budget_mib:g}", file=sys.stderr)
        status = 2
    if repo is not None:
        total = pack_mib + repo / MIB
        print(f"travelling tree: repo files {repo / MIB:.2f} MiB + pack = {total:.2f} MiB of {TREE_LIMIT_MIB:g} MiB")
        if total > TREE_LIMIT_MIB - 2:  # keep 2 MiB of slack for files added before the call
            print("OVER THE DEVICE TOOL'S 64 MiB LIMIT (less 2 MiB slack)", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
