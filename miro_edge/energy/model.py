"""The calibrated energy model, for devices without a power sensor. Its figures are ``estimated``.

    energy_j = idle_w * seconds + j_per_sample_pass * sample_passes + j_per_gflop * gflops
               + j_per_byte * bytes_read

``sample_passes`` (samples through forward+backward), ``gflops`` (their training compute, counted
once per model from its layers, :mod:`miro_edge.train.flops`) and ``bytes_read`` (from the store)
are reported by the trainer and the swap worker through :meth:`PowerMeter.add_work`. The
per-sample term stands for the work every sample costs whatever the network (copying it,
framework overhead per step); the per-GFLOP term makes a wider model or a larger input cost more. Coefficients
come from a device profile (rows of data below) or from :func:`calibrate`, a non-negative least
squares fit to windows measured by a real meter on the same device.

The built-in profiles are rough, order-of-magnitude placeholders, not measurements of ours:
idle power is in the range that INA3221 ``VDD_IN`` readings of idle dev kits commonly show
(about 2 W for TX2, 3-4 W for Xavier NX), and the per-sample and per-byte costs were chosen so
that a small CNN training at full speed lands inside the board's nvpmodel power budget (TX2
7.5/15 W modes, Xavier NX 10/15/20 W modes). The per-GFLOP costs assume the small kernels of
these models reach a few per cent of peak (TX2 GPU ~50 GFLOP/s at ~5 W above idle: 0.1 J/GFLOP;
Xavier NX about twice as efficient; an x86 core ~10 GFLOP/s at ~10 W: 1 J/GFLOP).
``generic_cpu`` stands for a small x86 box. Use
them to rank configurations relative to each other, not as absolute joules; calibrate when a
measured meter is available.
"""
import itertools
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from miro_edge.config import require
from miro_edge.energy.counters import CounterTracker
from miro_edge.energy.meter import METERS, PowerMeter
from miro_edge.energy.records import ESTIMATED, PowerSample, WindowResult
from miro_edge.errors import ConfigError, InputError
from miro_edge.utils.atomic import atomic_write_json
from miro_edge.utils.sysfs import read_optional, under

logger = logging.getLogger(__name__)

PROFILE_FORMAT = 1
DEVICE_MODEL_FILE = "/proc/device-tree/model"


