"""Tiling: exact geometry, frame-wide global means, and tiled == untiled on real content."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vssavsr.engine import tiling
from vssavsr.model.layers import GlobalAvgPool, pooling_hook
from vssavsr.model.upsampler import make_hr_grid, sample_lr


def _local_fn(depth=4, seed=0, global_mean=False):
    """A small local network (receptive field `depth` LR px) + the model's HR sampling and an HR conv."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(depth, 3, 3, 3, 3, generator=g) * 0.3
    hr = torch.randn(3, 3, 3, 3, generator=g) * 0.2
    pool = GlobalAvgPool()  # a frame-wide mean, as the model computes every one

    def fn(frames, out_size, scale, offset):
        x = frames[:, 3]
        for i in range(depth):
            x = torch.tanh(F.conv2d(x, k[i], padding=1))
            if global_mean:
                x = x * torch.sigmoid(8 * pool(x))
        y = sample_lr(x, make_hr_grid(out_size, scale, offset, x.device), padding_mode="border")
        return y + F.conv2d(y, hr, padding=1)

    return fn


@pytest.mark.parametrize(
    "size,out_size,scale,offset",
    [
        ((61, 83), (122, 166), (2.0, 2.0), (0.0, 0.0)),
        ((61, 83), (150, 200), (150 / 61, 200 / 83), (0.0, 0.0)),
        ((61, 83), (100, 130), (2.3, 1.7), (3.2, -1.4)),
        ((40, 52), (37, 61), (37 / 40, 61 / 52), (0.25, 0.0)),
    ],
)
@pytest.mark.parametrize("tile,pad", [(40, 8), (30, 6), ((48, 20), 6)])
def test_geometry_is_exact(size, out_size, scale, offset, tile, pad):
    fn = _local_fn()
    x = torch.rand(2, 7, 3, *size, generator=torch.Generator().manual_seed(1))
    ref = fn(x, out_size, scale, offset)
    tiles = tiling.plan_tiles(size, out_size, scale, offset, tile, pad)
    assert len(tiles) > 1
    out = tiling.tiled_forward(fn, x, out_size, scale, offset, tile, pad)
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() < 1e-4


def test_tiles_respect_the_size_cover_everything_once_and_align():
    size, out_size, scale = (137, 251), (300, 555), (300 / 137, 555 / 251)
    tiles = tiling.plan_tiles(size, out_size, scale, (0.0, 0.0), (64, 96), 12)
    cover = np.zeros(out_size, dtype=int)
    for t in tiles:
        y0, y1, x0, x1 = t.lr_box
        assert y1 - y0 <= 64 and x1 - x0 <= 96
        assert y0 % tiling.ALIGN == 0 and x0 % tiling.ALIGN == 0
        i0, i1, j0, j1 = t.hr_box
        cover[i0:i1, j0:j1] += 1
    assert (cover == 1).all()


def test_tile_too_small_for_the_overlap_is_refused():
    with pytest.raises(ValueError, match="tile"):
        tiling.check_tile(20, 16)
    tiling.check_tile(48, 16)


