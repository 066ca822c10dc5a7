"""Configurations: defaults, named variants, dict round trip, validation, parameter counts,
and that every block the design names exists."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vssavsr.model import NAMED_CONFIGS, SAVSR, SAVSRConfig
from vssavsr.model.alignment import BidirectionalAlignment, PyramidFusionStage, RecurrentWindowUnit
from vssavsr.model.blocks import PFRB, RCAB, ResidualGroup, ScaleAdaptiveModule
from vssavsr.model.osconv import OSConv
from vssavsr.model.upsampler import ExpertMixture, LocalFilter, STAUpsampler


def n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_default_config_matches_published_hyper_parameters():
    cfg = SAVSRConfig()
    assert (cfg.channels, cfg.num_frames, cfg.sub_window, cfg.fusion_window) == (64, 7, 3, 5)
    assert (cfg.recurrent_blocks, cfg.fusion_blocks) == (4, 2)
    assert (cfg.residual_groups, cfg.rcab_per_group, cfg.ca_reduction) == (4, 8, 16)
    assert (cfg.num_kernels, cfg.num_experts) == (8, 4)
    assert NAMED_CONFIGS["savsr"] == cfg


def test_default_parameter_count_is_11_48_m_within_1_percent():
    # measured: 11,476,963 parameters (the paper: 11.48 M)
    count = n_params(SAVSR())
    assert abs(count - 11.48e6) / 11.48e6 < 0.01, count


def test_compact_config_keeps_every_block():
    cfg = NAMED_CONFIGS["savsr-s"]
    assert (cfg.channels, cfg.recurrent_blocks, cfg.fusion_blocks) == (24, 2, 2)
    assert (cfg.residual_groups, cfg.rcab_per_group, cfg.num_kernels, cfg.num_experts) == (4, 2, 8, 4)
    net = SAVSR.from_config("savsr-s")
    assert net.config == cfg
    assert 0.5e6 < n_params(net) < 2e6
    unit = net.alignment.forward_unit
    assert unit.blocks[0].refine is None and isinstance(unit.blocks[1].refine, OSConv)


def test_every_named_block_is_present_in_the_default_model():
    net = SAVSR()
    kinds = {type(m) for m in net.modules()}
    for kind in (OSConv, PFRB, RecurrentWindowUnit, BidirectionalAlignment, PyramidFusionStage,
                 RCAB, ResidualGroup, ScaleAdaptiveModule, STAUpsampler, LocalFilter, ExpertMixture):
        assert kind in kinds, kind.__name__
    osconvs = [m for m in net.modules() if isinstance(m, OSConv)]
    assert len(osconvs) == 2 * 3 + 2 + 4  # recurrent units, fusion PFRBs, scale-adaptive modules
    assert all(m.weight.shape == (8, 64, 64, 3, 3) for m in osconvs)
    assert net.alignment.backward_unit is not net.alignment.forward_unit
    assert len(net.reconstruction.groups) == 4 and len(net.reconstruction.groups[0].blocks) == 8


def test_from_config_accepts_name_dict_and_config(tiny_config):
    assert SAVSR.from_config(tiny_config).config == tiny_config
    assert SAVSR.from_config(tiny_config.to_dict()).config == tiny_config
    assert SAVSR.from_config(None).config == SAVSRConfig()
    with pytest.raises(ValueError, match="unknown SAVSR configuration 'nope'"):
        SAVSR.from_config("nope")


def test_config_dict_round_trip_through_json(tiny_config):
    for cfg in (tiny_config, *NAMED_CONFIGS.values()):
        data = json.loads(json.dumps(cfg.to_dict()))
        assert SAVSRConfig.from_dict(data) == cfg


def test_unknown_config_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown SAVSRConfig keys: colour, width"):
        SAVSRConfig.from_dict({"channels": 8, "width": 3, "colour": 1})


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"channels": 0}, "channels"),
        ({"channels": 8.5}, "channels"),
        ({"num_frames": 6}, "odd"),
        ({"num_frames": 5}, "pyramid fusion"),
        ({"sub_window": 1}, ">= 3"),
        ({"negative_slope": -0.1}, "negative_slope"),
    ],
)
def test_invalid_configs_raise(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(SAVSRConfig(), **changes)


def test_longer_windows_stack_fusion_stages():
    cfg = SAVSRConfig(num_frames=11, channels=8)
    assert cfg.num_positions == 9 and cfg.fusion_stages == 2
    assert len(SAVSR(cfg).fusion.stages) == 2


def test_configs_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        NAMED_CONFIGS["savsr-s"].channels = 3
