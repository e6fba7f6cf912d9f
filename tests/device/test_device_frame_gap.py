"""Frame-gap timing: the schedule a paced live loop publishes, and when background work may start."""
import json
import time

import pytest

from miro_edge.device.frame_gap import FrameGap, FrameSchedule
from miro_edge.device.load import LoadFile
from miro_edge.infer.live import LoadMeter
from miro_edge.workspace.control import BatchControl

# 30 fps, frames due at 100.0 + k/30, each busy for 4 ms; margin 1 ms -> window [due, due + 5 ms]
S = FrameSchedule(period_s=1 / 30, last_due_s=100.0, frame_s=0.004)
P = 1 / 30


@pytest.mark.parametrize("phase_ms, need_ms, wait_ms", [
    (2.0, 5.0, 3.0),        # inside a frame's window: wait for its end
    (5.0, 5.0, 0.0),        # just after the window, the batch fits before the next frame
    (25.0, 5.0, 0.0),       # ends at 30 ms: still before the next frame (33.3 ms - 1 ms margin)
    (30.0, 5.0, 8.33),      # would run into the next frame: start after that frame's window
    (10.0, 40.0, 0.0),      # longer than any gap: start at once (only its tail overlaps)
    (1.0, 40.0, 4.0),       # ... but never inside a frame's window
])
def test_wait_until_the_batch_fits_between_two_frames(phase_ms, need_ms, wait_ms):
    for k in (0, 7, 1000):  # any frame of the schedule, not only the published one
        now = S.last_due_s + k * P + phase_ms / 1e3
        assert S.wait_s(now, need_ms / 1e3) * 1e3 == pytest.approx(wait_ms, abs=0.01)


def test_started_work_never_overlaps_a_frame_window_when_it_fits():
    for i in range(300):
        now = 100.0 + i * 0.000777
        start = now + S.wait_s(now, 0.012)
        phase = (start - S.last_due_s) % P
        assert 0.005 - 1e-9 <= phase and phase + 0.012 <= P - 0.001 + 1e-9


class Reader:
    def __init__(self, schedule):
        self.schedule_value, self.reads = schedule, 0

    def schedule(self):
        self.reads += 1
        return self.schedule_value


def test_frame_gap_sleeps_counts_and_rereads_the_schedule_at_most_every_refresh():
    clock = [100.0 + P + 0.002]  # 2 ms into a frame
    slept = []
    gap = FrameGap(Reader(S), clock=lambda: clock[0], sleep=slept.append, refresh_s=0.5)
    assert gap.wait(0.005) == pytest.approx(0.003)
    assert gap.wait(0.005) == pytest.approx(0.003) and gap.reader.reads == 1
    clock[0] += 0.6
    gap.wait(0.005)
    assert gap.reader.reads == 2 and gap.waits == len(slept) and gap.waited_s == pytest.approx(sum(slept))


def test_no_schedule_means_no_wait():
    gap = FrameGap(Reader(None), sleep=lambda s: pytest.fail("slept without a schedule"))
    assert gap.wait(1.0) == 0.0 and gap.waits == 0


def test_a_paced_loop_publishes_its_schedule_and_a_reader_gets_it_back(tmp_path):
    load = LoadFile(tmp_path / "load.json", every_s=0.0)
    meter = LoadMeter(load)
    due = time.perf_counter()
    for k in range(10):
        meter.frame(0.003, P, due + k * P)
    got = load.schedule()
    assert got is not None and got.period_s == pytest.approx(P)
    assert got.frame_s == pytest.approx(0.003)
    assert got.last_due_s == pytest.approx(due + 9 * P + (time.monotonic() - time.perf_counter()), abs=1e-3)
    meter.frame(0.003, None)  # an unpaced source: no schedule to time work around
    assert load.schedule() is None
    data = json.loads((tmp_path / "load.json").read_text())
    data["time"] -= 60  # a server that stopped writing: stale, no schedule
    (tmp_path / "load.json").write_text(json.dumps(data))
    assert load.schedule() is None


class Gap:
    def __init__(self):
        self.needs = []

    def wait(self, need_s):
        self.needs.append(need_s)
        return 0.0


def test_batch_control_asks_the_gap_for_the_recent_batches_p90():
    clock = [0.0]
    gap = Gap()
    control = BatchControl(None, gap=gap, clock=lambda: clock[0])

    class Ctx:
        stopped = False

    for step, length in enumerate([0.010] * 9 + [0.100]):
        control.before_batch(Ctx, 0, step)
        clock[0] += length
        control.after_batch(Ctx, None)
    control.before_batch(Ctx, 0, 10)
    assert gap.needs[0] == 0.0  # nothing measured yet
    assert gap.needs[5] == pytest.approx(0.010)
    assert 0.010 < gap.needs[-1] < 0.100  # one slow batch raises the estimate, the p90 does not jump to it