def test_statistics_passes_make_global_means_frame_wide():
    fn = _local_fn(depth=3, global_mean=True)
    x = torch.rand(1, 7, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    x[..., :, :40] *= 0.2  # very different content in different tiles
    ref = fn(x, (128, 192), (2.0, 2.0), (0.0, 0.0))
    errs = []
    for passes in (0, 1, 3):
        out = tiling.tiled_forward(fn, x, (128, 192), (2.0, 2.0), (0.0, 0.0), 40, 8, stat_passes=passes)
        errs.append((out - ref).abs().max().item())
    assert errs[0] > 0.01  # tile-local means are visibly wrong
    assert errs[2] < 1e-3 and errs[1] < errs[0]


def test_a_pooling_site_that_cannot_be_made_frame_wide_fails_loudly():
    x = torch.rand(1, 7, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    pool = GlobalAvgPool()

    def downsampled(frames, out_size, scale, offset):  # a mean over a half-resolution map
        y = F.avg_pool2d(frames[:, 3], 2)
        return F.interpolate(frames[:, 3] * pool(y), size=out_size)

    with pytest.raises(tiling.TiledPoolingError, match=r"averages a \d+ x \d+ map in a \d+ x \d+ tile"):
        tiling.tiled_forward(downsampled, x, (128, 192), (2.0, 2.0), (0.0, 0.0), 40, 8)

    for left_only in (False, True):  # a site missed on some tiles, or one they alone have

        def uneven(frames, out_size, scale, offset):  # no frame-wide mean exists
            y = frames[:, 3]
            if (offset[1] < 1) == left_only:
                y = y * pool(y)
            return F.interpolate(y, size=out_size)

        with pytest.raises(tiling.TiledPoolingError, match="pooling call.*cannot be made frame-wide"):
            tiling.tiled_forward(uneven, x, (128, 192), (2.0, 2.0), (0.0, 0.0), 40, 8)


def test_without_pooling_there_is_no_statistics_pass():
    calls = []
    fn = _local_fn()
    x = torch.rand(1, 7, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    tiling.tiled_forward(lambda *a: calls.append(a[1]) or fn(*a), x, (128, 192), (2.0, 2.0), (0.0, 0.0), 40, 8)
    tiles = tiling.plan_tiles((64, 96), (128, 192), (2.0, 2.0), (0.0, 0.0), 40, 8)
    assert calls.count((1, 1)) == len(tiles)  # one pass finds no pooling site, the second is skipped


def test_every_frame_wide_mean_of_the_model_is_a_global_avg_pool():
    """No model file averages over H and W except GlobalAvgPool (a mean written as x.mean would be missed by the
    tiling's statistics pass), and the shipped configuration's pooling calls all reach the hook."""
    model_dir = Path(tiling.__file__).resolve().parents[1] / "model"
    found = []
    for path in sorted(model_dir.glob("*.py")):
        tree = ast.parse(path.read_text())
        allowed = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == "GlobalAvgPool"
                   for n in ast.walk(c)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in allowed and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                text = ast.unparse(node)
                spatial = name in ("mean", "sum", "amax") and any(d in text for d in ("(2, 3)", "(-2, -1)", "[2, 3]"))
                if spatial or name in ("adaptive_avg_pool2d", "AdaptiveAvgPool2d"):
                    found.append(f"{path.name}:{node.lineno}: {text}")
    assert found == []

    from vssavsr.model import NAMED_CONFIGS, SAVSR

    torch.manual_seed(0)
    net = SAVSR(NAMED_CONFIGS["savsr-s"]).eval()
    x = torch.rand(1, 7, 3, 20, 24)
    seen = []
    with torch.inference_mode():
        ref = net(x, out_size=(40, 48))
        with pooling_hook(lambda m, feat, mean: seen.append(m) or mean):
            out = net(x, out_size=(40, 48))
    pools = [m for m in net.modules() if isinstance(m, GlobalAvgPool)]
    assert pools and set(map(id, seen)) == set(map(id, pools))  # every pooling module is called through the hook
    assert torch.equal(out, ref)


def test_a_pooling_hook_belongs_to_its_thread():
    pool = GlobalAvgPool()
    x = torch.rand(2, 3, 5, 5)
    other = {}
    with pooling_hook(lambda m, feat, mean: mean * 0):
        t = threading.Thread(target=lambda: other.setdefault("mean", pool(x)))
        t.start()
        t.join()
        assert torch.count_nonzero(pool(x)) == 0
    torch.testing.assert_close(other["mean"], x.mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(pool(x), x.mean(dim=(2, 3), keepdim=True))


# -- the real network on real frames ------------------------------------------------------


def _real_window(real_frames, h, w):
    """A 7-frame window of the shipped real sequence (tests/fixtures), at h x w."""
    return torch.from_numpy(np.stack(real_frames(7, (h, w))))[None]


def _net(cfg):
    from vssavsr.model import SAVSR

    torch.manual_seed(0)
    return SAVSR(cfg).eval().fuse_for_inference()


@pytest.mark.parametrize("which", ["tiny", "tiny-official", "savsr-s"])
def test_tiled_equals_untiled_on_real_content(which, tiny_config, real_frames):
    import dataclasses

    from vssavsr.model import NAMED_CONFIGS

    configs = {"tiny": tiny_config, "tiny-official": dataclasses.replace(tiny_config, layout="official")}
    net = _net(configs.get(which) or NAMED_CONFIGS["savsr-s"])
    x = _real_window(real_frames, 64, 96)
    fn = lambda f, o, s, off: net(f, out_size=o, scale=s, offset=off)  # noqa: E731
    with torch.inference_mode():
        for out_size in ((128, 192), (150, 171)) if which.startswith("tiny") else ((150, 171),):
            scale = (out_size[0] / 64, out_size[1] / 96)
            ref = fn(x, out_size, scale, (0.0, 0.0))
            tiles = tiling.plan_tiles((64, 96), out_size, scale, (0.0, 0.0), 48, tiling.DEFAULT_PAD)
            assert len(tiles) >= 4
            out = tiling.tiled_forward(fn, x, out_size, scale, (0.0, 0.0), 48, tiling.DEFAULT_PAD)
            err = (out.clamp(0, 1) - ref.clamp(0, 1)).abs().max().item()
            assert err <= 1 / 255, f"{which} {out_size}: seams {err * 255:.3f}/255"


@pytest.mark.slow
def test_tiled_equals_untiled_with_the_shipped_weights(real_frames):
    """Trained weights can have a wider effective receptive field and stronger global attention than
    random ones: check the default overlap (and statistics pass) with what users will run."""
    from vssavsr.engine.runner import weights_dir
    from vssavsr.model import load_checkpoint

    path = weights_dir() / "savsr-s.safetensors"
    if not path.is_file():
        pytest.skip(f"no shipped weights at {path}")
    net, _ = load_checkpoint(path)
    net = net.eval().fuse_for_inference()
    x = _real_window(real_frames, 96, 128)
    fn = lambda f, o, s, off: net(f, out_size=o, scale=s, offset=off)  # noqa: E731
    with torch.inference_mode():
        ref = fn(x, (192, 256), (2.0, 2.0), (0.0, 0.0))
        out = tiling.tiled_forward(fn, x, (192, 256), (2.0, 2.0), (0.0, 0.0), 64, tiling.DEFAULT_PAD)
    err = (out.clamp(0, 1) - ref.clamp(0, 1)).abs().max().item()
    assert err <= 1 / 255, f"seams {err * 255:.3f}/255 with tile_pad={tiling.DEFAULT_PAD}"


def test_tiling_overhead_and_the_suggested_tile():
    from vssavsr.engine.tiling import efficient_tile, overlap_cost

    def cost(lr, tile):
        tiles = tiling.plan_tiles(lr, (2 * lr[0], 2 * lr[1]), (2.0, 2.0), tile=tile, pad=16)
        return len(tiles), overlap_cost(tiles, lr)

    assert cost((90, 160), None) == (1, 1.0)
    count, overhead = cost((1080, 1920), (40, 40))
    assert count > 500 and overhead > 20  # 6-pixel cores inside 40-pixel tiles
    count, overhead = cost((1080, 1920), (512, 512))
    assert count == 3 * 5 and 1.0 < overhead < 1.2  # cores of at most 512 - 2 * 16 - 2 pixels
    th, tw = efficient_tile((1080, 1920), (2160, 3840), (2.0, 2.0), (40, 40), pad=16)
    assert cost((1080, 1920), (th, tw))[1] <= 1.5 < cost((1080, 1920), (th - 16, tw - 16))[1]
    assert efficient_tile((60, 80), (120, 160), (2.0, 2.0), (40, 40), pad=16) == (60, 80)
