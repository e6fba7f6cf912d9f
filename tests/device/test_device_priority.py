"""The daemon's CPU yielding, in fresh interpreters (it changes the process it runs in)."""
import json
import os
import subprocess
import sys
import threading

import pytest

from miro_edge.config import from_dict
from miro_edge.device.priority import lower_this_thread
from miro_edge.errors import ConfigError
from miro_edge.workspace.config import DaemonConfig

PROBE = """
import json, os, sys, threading
from pathlib import Path
from miro_edge.device.priority import yield_cpu, yield_cpu_early
before = threading.Thread(target=threading.Event().wait, args=(30,), daemon=True)
before.start()
mode, arg = sys.argv[1], sys.argv[2]
applied = yield_cpu_early(Path(arg)) if mode == "yaml" else yield_cpu(int(arg), sys.argv[3])
policies = {int(t): os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")}
print(json.dumps({"applied": applied, "nice": os.nice(0), "idle": os.SCHED_IDLE, "policies": policies}))
"""

linux_sched = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE") or not os.path.isdir("/proc/self/task"),
                                 reason="SCHED_IDLE and /proc/self/task are Linux's")


def at_least(nice):
    """The niceness a child ends at: only ever raised (this test run may itself be niced)."""
    return max(nice, os.nice(0))


def probe(*args):
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@linux_sched
def test_idle_policy_moves_every_thread_to_sched_idle_and_raises_niceness():
    got = probe("args", 7, "idle")
    assert got["applied"] == f"nice {at_least(7)}, SCHED_IDLE" and got["nice"] == at_least(7)
    assert len(got["policies"]) >= 2  # the thread started before the call moved as well
    assert set(got["policies"].values()) == {got["idle"]}


@linux_sched
def test_nice_policy_leaves_the_scheduler_class_alone():
    got = probe("args", 3, "nice")
    assert got["applied"] == f"nice {at_least(3)}" and got["nice"] == at_least(3)
    assert got["idle"] not in got["policies"].values()


@linux_sched
def test_early_yield_reads_the_workspace_yaml_and_falls_back_to_defaults(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("daemon:\n  nice: 4\n  cpu_policy: nice\n")
    assert probe("yaml", good)["applied"] == f"nice {at_least(4)}"
    broken = tmp_path / "broken.yaml"
    broken.write_text("daemon: [nice: 4\n")  # malformed: the full config load reports it; here, defaults
    assert probe("yaml", broken)["applied"] == f"nice {at_least(10)}, SCHED_IDLE"
    assert probe("yaml", tmp_path / "missing.yaml")["applied"] == f"nice {at_least(10)}, SCHED_IDLE"


def test_cpu_policy_is_validated_naming_the_key():
    assert DaemonConfig().cpu_policy == "idle"
    with pytest.raises(ConfigError, match=r"^cpu_policy: must be one of idle, nice$"):
        DaemonConfig(cpu_policy="realtime")
    from miro_edge.workspace.config import WorkspaceConfig
    with pytest.raises(ConfigError, match=r"^daemon\.cpu_policy: "):
        from_dict(WorkspaceConfig, {"input_shape": [1, 8, 8], "daemon": {"cpu_policy": "fast"}})


@pytest.mark.skipif(not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"),
                    reason="per-thread niceness is Linux's")
def test_lower_this_thread_lowers_only_the_calling_thread():
    seen = {}

    def loader():
        seen["ok"] = lower_this_thread(5)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=loader)
    worker.start()
    worker.join()
    assert seen["ok"] and seen["nice"] == min(19, main_before + 5)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
