"""Auto-detection picks the best source present; on a bare machine, the estimated model."""
import pytest
from energy_fakes import chmod_x, make_tx2_tree, write

from miro_edge.energy import (
    ESTIMATED,
    MEASURED,
    MeterConfig,
    create_meter,
    meter_from_config,
    meter_names,
    open_meter,
    probe_all,
)
from miro_edge.energy.ina3221 import Ina3221Meter
from miro_edge.energy.model import ModelMeter
from miro_edge.errors import ConfigError


def test_order_is_by_fidelity():
    assert meter_names() == ["ina3221", "jtop", "tegrastats", "nvml", "rapl", "model"]


def test_bare_machine_gets_estimated_model(empty_root):
    probes = probe_all(empty_root)
    assert [p.name for p in probes if p.available] == ["model"]
    assert all(p.reason for p in probes if not p.available)
    with open_meter(root=empty_root) as meter:
        assert isinstance(meter, ModelMeter)
        assert meter.label == ESTIMATED
        assert meter.source == "model:generic_cpu"


def test_jetson_tree_gets_ina3221(tmp_path):
    make_tx2_tree(tmp_path, {"VDD_IN": 4000})
    write(tmp_path / "proc/device-tree/model", "NVIDIA Jetson TX2 Developer Kit")
    meter = create_meter(root=str(tmp_path))
    assert isinstance(meter, Ina3221Meter) and meter.label == MEASURED


def test_tegrastats_binary_beats_rapl_and_model(tmp_path):
    exe = write(tmp_path / "usr/bin/tegrastats", "#!/bin/sh\n")
    chmod_x(exe)
    assert [p.name for p in probe_all(str(tmp_path)) if p.available] == ["tegrastats", "model"]


def test_named_source_and_options(empty_root):
    meter = create_meter("model", root=empty_root, interval_s=0.5, options={"model": {"profile": "tx2"}})
    assert meter.source == "model:tx2" and meter.interval_s == 0.5
    with pytest.raises(ConfigError, match="unknown power meter"):
        create_meter("ina3222")


def test_config_section(empty_root):
    cfg = MeterConfig(source="model", interval_ms=250, profile="xavier_nx", sysfs_root=empty_root)
    meter = meter_from_config(cfg)
    assert meter.source == "model:xavier_nx" and meter.interval_s == 0.25
    with pytest.raises(ConfigError, match="source"):
        MeterConfig(source="battery")
    with pytest.raises(ConfigError, match="interval_ms"):
        MeterConfig(interval_ms=0)