@dataclass(frozen=True)
class EnergyProfile:
    """Coefficients of the energy model for one device (a row of data)."""

    name: str
    idle_w: float
    j_per_sample_pass: float
    j_per_byte: float
    match: Tuple[str, ...] = ()
    note: str = ""
    j_per_gflop: float = 0.0

    def __post_init__(self) -> None:
        require(bool(self.name), "name", "must not be empty")
        for key in COEFFICIENTS:
            value = getattr(self, key)
            require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                    f"energy.profile.{key}", f"must be a finite number >= 0, got {value!r}")

    def energy_j(self, seconds: float, sample_passes: float = 0, bytes_read: float = 0, flops: float = 0) -> float:
        return (self.idle_w * seconds + self.j_per_sample_pass * sample_passes
                + self.j_per_gflop * flops / 1e9 + self.j_per_byte * bytes_read)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["match"] = list(self.match)
        data["format"] = PROFILE_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnergyProfile":
        known = {"name", "idle_w", "j_per_sample_pass", "j_per_byte", "j_per_gflop", "match", "note", "format"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError("energy profile: unknown keys {}".format(", ".join(sorted(unknown))))
        try:
            return cls(name=str(data["name"]), idle_w=float(data["idle_w"]),
                       j_per_sample_pass=float(data["j_per_sample_pass"]), j_per_byte=float(data["j_per_byte"]),
                       match=tuple(data.get("match", ())), note=str(data.get("note", "")),
                       j_per_gflop=float(data.get("j_per_gflop", 0.0)))
        except KeyError as exc:
            raise ConfigError(f"energy profile: missing key {exc}") from None


COEFFICIENTS = ("idle_w", "j_per_sample_pass", "j_per_gflop", "j_per_byte")

PROFILES: Dict[str, EnergyProfile] = {p.name: p for p in (
    EnergyProfile("tx2", idle_w=2.0, j_per_sample_pass=0.01, j_per_byte=1e-8, j_per_gflop=0.1,
                  match=("TX2", "quill", "lightning"),
                  note="rough placeholder: idle VDD_IN of a TX2 dev kit ~2 W; 15 W MAXN budget"),
    EnergyProfile("xavier_nx", idle_w=3.5, j_per_sample_pass=0.006, j_per_byte=8e-9, j_per_gflop=0.05,
                  match=("Xavier NX", "p3668", "p3509"),
                  note="rough placeholder: idle VDD_IN of a Xavier NX dev kit 3-4 W; 10-20 W modes"),
    EnergyProfile("generic_cpu", idle_w=10.0, j_per_sample_pass=0.02, j_per_byte=5e-9, j_per_gflop=1.0,
                  note="rough placeholder for a small x86 box training on its CPU"),
)}

DEFAULT_PROFILE = "generic_cpu"


def detect_profile(root: str = "/") -> EnergyProfile:
    """The built-in profile whose ``match`` strings occur in the device-tree model, else generic."""
    model = read_optional(under(root, DEVICE_MODEL_FILE)) or ""
    for profile in PROFILES.values():
        if any(m.lower() in model.lower() for m in profile.match):
            return profile
    return PROFILES[DEFAULT_PROFILE]


def get_profile(profile: Union[None, str, EnergyProfile], root: str = "/") -> EnergyProfile:
    """A profile by name, a path to a saved profile (``.json``), an object, or detected (None)."""
    if profile is None:
        return detect_profile(root)
    if isinstance(profile, EnergyProfile):
        return profile
    if profile in PROFILES:
        return PROFILES[profile]
    if profile.endswith(".json") and Path(profile).is_file():
        return load_profile(profile)
    raise ConfigError("unknown energy profile {!r}; choose one of {} or a saved profile .json".format(
        profile, ", ".join(sorted(PROFILES))))


def save_profile(profile: EnergyProfile, path: Union[str, Path]) -> Path:
    """Write a (calibrated) profile atomically as JSON."""
    return atomic_write_json(path, profile.to_dict(), perms=0o644)


def load_profile(path: Union[str, Path]) -> EnergyProfile:
    import json
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read energy profile {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"energy profile {path}: expected a JSON object")
    if data.get("format", PROFILE_FORMAT) != PROFILE_FORMAT:
        raise ConfigError("energy profile {}: format {} is not supported (expected {})".format(
            path, data.get("format"), PROFILE_FORMAT))
    return EnergyProfile.from_dict(data)


@METERS.register("model")
class ModelMeter(PowerMeter):
    """Estimates energy from elapsed time and reported work; always labelled ``estimated``.

    It is a counter source with rails ``idle``, ``compute`` and ``io`` (they add up to the total).
    """

    name = "model"
    label = ESTIMATED
    fidelity = 0
    default_interval_s = 0.1

    def __init__(self, root: str = "/", profile: Union[None, str, EnergyProfile] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.profile = get_profile(profile, root)
        self._t_open: Optional[float] = None
        self._work_at_open: Tuple[int, int, float] = (0, 0, 0.0)
        self._tracker = CounterTracker()

    @property
    def source(self) -> str:
        return f"model:{self.profile.name}"

    def rails(self) -> List[str]:
        return ["compute", "idle", "io"]

    def _open_source(self) -> None:
        self._t_open = self.clock()
        self._work_at_open = self.work_done()
        self._tracker = CounterTracker()
        self.total_rail = None

    def _poll(self, t_s: float) -> PowerSample:
        assert self._t_open is not None
        passes, nbytes, flops = self.work_done()
        p = self.profile
        raw = {"idle": p.idle_w * (t_s - self._t_open),
               "compute": p.j_per_sample_pass * (passes - self._work_at_open[0])
               + p.j_per_gflop * (flops - self._work_at_open[2]) / 1e9,
               "io": p.j_per_byte * (nbytes - self._work_at_open[1])}
        return self._tracker.sample(t_s, raw, ("idle", "compute", "io"), self.latest())


@dataclass(frozen=True)
class Calibration:
    """A fitted profile and how well it explains the windows it was fitted on."""

    profile: EnergyProfile
    windows: int
    rmse_j: float
    mean_energy_j: float
    fitted: Tuple[str, ...]


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares by exhaustive active sets (exact; meant for <= 4 unknowns)."""
    n = a.shape[1]
    if n > 6:
        raise InputError(f"nnls here is for a handful of unknowns, got {n}")
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    scaled = a / norms
    best = np.zeros(n)
    best_res = float(np.sum(b ** 2))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            sub = scaled[:, cols]
            coef, _, _, _ = np.linalg.lstsq(sub, b, rcond=None)
            if np.any(coef < 0):
                continue
            res = float(np.sum((sub @ coef - b) ** 2))
            if res < best_res - 1e-12 * max(1.0, best_res):
                best_res = res
                best = np.zeros(n)
                best[list(cols)] = coef
    return best / norms


def calibrate(windows: Sequence[WindowResult], base: Union[None, str, EnergyProfile] = None,
              name: str = "calibrated") -> Calibration:
    """Fit ``idle_w``, ``j_per_sample_pass``, ``j_per_gflop`` and ``j_per_byte`` (all >= 0) to
    measured windows.

    Use windows with different mixes of idle time, training and store reads (an idle window,
    training at several model widths, store reads); a coefficient whose activity never occurs in
    the windows keeps the ``base`` profile's value (default: the detected profile). When every
    training window ran the same model, sample passes and FLOPs are proportional and cannot be
    told apart: the work is then charged per GFLOP only (``j_per_sample_pass`` 0), which still
    charges that model right and scales to others by their compute.
    """
    base_profile = get_profile(base)
    rows = [w for w in windows if w.complete]
    if not rows:
        raise InputError("calibrate needs complete measured windows; got none")
    estimated = [w.name for w in rows if not w.measured]
    if estimated:
        raise InputError("calibrate needs measured windows; these are estimates: {} (fitting the model "
                         "to its own output proves nothing)".format(", ".join(estimated)))
    a = np.array([[w.duration_s, w.sample_passes, w.flops / 1e9, w.bytes_read] for w in rows], dtype=np.float64)
    b = np.array([w.energy_j for w in rows], dtype=np.float64)
    keys = COEFFICIENTS
    informative = [i for i in range(len(keys)) if np.any(a[:, i] > 0)]
    values = [float(getattr(base_profile, k)) for k in keys]
    if 1 in informative and 2 in informative and _collinear(a[:, 1], a[:, 2]):
        logger.warning("calibrate: every window has the same FLOPs per sample pass; charging work per GFLOP only")
        informative.remove(1)
        values[1] = 0.0
    if len(rows) < len(informative):
        raise InputError("calibrate needs at least {} measured windows to fit {}; got {}".format(
            len(informative), ", ".join(keys[i] for i in informative), len(rows)))
    fixed = [i for i in range(len(keys)) if i not in informative]
    target = b - sum(a[:, i] * values[i] for i in fixed) if fixed else b
    coef = nnls(a[:, informative], target)
    for i, c in zip(informative, coef):
        values[i] = float(c)
    profile = EnergyProfile(name, values[0], values[1], values[3], match=(), j_per_gflop=values[2],
                            note="fitted on {} measured windows (source {})".format(
                                len(rows), ", ".join(sorted({w.source for w in rows}))))
    pred = a @ np.array(values)
    rmse = float(np.sqrt(np.mean((pred - b) ** 2)))
    logger.info("calibrated energy profile: %s (rmse %.3f J)", profile, rmse)
    return Calibration(profile, len(rows), rmse, float(np.mean(b)), tuple(keys[i] for i in informative))


def _collinear(x: np.ndarray, y: np.ndarray) -> bool:
    """True when ``y`` is (within 5 %) a fixed multiple of ``x`` over the rows where either is
    non-zero: one architecture whose head grew a little is still one FLOPs-per-pass figure."""
    mask = (x > 0) | (y > 0)
    if not np.all(x[mask] > 0):
        return False
    ratio = y[mask] / x[mask]
    return bool(np.ptp(ratio) <= 0.05 * max(abs(float(np.mean(ratio))), 1e-30))


def profiles() -> List[EnergyProfile]:
    return [PROFILES[k] for k in sorted(PROFILES)]

