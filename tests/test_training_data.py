"""training.data: every source yields correct 7-frame windows (never across a scene cut); batches."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import (
    FrameFolders, StillPhotos, TrainData, VideoFile, VimeoSeptuplets, build_sources, detect_scene_cuts, valid_windows,
)
from training.scales import ScaleSchedule, gt_patch_size


def _write_frames(folder: Path, values, size=(40, 56), ext="png"):
    """Frames whose pixels encode their value (so a window's order can be read back)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in enumerate(values, 1):
        arr = np.full((*size, 3), v, dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{k:03d}.{ext}" if ext != "vimeo" else folder / f"im{k}.png")


def _values(x: torch.Tensor) -> list[int]:
    return [int(f[0, 0, 0]) for f in x]


def test_valid_windows_never_span_a_cut():
    wins = valid_windows(30, cuts=[10, 13, 25], length=7, strides=[1, 2])
    assert wins, "expected windows"
    shots = [(0, 10), (10, 13), (13, 25), (25, 30)]
    for w in wins:
        assert len(w) == 7
        assert any(a <= w[0] and w[-1] < b for a, b in shots), w
    assert (0, 1, 2, 3, 4, 5, 6) in wins and (3, 4, 5, 6, 7, 8, 9) in wins and (4, 5, 6, 7, 8, 9, 10) not in wins
    assert (13, 15, 17, 19, 21, 23) + (25,) not in wins and (13, 14, 15, 16, 17, 18, 19) in wins
    assert not [w for w in wins if w[0] >= 25]  # a 5-frame shot has no window
    assert len(valid_windows(7, [])) == 1 and valid_windows(6, []) == []


def test_frame_folders_tree(tmp_path):
    _write_frames(tmp_path / "a" / "b" / "seq1", [10 * k for k in range(10)])
    _write_frames(tmp_path / "seq2", [100 + k for k in range(8)], ext="jpg")
    _write_frames(tmp_path / "short", [1, 2, 3])
    src = FrameFolders(tmp_path, scene_cuts="none", strides=[1, 2])
    assert sorted(src.labels) == ["a/b/seq1", "seq2"]
    assert len(src.windows) == 4 + 2  # stride 2 needs 13 frames
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = src.sample(rng, (24, 32))
        assert x.shape == (7, 3, 24, 32) and x.dtype == torch.uint8
        v = _values(x)
        steps = np.diff(v)
        assert (np.abs(steps - steps[0]) <= 2).all() and steps[0] > 0  # consecutive, in order (jpg: +-1)
    lazy = FrameFolders(tmp_path, scene_cuts="none", cache=False)
    assert len(lazy.windows) == 6 and lazy.sample(rng, (24, 32)).shape == (7, 3, 24, 32)


def test_frame_folders_cut_list(tmp_path):
    _write_frames(tmp_path / "s", [5 * k for k in range(20)])
    src = FrameFolders(tmp_path, scene_cuts=[9])
    assert all(w[-1] < 9 or w[0] >= 9 for _, w in src.windows)
    assert len(src.windows) == 3 + 5


def test_vimeo_layout(tmp_path):
    for clip, base in [("00001/0001", 0), ("00001/0002", 100)]:
        _write_frames(tmp_path / "sequences" / clip, [base + 10 * k for k in range(7)], ext="vimeo")
    (tmp_path / "sep_trainlist.txt").write_text("00001/0001\n00001/0002\n")
    src = VimeoSeptuplets(tmp_path)
    assert len(src.windows) == 2 and all(w == tuple(range(7)) for _, w in src.windows)
    x = src.sample(np.random.default_rng(1), (16, 16))
    v = _values(x)
    assert v in ([10 * k for k in range(7)], [100 + 10 * k for k in range(7)])


def _encode_video(tmp_path: Path) -> Path:
    """20 frames of one textured scene panning, then 20 of another: a cut at frame 20."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:400] / 400.0
    tex = np.asarray(Image.fromarray((rng.random((60, 100)) * 255).astype(np.uint8)).resize((400, 240), Image.BICUBIC)) / 255.0
    ramp_a = np.stack([xx, 0.5 + 0.3 * tex, 1 - xx], -1)  # a left-to-right colour ramp, textured
    ramp_b = np.stack([0.9 - 1.5 * yy, 0.2 + yy, 0.3 * tex + 0.2], -1)  # another scene: top to bottom
    a = (np.clip(ramp_a, 0, 1) * 255).astype(np.uint8)
    b = (np.clip(ramp_b, 0, 1) * 255).astype(np.uint8)
    d = tmp_path / "png"
    d.mkdir()
    for k in range(40):
        img = a[40:200, 2 * k : 2 * k + 256] if k < 20 else b[40:200, 3 * k - 60 : 3 * k - 60 + 256]
        Image.fromarray(np.ascontiguousarray(img)).save(d / f"{k:03d}.png")
    out = tmp_path / "cut.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-framerate", "25", "-i", str(d / "%03d.png"), "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-crf", "18", str(out)], check=True)
    return out


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg needed to make the test video")
def test_video_file_respects_scene_cuts(tmp_path):
    path = _encode_video(tmp_path)
    src = VideoFile(path, strides=[1, 2])  # vapoursynth-bestsource if installed, else ffmpeg
    frames = src.sequences[0]
    assert frames.shape == (40, 3, 160, 256) and frames.dtype == torch.uint8
    assert src.cuts[0] == [20]
    assert detect_scene_cuts(frames) == [20]
    assert src.windows and all(w[-1] < 20 or w[0] >= 20 for _, w in src.windows)
    assert len(src.windows) == 2 * (14 + 8)
    ff = VideoFile(path, decoder="ffmpeg", scene_cuts=[20])
    assert ff.sequences[0].shape == frames.shape
    half = VideoFile(path, downscale=2.0, scene_cuts="none", max_frames=10)
    assert half.sequences[0].shape == (10, 3, 80, 128) and half.cuts == [[]]


def test_bestsource_decoder_is_used(tmp_path):
    vs = pytest.importorskip("vapoursynth")
    if not hasattr(vs.core, "bs") or shutil.which("ffmpeg") is None:
        pytest.skip("vapoursynth-bestsource or ffmpeg missing")
    from training.data.video import read_video_vs

    frames, _ = read_video_vs(str(_encode_video(tmp_path)))
    assert frames.shape == (40, 3, 160, 256)


def _photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    img = np.asarray(Image.fromarray((rng.random((150, 200, 3)) * 255).astype(np.uint8)).resize((800, 600), Image.BICUBIC))
    p = tmp_path / "photos"
    p.mkdir()
    Image.fromarray(img).save(p / "p.png")
    return p


def test_stills_render_motion(tmp_path):
    still = dict(static=1.0, handheld=0.0, zoom=0.0, roll=0.0, tilt=0.0)
    src = StillPhotos(_photo(tmp_path), motion=still, flat_keep=1.0)
    x = src.sample(np.random.default_rng(0), (48, 64))
    assert x.shape == (7, 3, 48, 64) and x.dtype == torch.uint8
    assert (x.float() - x[3].float()).abs().max() <= 1  # a camera at rest: 7 equal frames
    pan = dict(static=0.0, speed=[2.0, 2.0], accel=0.0, handheld=0.0, zoom=0.0, roll=0.0, tilt=0.0)
    src = StillPhotos(src.paths, motion=pan, flat_keep=1.0)
    x = src.sample(np.random.default_rng(1), (48, 64)).float()
    # consecutive frames are shifted copies: the best integer shift has length about 2 px
    a, b = x[3, :, 8:-8, 8:-8], x[4]
    errs = {(dy, dx): (a - b[:, 8 + dy : 40 + dy, 8 + dx : 56 + dx]).abs().mean().item() for dy in range(-4, 5) for dx in range(-4, 5)}
    dy, dx = min(errs, key=errs.get)
    assert 1.0 <= (dy * dy + dx * dx) ** 0.5 <= 3.0
    assert src.sample(np.random.default_rng(2), (1000, 1000)) is None  # does not fit at zoom >= 2


def test_train_data_batches(tmp_path):
    _write_frames(tmp_path / "frames" / "s", [3 * k for k in range(12)], size=(200, 260))
    sources = [FrameFolders(tmp_path / "frames", scene_cuts="none"), StillPhotos(_photo(tmp_path))]
    data = TrainData(sources, [1, 1], lr_patch=20, batch_size=3, schedule=ScaleSchedule(fixed=(1.5, 3.5)), seed=5)
    b = data.batch(7)
    assert b["gt"].shape == (3, 7, 3, *gt_patch_size(20, (1.5, 3.5))) == (3, 7, 3, 30, 70)
    assert tuple(b["scale"].tolist()) == (1.5, 3.5)
    assert torch.equal(b["gt"], data.batch(7)["gt"])  # a pure function of (seed, iteration)
    assert not torch.equal(b["gt"], data.batch(8)["gt"])


def test_eval_sets_are_refused(tmp_path):
    _write_frames(tmp_path / "vid4" / "calendar", list(range(8)))
    with pytest.raises(ValueError, match="evaluation"):
        build_sources([{"type": "frames", "path": str(tmp_path / "vid4")}])
    with pytest.raises(ValueError, match="evaluation"):
        build_sources([{"type": "frames", "path": str(tmp_path / "vid4" / "calendar")}])


def test_shipped_sources_load(fixtures_dir):
    """Real footage through the shipped configs' source types (never Vid4): the frames in tests/fixtures and the
    bundled sample clip, whose one shot change (frame 30) no window spans."""
    import vssavsr

    sources, weights = build_sources([
        {"type": "frames", "path": str(fixtures_dir / "bikes"), "strides": [1, 2]},
        {"type": "video", "path": vssavsr.sample_clip_path()},
        {"type": "stills", "path": str(fixtures_dir / "stills")},
    ])
    frames, bikes, stills = sources
    assert frames.sequences[0].shape == (16, 3, 136, 320) and frames.cuts == [[]]
    assert bikes.sequences[0].shape == (75, 3, 136, 320)
    assert bikes.cuts[0] == [30]  # the clip's shot change
    assert all(not any(w[0] < c <= w[-1] for c in bikes.cuts[0]) for _, w in bikes.windows)
    assert len(stills.photos) == 2 and stills.sample(np.random.default_rng(0), (40, 40)).shape == (7, 3, 40, 40)
