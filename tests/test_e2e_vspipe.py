"""End to end: a .vpy that only does `from vapoursynth import core`, run by vspipe, piped into
ffmpeg; ffprobe checks the encoded file. Needs the package installed with `pip install .` (the
native plugin must be in VapourSynth's autoload folder) and ffmpeg/ffprobe on PATH.

vspipe needs VapourSynth's runtime configuration (`vapoursynth config`, which records which
Python to embed); the tests write their own into a temporary XDG_CONFIG_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import vapoursynth as vs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def vs_env(tmp_path_factory):
    if not (Path(vs.get_plugin_dir()) / "libvssavsr.so").is_file():
        pytest.skip(f"the native plugin is not installed in {vs.get_plugin_dir()}: run 'pip install .' first")
    vspipe = BIN / "vspipe"
    if not vspipe.exists():
        pytest.skip("vspipe not found next to the Python executable")
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found (apt-get install ffmpeg)")
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    subprocess.run([str(BIN / "vapoursynth"), "config"], env=env, check=True, capture_output=True, timeout=60)
    return env


def vspipe(env, *args, timeout=300, stdout=subprocess.PIPE):
    return subprocess.run([str(BIN / "vspipe"), *map(str, args)], env=env, stdout=stdout, stderr=subprocess.PIPE,
                          timeout=timeout, cwd=str(REPO))


SCRIPT = textwrap.dedent(
    """
    from vapoursynth import core
    import vapoursynth as vs

    # Real camera footage (the sample shipped in the package), a small crop of 10 frames.
    src = core.bs.VideoSource(source=src, cachemode=0) if hasattr(core, "bs") else None
    if src is None:
        src = core.std.BlankClip(format=vs.YUV420P8, width=320, height=136, length=10, color=[90, 120, 140])
    clip = core.std.CropAbs(src, 64, 48, 100, 40)[:10]
    a = core.savsr.Upscale(clip, 2, checkpoint=ckpt)                     # 128 x 96
    b = core.savsr.Upscale(clip, 1.5, 2.5, checkpoint=ckpt, batch=2)     # 96 x 120: a second clip
    b = core.resize.Bicubic(b, 128, 96)
    core.std.StackHorizontal([a, b]).set_output()
    """
)


def test_vspipe_to_ffmpeg(vs_env, tmp_path, tiny_checkpoint):
    import vssavsr

    script = tmp_path / "upscale.vpy"
    script.write_text(SCRIPT)
    assert "import vssavsr" not in SCRIPT and "savsr" in SCRIPT
    args = ["-a", f"src={vssavsr.sample_clip_path()}", "-a", f"ckpt={tiny_checkpoint}"]

    info = vspipe(vs_env, "--info", *args, script, "-")
    assert info.returncode == 0, info.stderr.decode()
    text = info.stdout.decode()
    assert "Width: 256" in text and "Height: 96" in text and "Frames: 10" in text

    out = tmp_path / "out.mkv"
    pipe = subprocess.Popen([str(BIN / "vspipe"), "-c", "y4m", *args, str(script), "-"], env=vs_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    enc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", "-", "-c:v", "ffv1", str(out)], stdin=pipe.stdout,
                         capture_output=True, timeout=300)
    pipe.stdout.close()
    err = pipe.stderr.read().decode()
    assert pipe.wait(timeout=60) == 0, err
    assert enc.returncode == 0, enc.stderr.decode()

    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=width,height,nb_read_frames", "-of", "json", str(out)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (256, 96, 10)


FAILING = textwrap.dedent(
    """
    from vapoursynth import core
    import vapoursynth as vs
    import torch
    from vssavsr.engine import runner

    class Broken:  # a model that runs out of memory on every call
        num_frames, device, net = 7, torch.device("cpu"), None
        def __call__(self, *a, **k):
            raise RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB")

    runner.get_runner = lambda *a, **k: Broken()
    clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=50)
    core.savsr.Upscale(clip, 2, checkpoint=ckpt).set_output()
    """
)


def test_failure_inside_a_frame_stops_vspipe_with_the_frame_and_a_hint(vs_env, tmp_path, tiny_checkpoint):
    script = tmp_path / "broken.vpy"
    script.write_text(FAILING)
    res = vspipe(vs_env, "-c", "y4m", "-a", f"ckpt={tiny_checkpoint}", script, "--", timeout=120)
    err = res.stderr.decode()
    assert res.returncode != 0
    assert "frame" in err and "out of memory" in err and "tile=" in err, err


def test_bad_argument_in_a_script_is_reported(vs_env, tmp_path, tiny_checkpoint):
    script = tmp_path / "bad.vpy"
    script.write_text(
        "from vapoursynth import core\n"
        "clip = core.std.BlankClip(width=64, height=48, length=3)\n"
        f"core.savsr.Upscale(clip, 2, width=128, checkpoint={str(tiny_checkpoint)!r}).set_output()\n"
    )
    res = vspipe(vs_env, "--info", script, "-", timeout=120)
    assert res.returncode != 0
    assert "savsr.Upscale: sx/sy and width/height" in res.stderr.decode()
