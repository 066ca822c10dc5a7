"""scripts/benchmark: it runs (--quick, and a tiny end-to-end case), writes the JSON it
promises, its fast and naive modes compute the same output, and a broken plugin is an error, not
a skip. Timing is the benchmark's job, not the tests'."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "benchmark"  # a package, run as a folder
HAVE_VAPOURSYNTH = importlib.util.find_spec("vapoursynth") is not None

MODE_KEYS = {"fps", "ms_per_frame", "peak_mem_mib", "samples_ms_per_frame"}
CASE_KEYS = {"case", "model", "lr_size", "out_size", "scale", "batch", "frames", "macs_per_frame",
             "conv_macs_per_frame", "modes", "ratios", "agreement", "weights"}


def _load_script(name: str):
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"vssavsr_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    """The benchmark package (scripts/benchmark), with its submodules."""
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    pkg = importlib.import_module("benchmark")
    for name in ("cases", "modes", "report", "child", "backends.model", "backends.plugin"):
        importlib.import_module(f"benchmark.{name}")
    return pkg


def _check_plugin(plugin: dict) -> None:
    """The plugin mode may be skipped only where VapourSynth is absent; a plugin that fails is an error."""
    if not HAVE_VAPOURSYNTH:
        assert "VapourSynth is not installed" in plugin.get("skipped", ""), plugin
        return
    _check_mode(plugin, "plugin")
    assert plugin["via"] == "core.savsr.Upscale"


def _env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _check_mode(mode: dict, name: str) -> None:
    assert "error" not in mode, f"{name}: {mode.get('error')}"
    missing = MODE_KEYS - set(mode)
    assert not missing, f"{name} lacks {missing}"
    assert mode["fps"] > 0 and mode["ms_per_frame"] > 0
    assert mode["fps"] == pytest.approx(1e3 / mode["ms_per_frame"])
    assert mode["peak_mem_mib"] > 0
    if name != "overhead":
        assert mode["tflops"] > 0


def test_tiny_end_to_end_json(tmp_path, tiny_config, bench):
    """Every mode on a tiny network and frame, one round: the JSON has the promised fields."""
    ckpt = bench.cases.make_random_checkpoint(tiny_config, tmp_path / "tiny.safetensors")
    out = tmp_path / "bench.json"
    _run(["--device", "cpu", "--cases", "20x16x2:b2:n2", "--checkpoint", str(ckpt), "--rounds", "1",
          "--modes", "raw,engine,plugin,overhead,naive", "--json", str(out)], timeout=240)
    data = json.loads(out.read_text())
    assert data["meta"]["device"] == "cpu" and data["meta"]["threads"] == 1
    (case,) = data["cases"]
    assert CASE_KEYS <= set(case)
    assert case["case"] == "20x16x2" and case["out_size"] == [32, 40]
    for name in ("raw", "engine", "naive"):
        _check_mode(case["modes"][name], name)
    assert case["modes"]["naive"]["batch"] == 1 and case["modes"]["raw"]["batch"] == 2
    plugin = case["modes"]["plugin"]
    _check_plugin(plugin)
    if HAVE_VAPOURSYNTH:
        _check_mode(case["modes"]["overhead"], "overhead")
        assert "tflops" not in case["modes"]["overhead"]
        assert case["ratios"]["plugin_over_raw"] > 0 and case["ratios"]["overhead_over_raw"] > 0
        assert case["agreement"]["plugin_vs_engine_255"] <= 0.5
    assert case["ratios"]["fast_over_naive"] > 0
    assert case["agreement"]["raw_vs_naive_255"] <= 0.05  # both fp32 on the CPU


def test_ensemble_modes_report_their_cost_against_the_engine(tmp_path, tiny_config, bench):
    ckpt = bench.cases.make_random_checkpoint(tiny_config, tmp_path / "tiny.safetensors")
    out = tmp_path / "bench.json"
    _run(["--device", "cpu", "--cases", "20x16x2:b2:n2", "--checkpoint", str(ckpt), "--rounds", "1",
          "--modes", "engine,engine-ens2,engine-ens8", "--json", str(out)], timeout=240)
    (case,) = json.loads(out.read_text())["cases"]
    for name in ("engine", "engine-ens2", "engine-ens8"):
        _check_mode(case["modes"][name], name)
    assert case["configs"]["engine-ens8"] == "engine, ensemble=8"
    assert case["ratios"]["ens2_over_engine"] > 0 and case["ratios"]["ens8_over_engine"] > 0


@pytest.mark.slow
def test_quick_runs_and_writes_json(tmp_path):
    """``--quick`` (the documented CPU command) finishes in time and writes every field."""
    out = tmp_path / "quick.json"
    proc = _run(["--quick", "--json", str(out)], timeout=170)
    assert "raw/naive speed-up" in proc.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["device"] == "cpu"
    assert data["meta"]["total_s"] < 150
    (case,) = data["cases"]
    assert case["model"] == "savsr-s"
    for name in ("raw", "engine", "naive"):
        _check_mode(case["modes"][name], name)
    _check_plugin(case["modes"]["plugin"])
    assert case["ratios"]["fast_over_naive"] > 0
    assert case["agreement"]["raw_vs_naive_255"] <= 0.05


def _outputs(bench, ckpt, spec, frames, table, members, out_size):
    from vssavsr.model import load_checkpoint

    model = bench.backends.model
    net, _ = load_checkpoint(str(ckpt))
    net = model.prepare_net(net, spec, torch.device("cpu"))
    fn = model.make_model_fn(net, spec, torch.device("cpu"), out_size)
    x = frames.to(model.input_dtype(spec))
    outs = []
    with torch.inference_mode():
        b = spec.batch or len(members)
        for i in range(0, len(members), b):
            outs.append(fn(x[table[members[i:i + b]]]).float())
    return torch.cat(outs)


def test_fast_and_naive_modes_agree(tmp_path, tiny_config, bench):
    """The benchmark's raw (fast) setup and its naive (reference) setup give the same frames:
    fp32 to float rounding; fp16 / bf16 with channels-last within the issue's 2/255 (fp16)."""
    ckpt = bench.cases.make_random_checkpoint(tiny_config, tmp_path / "tiny.safetensors", seed=3)
    frames = torch.from_numpy(bench.cases.synth_frames(9, 18, 22, seed=1))
    table = bench.cases.window_table(9)
    members = [2, 3, 4, 5]
    out_size = (36, 44)
    naive_spec = bench.modes.ModeSpec("naive", reference=True, fuse=False, batch=1)
    naive = _outputs(bench, ckpt, naive_spec, frames, table, members, out_size)
    assert naive.shape == (4, 3, 36, 44)
    fast = _outputs(bench, ckpt, bench.modes.ModeSpec("raw", channels_last=True, batch=2), frames, table, members, out_size)
    assert (fast - naive).abs().max().item() <= 1e-4
    # Folding BN really changed the computation path (random BN statistics), yet agrees.
    from vssavsr.model import load_checkpoint

    net, _ = load_checkpoint(str(ckpt))
    bench.backends.model.prepare_net(net, bench.modes.ModeSpec("raw"), torch.device("cpu"))
    assert any(getattr(m, "is_fused", False) for m in net.modules())
    half = _outputs(bench, ckpt, bench.modes.ModeSpec("raw", precision="fp16", channels_last=True, batch=2),
                    frames, table, members, out_size)
    assert (half.clamp(0, 1) - naive.clamp(0, 1)).abs().max().item() <= 2 / 255
    bf = _outputs(bench, ckpt, bench.modes.ModeSpec("raw", precision="bf16", cast="autocast", batch=4),
                  frames, table, members, out_size)
    assert torch.isfinite(bf).all() and (bf.clamp(0, 1) - naive.clamp(0, 1)).abs().max().item() <= 8 / 255


