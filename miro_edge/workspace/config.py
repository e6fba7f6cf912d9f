"""A workspace's config (``workspace.yaml``): typed sections, validated, written with comments."""
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import yaml

from miro_edge.config import field, from_dict, load_yaml, require
from miro_edge.controller import ControllerConfig
from miro_edge.controller.idle import IdlePolicyConfig
from miro_edge.device.priority import CPU_POLICIES, DEFAULT_CPU_POLICY, DEFAULT_NICE
from miro_edge.energy.config import MeterConfig
from miro_edge.memory.config import MemoryConfig
from miro_edge.train.trainer import TrainConfig
from miro_edge.utils.atomic import atomic_write


@dataclass(frozen=True)
class UpdateConfig:
    """The update cycle: what starts one, the export and the canary gate."""

    min_new_samples: int = field(16, help="the daemon runs a cycle when this many samples wait (or a new label)")
    canary_max_drop: float = field(0.10, help="largest allowed drop of accuracy on the classes both old and new "
                                              "model know (held-out samples) before the candidate is rejected")
    keep_versions: int = field(5, help="registry versions to keep (current and its parent always kept)")
    engine: str = field("never", help="TensorRT engine at publish time: never, auto (where TensorRT exists), always")
    target: str = field("desktop", help="export target profile (desktop, xavier-nx, tx2)")
    publish: bool = field(True, help="export, canary and publish every cycle; false: learn only (a simulated "
                                     "session measuring training)")

    def __post_init__(self) -> None:
        require(self.min_new_samples >= 1, "min_new_samples", "must be >= 1")
        require(0.0 <= self.canary_max_drop <= 1.0, "canary_max_drop", "must be in [0, 1]")
        require(self.keep_versions >= 1, "keep_versions", "must be >= 1")
        require(self.engine in ("never", "auto", "always"), "engine", "must be never, auto or always")


@dataclass(frozen=True)
class DaemonConfig:
    """``miro-edge daemon``: when it may train (the idle policy) and how often it looks."""

    idle: IdlePolicyConfig = field(default_factory=lambda: IdlePolicyConfig(max_live_load=0.5),
                                   help="train only while the live load is low (and on power / in a time window)")
    poll_s: float = field(2.0, help="seconds between looks at the inbox and the live load")
    nice: int = field(DEFAULT_NICE, help="CPU niceness the daemon runs at (0-19): the live loop wins every contended core")
    cpu_policy: str = field(DEFAULT_CPU_POLICY, help="'idle': the daemon's threads run under SCHED_IDLE (Linux), so the kernel "
                                         "gives them only CPU time nothing else wants and a waking live loop preempts "
                                         "them at once; 'nice': niceness only (training still takes a share of a "
                                         "contended core)")

    frame_gap: bool = field(True, help="start each training batch in the gap between two live frames (the "
                                       "schedule the serving process publishes in live/load.json), so that a "
                                       "batch does not run while a frame is being inferred")

    def __post_init__(self) -> None:
        require(self.poll_s > 0, "poll_s", "must be > 0")
        require(0 <= self.nice <= 19, "nice", "must be in 0..19")
        require(self.cpu_policy in CPU_POLICIES, "cpu_policy", f"must be one of {', '.join(CPU_POLICIES)}")


@dataclass(frozen=True)
class WorkspaceConfig:
    """Everything a device's learning loop is configured by."""

    input_shape: Optional[Tuple[int, ...]] = field(None, help="per-sample shape, e.g. [1, 8, 8]; null: fixed by "
                                                              "the first ingest")
    memory: MemoryConfig = field(default_factory=MemoryConfig, help="EM, SB, swapping, store")
    train: TrainConfig = field(default_factory=TrainConfig, help="model and optimisation")
    controller: ControllerConfig = field(default_factory=ControllerConfig, help="the Miro controller")
    energy: MeterConfig = field(default_factory=MeterConfig, help="the power meter")
    update: UpdateConfig = field(default_factory=UpdateConfig, help="the update cycle")
    daemon: DaemonConfig = field(default_factory=DaemonConfig, help="the on-device daemon")

    def __post_init__(self) -> None:
        require(self.input_shape is None or (len(self.input_shape) >= 1 and all(d >= 1 for d in self.input_shape)),
                "input_shape", "must be a list of positive sizes or null")


def load_config(path: Path) -> WorkspaceConfig:
    return load_yaml(path, WorkspaceConfig)


def config_from_mapping(data: Any) -> WorkspaceConfig:
    return from_dict(WorkspaceConfig, data or {})


def _lines(obj: Any, indent: int) -> List[str]:
    """YAML lines of a config dataclass, each key preceded by its help text as a comment."""
    out: List[str] = []
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        text = f.metadata.get("help", "")
        if text:
            out.append(f"{pad}# {text}")
        if dataclasses.is_dataclass(value):
            out.append(f"{pad}{f.name}:")
            out.extend(_lines(value, indent + 1))
            continue
        if isinstance(value, tuple):
            value = list(value)
        dumped = yaml.safe_dump({f.name: value}, default_flow_style=True, sort_keys=False).strip()
        if dumped.startswith("{") and dumped.endswith("}"):
            dumped = dumped[1:-1]
        out.append(pad + dumped)
    return out


def write_config(path: Path, config: WorkspaceConfig) -> None:
    """Write ``config`` as commented YAML (atomically); loading it back gives the same config."""
    text = "# miro_edge workspace config. Edit, then the next `miro-edge update` / daemon cycle uses it.\n"
    text += "\n".join(_lines(config, 0)) + "\n"
    atomic_write(path, lambda f: f.write(text), "w", 0o644)
