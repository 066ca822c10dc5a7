"""vssavsr-encode without Ray: chunk plans, the planner's scene cuts, one chunk rendered, joining, arguments."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from vssavsr.encode import cli, plan, render
from vssavsr.encode import script as vpy
from vssavsr.encode.plan import Chunk


def _needs_ffmpeg():
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found (apt-get install ffmpeg)")


# ------------------------------------------------------------------------------------------------
# plans
# ------------------------------------------------------------------------------------------------


def _check_cover(chunks, n, longest):
    assert chunks[0].start == 0 and chunks[-1].end == n
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(1 <= c.frames <= longest for c in chunks)


def test_chunks_without_cuts_every_chunk_frames():
    chunks = plan.plan_chunks(100, [], 30)
    _check_cover(chunks, 100, 30)
    assert [c.frames for c in chunks] == [25, 25, 25, 25]  # 4 equal parts of at most 30


def test_chunks_start_at_cuts_and_join_short_scenes():
    cuts = [10, 18, 40, 95, 100]
    chunks = plan.plan_chunks(120, cuts, 30)
    _check_cover(chunks, 120, 30)
    starts = {c.start for c in chunks}
    # Scenes 0-9 and 10-17 share a chunk; 18-39 alone; 40-94 (55 frames) in two halves; 95-99 and 100-119 together.
    assert [(c.start, c.end) for c in chunks] == [(0, 18), (18, 40), (40, 68), (68, 95), (95, 120)]
    assert starts - {0} <= set(cuts) | {68}


@pytest.mark.parametrize("n,longest", [(1, 5), (7, 7), (8, 7), (1000, 250)])
def test_chunks_random_cuts_cover_the_clip(n, longest):
    rng = np.random.default_rng(n)
    cuts = sorted(set(rng.integers(1, max(2, n), size=n // 20 + 1).tolist()))
    chunks = plan.plan_chunks(n, cuts, longest)
    _check_cover(chunks, n, longest)
    bounds = [0] + cuts + [n]
    for c in chunks[1:]:
        if c.start not in cuts:  # only inside a scene too long for one chunk
            scene = next((a, b) for a, b in zip(bounds, bounds[1:]) if a < c.start < b)
            assert scene[1] - scene[0] > longest


def test_default_chunk_length_is_about_ten_seconds():
    assert plan.default_chunk_frames((25, 1)) == 250
    assert plan.default_chunk_frames((24000, 1001)) == 240
    assert plan.default_chunk_frames((0, 1)) == plan.FALLBACK_CHUNK_FRAMES


def test_arguments():
    args = cli.parse(["s.vpy", "-o", "o.mkv", "--workers", "3", "-a", "x=1", "--arg", "y=a=b", "--", "-c:v", "libx264"])
    assert args.workers == 3 and args.ffmpeg_args == ["-c:v", "libx264"]
    assert vpy.parse_args(args.arg) == {"x": "1", "y": "a=b"}
    assert cli.parse(["s.vpy", "-o", "o.mkv"]).ffmpeg_args == render.DEFAULT_FFMPEG_ARGS
    with pytest.raises(ValueError, match="key=value"):
        vpy.parse_args(["novalue"])
    with pytest.raises(SystemExit):
        cli.parse(["s.vpy", "-o", "o.mkv", "--chunk-frames", "0"])


# ------------------------------------------------------------------------------------------------
# the planner on real scripts
# ------------------------------------------------------------------------------------------------

UPSCALE = textwrap.dedent(
    """
    import vapoursynth as vs
    from vapoursynth import core
    clip = core.bs.VideoSource(src)
    clip = core.resize.Bicubic(clip, int(width), int(height))
    clip = core.savsr.Upscale(clip, 2, checkpoint=ckpt)
    clip.set_output()
    """
)


def _plan_for(tmp_path, args, chunk_frames=None):
    script = tmp_path / "up.vpy"
    script.write_text(UPSCALE)
    return cli.make_plan(script, args, chunk_frames, identity={}, progress=False)


def test_planner_finds_the_sample_cut_without_running_the_model(tmp_path, tiny_checkpoint, monkeypatch):
    import vssavsr
    from vssavsr.engine import runner

    calls = []
    real = runner.ModelRunner.__call__
    monkeypatch.setattr(runner.ModelRunner, "__call__", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    p = _plan_for(tmp_path, {"src": vssavsr.sample_clip_path(), "width": "64", "height": "28",
                             "ckpt": str(tiny_checkpoint)}, chunk_frames=20)
    assert p.num_frames == 75 and p.fps == (25, 1) and p.cuts == [30]
    assert 30 in {c.start for c in p.chunks}
    assert calls == []  # props-only: decoding and detection, no model


def test_planner_finds_the_city_cut(tmp_path, tiny_checkpoint, shared_data):
    path = shared_data / "validation" / "city_night_720x405.mpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    p = _plan_for(tmp_path, {"src": str(path), "width": "180", "height": "100", "ckpt": str(tiny_checkpoint)},
                  chunk_frames=150)
    assert p.cuts == [116]
    assert [(c.start, c.end) for c in p.chunks] == [(0, 116), (116, 190)]  # both shots fit no 150-frame chunk


def test_plan_file_round_trip(tmp_path):
    p = plan.Plan(identity={"a": 1}, num_frames=10, fps=(25, 1), cuts=[4], chunk_frames=5,
                  chunks=[Chunk(0, 4), Chunk(4, 9), Chunk(9, 10)])
    p.save(tmp_path)
    assert plan.Plan.load(tmp_path) == p


# ------------------------------------------------------------------------------------------------
# one chunk, then joining (what each Ray task and the end of an encode do)
# ------------------------------------------------------------------------------------------------

PLAIN = textwrap.dedent(
    """
    import vapoursynth as vs
    from vapoursynth import core
    from vssavsr.encode import current_chunk
    clip = core.std.BlankClip(format=vs.YUV420P8, width=32, height=16, length=12)
    clip = core.std.FrameEval(clip, lambda n: core.std.BlankClip(clip, color=[n * 20, 128, 128], length=12))
    if current_chunk() is not None:
        open(log, "a").write("%d %d\\n" % current_chunk())
    clip.set_output()
    """
)


def _decode(path, nbytes):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, nbytes)


def test_render_and_join_chunks(tmp_path):
    _needs_ffmpeg()
    script = tmp_path / "plain.vpy"
    script.write_text(PLAIN)
    log = tmp_path / "log.txt"
    job = render.Job(script=str(script), args={"log": str(log)}, workdir=str(tmp_path), num_frames=12)
    chunks = [Chunk(0, 5), Chunk(5, 12)]
    seen = []
    for c in chunks:
        res = render.render_chunk(job, c, report=seen.append)
        assert not res["skipped"] and (tmp_path / c.filename).is_file()
    assert seen[-1] == 7 and log.read_text() == "0 5\n5 12\n"
    assert render.render_chunk(job, chunks[0])["skipped"]  # a finished chunk is never rendered again
    assert not list(tmp_path.glob("*.partial*"))
    out = tmp_path / "out.mkv"
    from vssavsr.encode.join import join_chunks

    join_chunks(tmp_path, chunks, out)
    frames = _decode(out, 32 * 16 * 3 // 2)
    assert frames.shape[0] == 12
    assert [int(f[0]) for f in frames] == [n * 20 for n in range(12)]  # every frame, in order


def test_a_failing_chunk_leaves_no_file(tmp_path):
    _needs_ffmpeg()
    script = tmp_path / "bad.vpy"
    script.write_text(PLAIN.replace("clip.set_output()", "clip = core.std.ModifyFrame(clip, clip, lambda n, f: 1/(n-3) and f)\n"
                                    "clip.set_output()"))
    job = render.Job(script=str(script), args={"log": str(tmp_path / "log")}, workdir=str(tmp_path), num_frames=12)
    with pytest.raises(Exception, match="division by zero"):
        render.render_chunk(job, Chunk(0, 6))
    assert list(tmp_path.glob("chunk-*")) == []


def test_rgb_output_is_refused_with_the_fix(tmp_path):
    script = tmp_path / "rgb.vpy"
    script.write_text("import vapoursynth as vs\nvs.core.std.BlankClip(format=vs.RGB24, length=3).set_output()\n")
    with pytest.raises(render.EncodeError, match="YUV"):
        cli.make_plan(script, {}, None, {}, progress=False)


def test_a_work_folder_of_another_encode_is_not_mixed_in(tmp_path):
    folder = tmp_path / "o.mkv.chunks"
    folder.mkdir()
    plan.Plan(identity={"script": "a"}, num_frames=3, fps=(1, 1), cuts=[], chunk_frames=3,
              chunks=[Chunk(0, 3)]).save(folder)
    (folder / Chunk(0, 3).filename).write_bytes(b"x")
    (folder / "chunk-00000000-00000003.1234abcd.partial").write_bytes(b"half")
    with pytest.raises(render.EncodeError, match="--restart"):
        cli.prepare_work_folder(folder, {"script": "b"}, restart=False)
    assert not list(folder.glob("*.partial"))  # stale partial files go in any case
    assert cli.prepare_work_folder(folder, {"script": "a"}, restart=False).chunks == [Chunk(0, 3)]
    assert cli.prepare_work_folder(folder, {"script": "b"}, restart=True) is None
    assert list(folder.iterdir()) == []


def test_a_script_that_cannot_be_planned_fails_cleanly(tmp_path, capsys):
    script = tmp_path / "rgb.vpy"
    script.write_text("import vapoursynth as vs\nvs.core.std.BlankClip(format=vs.RGB24, length=3).set_output()\n")
    assert cli.main([str(script), "-o", str(tmp_path / "o.mkv"), "--no-progress"]) == 1
    assert "YUV" in capsys.readouterr().err
    assert not (tmp_path / "o.mkv.chunks").exists() and not (tmp_path / "o.mkv").exists()
    assert cli.main([str(tmp_path / "missing.vpy"), "-o", str(tmp_path / "o.mkv")]) == 1