def test_naive_mode_is_the_literal_computation(tmp_path, tiny_config, bench):
    """Naive = reference mode everywhere, unfused, fp32, one window per call."""
    from vssavsr.model import load_checkpoint

    modes = bench.modes.default_modes("cuda", argparse.Namespace(precision=None, cast="half", channels_last=None,
                                                                 compile=None))
    naive = modes["naive"]
    assert naive.reference and not naive.fuse and naive.precision == "fp32" and naive.batch == 1
    raw = modes["raw"]
    assert raw.fuse and raw.precision == "fp16" and raw.channels_last and raw.batch is None
    ckpt = bench.cases.make_random_checkpoint(tiny_config, tmp_path / "t.safetensors")
    net, _ = load_checkpoint(str(ckpt))
    bench.backends.model.prepare_net(net, naive, torch.device("cpu"))
    flags = [m.reference_mode for m in net.modules() if hasattr(m, "reference_mode")]
    assert flags and all(flags)
    assert not any(getattr(m, "is_fused", False) for m in net.modules())
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_helpers(bench, tiny_config):
    c = bench.cases.parse_case("320x180x4:b8:n64")
    assert (c.width, c.height, c.scale, c.batch, c.frames) == (320, 180, 4.0, 8, 64)
    assert c.out_size == (720, 1280) and c.name == "320x180x4"
    assert bench.cases.parse_case("1920x1080x2:t512").tile == 512
    with pytest.raises(SystemExit):
        bench.cases.parse_case("320x180")
    frames = bench.cases.synth_frames(3, 10, 12)
    assert frames.shape == (3, 3, 10, 12) and frames.dtype == np.float32
    assert 0 <= frames.min() and frames.max() <= 1 and np.array_equal(frames, bench.cases.synth_frames(3, 10, 12))
    table = bench.cases.window_table(6)
    assert table[0].tolist() == [3, 2, 1, 0, 1, 2, 3]
    est = bench.backends.model.estimate_peak_bytes(tiny_config, bench.cases.Case(20, 16, 2.0, batch=2),
                                                   bench.modes.ModeSpec("raw"))
    assert est is not None and est > 0
    assert bench.report.bf16_peak("NVIDIA H100 80GB HBM3", None) == pytest.approx(989.4)
    assert bench.report.bf16_peak("NVIDIA H100 PCIe", None) == pytest.approx(756.5)
    assert bench.report.bf16_peak("NVIDIA H200", None) == pytest.approx(989.4)
    assert bench.report.bf16_peak("Some GPU", 123.0) == 123.0


