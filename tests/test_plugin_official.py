"""The filter takes the authors' released weights (.pth) as its checkpoint and reproduces the official
outputs: frame 3 of a 7-frame clip (its window is exactly frames 0..6) against the conformance vectors.

The filter clamps its input and output to [0, 1] and runs the inference form (BatchNorm folded,
channels-last); frames travel as RGBS (fp32), so the expected frame is the clamped official output
and the tolerance stays the model's: max abs diff <= 1e-5.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import vapoursynth as vs

import vssavsr
from vssavsr.engine import runner as eng
from vssavsr.model import SAVSR
from vssavsr.model import official
from vssavsr.plugin import native

from vssavsr.plugin.arrays import clip_from_arrays, frame_array

core = vs.core
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
TOLERANCE = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _namespace():
    native.ensure_namespace(core)
    yield
    eng.clear_runners()


def clip_of(window: torch.Tensor) -> vs.VideoNode:
    """An RGBS clip whose frame t is window[t] (3, h, w)."""
    return clip_from_arrays(window.numpy())


def frame_of(clip: vs.VideoNode, n: int) -> torch.Tensor:
    return torch.from_numpy(frame_array(clip.get_frame(n)))


def test_pth_checkpoint_through_the_filter_equals_the_model(tiny_config, tmp_path):
    torch.manual_seed(5)
    net = SAVSR(dataclasses.replace(tiny_config, layout="official")).eval()
    path = tmp_path / "tiny_official.pth"
    torch.save({"params": official.official_state_dict(net)}, path)
    x = torch.rand(1, 7, 3, 12, 18, generator=torch.Generator().manual_seed(1))
    out = vssavsr.upscale(clip_of(x[0]), 2.5, 2, checkpoint=str(path))
    assert (out.width, out.height) == (45, 24)
    with torch.no_grad():
        want = net(x, scale=(2.0, 2.5))[0].clamp(0, 1)
    err = (frame_of(out, 3) - want).abs().max().item()
    assert err <= TOLERANCE, err


def test_bad_pth_is_a_vs_error_naming_the_argument(tmp_path):
    bad = tmp_path / "savsr_best.pth"
    bad.write_bytes(b"PK\x03\x04 not really")
    clip = core.std.BlankClip(format=vs.RGBS, width=16, height=16, length=7)
    with pytest.raises(vs.Error, match="checkpoint"):
        core.savsr.Upscale(clip, 2, checkpoint=str(bad))


@pytest.mark.parametrize(
    "vector,item,sx,sy",
    [
        ("official-small.safetensors", 0, 2, 2),
        ("official-small.safetensors", 1, 3.5, 1.5),
        ("official-small-odd.safetensors", 0, 4, 3),
    ],
)
def test_official_vectors_through_the_filter(vector, item, sx, sy):
    from safetensors.torch import load_file

    if not (REFERENCE / vector).is_file():
        pytest.skip(f"conformance vectors not found in {REFERENCE}")
    vec = load_file(str(REFERENCE / vector))
    x, want = vec["x"][item], vec[f"y_{sy}_{sx}"][item].clamp(0, 1)
    out = core.savsr.Upscale(clip_of(x), sx, sy, checkpoint=str(REFERENCE / "official-small.pth"))
    assert (out.height, out.width) == tuple(want.shape[-2:]) and out.num_frames == 7
    err = (frame_of(out, 3) - want).abs().max().item()
    assert err <= TOLERANCE, f"{vector} ({sy}, {sx}): max abs diff {err:.3g}"
