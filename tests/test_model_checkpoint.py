"""Checkpoints: safetensors + config + format version; round trip and every bad-file case."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from vssavsr.model import FORMAT_VERSION, SAVSR, CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture()
def saved(tiny_config, tmp_path):
    torch.manual_seed(1)
    net = SAVSR(tiny_config).eval()
    path = save_checkpoint(net, tmp_path / "net.safetensors", metadata={"step": 12, "data": "vimeo"})
    return net, path


def test_round_trip_gives_bit_identical_outputs(saved):
    net, path = saved
    loaded, meta = load_checkpoint(path)
    assert meta == {"step": 12, "data": "vimeo"}
    assert loaded.config == net.config and not loaded.training
    x = torch.rand(1, 7, 3, 9, 10)
    with torch.no_grad():
        assert torch.equal(net(x, out_size=(25, 31)), loaded(x, out_size=(25, 31)))
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_fixture_checkpoint_and_fp16_export(tiny_checkpoint, tmp_path):
    net, meta = load_checkpoint(tiny_checkpoint)
    assert meta["note"].startswith("random weights")
    half = save_checkpoint(net, tmp_path / "half.safetensors", dtype=torch.float16)
    tensors = load_file(str(half))
    assert tensors["tail.weight"].dtype == torch.float16
    assert tensors["alignment.forward_unit.blocks.1.refine.trunk.bn.num_batches_tracked"].dtype == torch.int64
    loaded, _ = load_checkpoint(half)
    assert loaded.tail.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.tail.weight, net.tail.weight.half().float())


def test_file_is_safetensors_with_config_and_version(saved):
    net, path = saved
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["vssavsr_format_version"] == str(FORMAT_VERSION)
    assert json.loads(meta["vssavsr_config"]) == net.config.to_dict()


def test_metadata_must_be_json(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(SAVSR(tiny_config), tmp_path / "x.safetensors", metadata={"bad": object()})


def expect(path, kind, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert info.value.kind == kind
    return info.value


def test_missing_file(tmp_path):
    expect(tmp_path / "nope.safetensors", "missing", "not found")


@pytest.mark.parametrize("content", [b"", b"abc", b"PK\x03\x04" + bytes(100), b"not a checkpoint at all, just text"])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    expect(path, "not_safetensors", "not a safetensors file")


def test_torch_pickle_is_refused_without_executing(tiny_config, tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save(SAVSR(tiny_config).state_dict(), path)
    expect(path, "not_safetensors", "not a safetensors file")


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_file(saved, tmp_path, keep):
    _, path = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * keep)])
    expect(cut, "truncated", "truncated")


def test_truncated_inside_header(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:40])
    expect(cut, "truncated", "truncated")


def test_safetensors_without_vssavsr_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    expect(path, "not_checkpoint", "not a vssavsr checkpoint")


def rewrite(path, out, tensors=None, **meta_changes):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    meta.update(meta_changes)
    save_file(tensors if tensors is not None else load_file(str(path)), str(out), metadata=meta)
    return out


def test_unsupported_format_version(saved, tmp_path):
    _, path = saved
    expect(rewrite(path, tmp_path / "v.safetensors", vssavsr_format_version="99"), "version", "format version '99'")


def test_unknown_config_key(saved, tmp_path):
    net, path = saved
    cfg = dict(net.config.to_dict(), warp_drive=1)
    bad = rewrite(path, tmp_path / "c.safetensors", vssavsr_config=json.dumps(cfg))
    expect(bad, "config", "unknown SAVSRConfig keys: warp_drive")


def test_architecture_mismatch_names_the_keys(saved, tmp_path):
    net, path = saved
    tensors = load_file(str(path))
    del tensors["tail.bias"]
    tensors["extra.weight"] = torch.zeros(1)
    tensors["tail.weight"] = torch.zeros(3, 9, 3, 3)
    err = expect(rewrite(path, tmp_path / "a.safetensors", tensors), "architecture", "architecture mismatch")
    msg = str(err)
    assert "missing keys: tail.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "mis-shaped keys: tail.weight" in msg


def test_config_of_another_architecture(saved, tmp_path):
    net, path = saved
    other = dict(net.config.to_dict(), channels=12)
    bad = rewrite(path, tmp_path / "o.safetensors", vssavsr_config=json.dumps(other))
    expect(bad, "architecture", "mis-shaped keys")