@pytest.mark.skipif(not HAVE_VAPOURSYNTH, reason="VapourSynth is not installed")
def test_a_plugin_that_fails_is_an_error_not_a_skip(tmp_path, bench):
    """The plugin backend raises when Upscale fails (here: a checkpoint that does not exist); the parent records
    an error for such a child, never a skip."""
    import vapoursynth as vs

    case = bench.cases.Case(16, 16, 2.0, batch=1, frames=1)
    job = {"checkpoint": str(tmp_path / "missing.safetensors")}
    frames = bench.cases.synth_frames(case.length, 16, 16)
    with pytest.raises(vs.Error, match="checkpoint"):
        bench.backends.plugin.run(job, bench.modes.ModeSpec("plugin", kind="plugin"), case, torch.device("cpu"), frames)
    assert bench.report.aggregate([{"error": "exit 1: vs.Error"}], 1, 1) == {"error": "exit 1: vs.Error"}


def test_bench_train_layouts_do_the_same_work(tmp_path):
    """The training-step A/B times the same step in both layouts: same start weights, same batch,
    and after it the weights of the two still agree; the JSON carries both timings and the ratio."""
    bt = _load_script("bench_train")
    assert bt.parse_case("48:3x2.5") == (48, 3.0, 2.5) and bt.parse_case("40:2") == (40, 2.0, 2.0)
    out = tmp_path / "step.json"
    report = bt.main(["--batch", "2", "--cases", "16:2,16:3x2.5", "--rounds", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert [c["out_size"] for c in report["cases"]] == [[32, 32], [40, 48]]
    for case in report["cases"]:
        assert set(case["best_s"]) == {"plain", "channels_last"} and min(case["best_s"].values()) > 0
        assert case["speedup_channels_last"] == pytest.approx(case["best_s"]["plain"] / case["best_s"]["channels_last"])

    setups = bt.make_setups("savsr-s", torch.device("cpu"), seed=0)
    lr_clip = torch.rand(2, 7, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(2))
    for net, opt in setups.values():
        bt.train_step(net, opt, lr_clip, target)
    plain, cl = (net.state_dict() for net, _ in setups.values())
    for name, value in plain.items():
        torch.testing.assert_close(cl[name].contiguous(), value, rtol=1e-4, atol=1e-5, msg=name)
