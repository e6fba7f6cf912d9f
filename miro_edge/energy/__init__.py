"""Power and resource meters.

``open_meter()`` picks the best power source on this device (INA3221 sysfs, jtop, tegrastats,
NVML, RAPL, else the calibrated model, labelled ``estimated``) and starts its sampler::

    from miro_edge.energy import open_meter

    with open_meter() as meter:
        with meter.window("trial-3") as w:
            train()                       # the trainer calls meter.add_work(sample_passes=...)
    r = w.result                          # energy_j, mean_w, peak_w, rails, source, label

Importing this package loads no optional dependency (jtop and pynvml load when their meter opens).
"""
# Backends register themselves on import (one module each).
from miro_edge.energy import ina3221, jtop_meter, model, nvml, rapl, tegrastats  # noqa: F401
from miro_edge.energy.config import MeterConfig, meter_from_config
from miro_edge.energy.detect import AUTO, Probe, create_meter, meter_names, open_meter, probe_all
from miro_edge.energy.integrate import Integrator, integrate
from miro_edge.energy.measure import CommandEnergy, measure_command
from miro_edge.energy.meter import METERS, PowerMeter, watch
from miro_edge.energy.model import PROFILES, Calibration, EnergyProfile, calibrate, load_profile, save_profile
from miro_edge.energy.records import (
                                      ESTIMATED,
                                      MEASURED,
                                      Figure,
                                      MeterStateError,
                                      MeterUnavailableError,
                                      PowerSample,
                                      RailEnergy,
                                      SensorLostError,
                                      WindowResult,
)
from miro_edge.energy.window import Window

__all__ = [
    "AUTO", "ESTIMATED", "MEASURED", "METERS", "PROFILES", "Calibration", "CommandEnergy", "EnergyProfile",
    "Figure", "Integrator", "MeterConfig", "MeterStateError", "MeterUnavailableError",
    "PowerMeter", "PowerSample", "Probe", "RailEnergy",
    "SensorLostError", "Window", "WindowResult", "calibrate", "create_meter", "integrate", "load_profile",
    "measure_command", "meter_from_config", "meter_names", "open_meter", "probe_all", "save_profile", "watch",
]
