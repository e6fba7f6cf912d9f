"""Run a sweep: every point an independent seeded session, one JSON line per finished run.

Results are appended (flushed and fsynced per line) to ``<out>/runs.jsonl`` by the parent process
alone; a rerun skips the keys already there with status ``ok`` and retries failed ones, so a
sweep cut short resumes where it stopped and files from several machines concatenate into one.
Points run in worker processes (``jobs``), each with its own temporary run directory.
"""
import concurrent.futures
import contextlib
import copy
import json
import logging
import multiprocessing
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from miro_edge.config import from_dict, load_yaml, to_dict
from miro_edge.errors import ConfigError, InputError
from miro_edge.events import CycleEvent
from miro_edge.recorder import read_events, read_typed
from miro_edge.sweep.grid import Cell, Point, SweepConfig, plan, point_key, workload_key

logger = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run: the base session (as a dict), its hash, and every keyed point."""

    config: SweepConfig
    session: Dict[str, Any]
    workload: str
    points: List[Tuple[str, Point, Cell]]
    overhead_bytes: int
    bytes_per_sample: int

    def unique(self) -> Dict[str, Point]:
        out: Dict[str, Point] = {}
        for key, point, _ in self.points:
            out.setdefault(key, point)
        return out


@dataclass(frozen=True)
class SweepProgress:
    key: str
    record: Dict[str, Any]
    done: int
    total: int


def _base_session(cfg: SweepConfig, config_dir: Path) -> Dict[str, Any]:
    from miro_edge.session import SessionConfig

    path = Path(cfg.session)
    if not path.is_absolute():
        path = config_dir / path  # relative to the sweep config, wherever it is run from
    session = to_dict(load_yaml(path, SessionConfig))
    if cfg.epochs is not None:
        session["train"]["epochs"] = cfg.epochs
    if cfg.num_tasks is not None:
        session["data"]["num_tasks"] = cfg.num_tasks
    session["controller"]["enabled"] = False  # fixed configurations: the controller is what they evaluate
    if session["train"]["threads"] is None:
        session["train"]["threads"] = 1  # one process per core is how points run in parallel
    return session


def _workload_view(session: Dict[str, Any]) -> Dict[str, Any]:
    """The session without what a point sets (sizes, swap ratio, seeds, run directory)."""
    view = copy.deepcopy(session)
    for key in ("em_size", "sb_size"):
        view["memory"].pop(key, None)
    view["memory"]["swap"].pop("swap_ratio", None)
    view["train"].pop("seed", None)
    view["data"].pop("seed", None)
    view.pop("out_dir", None)
    return view


def make_plan(cfg: SweepConfig, config_dir: Path = Path(".")) -> SweepPlan:
    """Resolve the session config, measure the memory the budgets are counted in, key every point."""
    from miro_edge.controller.footprint import bytes_per_sample, measure_overhead_bytes
    from miro_edge.data.sources import load_source
    from miro_edge.model.architectures import create_model

    session = _base_session(cfg, config_dir)
    workload = workload_key(_workload_view(session))
    source = load_source(session["data"]["dataset"], **session["data_options"])
    shape = source.input_shape
    model = create_model(session["train"]["model"], shape, session["data"]["classes_per_task"],
                         session["train"]["width"])
    overhead = measure_overhead_bytes(model, shape, session["train"]["batch_size"], source.num_classes)
    points = [(point_key(workload, p), p, c) for p, c in plan(cfg, session["memory"]["swap"]["swap_ratio"])]
    return SweepPlan(cfg, session, workload, points, int(overhead), int(bytes_per_sample(shape)))


def point_session(session: Dict[str, Any], point: Point, out_dir: str) -> Dict[str, Any]:
    raw = copy.deepcopy(session)
    raw["memory"]["em_size"] = point.em_size
    raw["memory"]["sb_size"] = point.sb_size
    raw["memory"]["swap"]["swap_ratio"] = point.swap_ratio
    raw["train"]["seed"] = point.seed
    raw["data"]["seed"] = point.seed
    raw["out_dir"] = out_dir
    return raw


def run_point(session: Dict[str, Any], key: str, point: Point) -> Dict[str, Any]:
    """One sweep job (runs in a worker process): a whole session at a fixed configuration."""
    from miro_edge.session import SessionConfig, run_session

    t0 = time.time()
    record: Dict[str, Any] = {"key": key, "params": point.params()}
    try:
        with tempfile.TemporaryDirectory(prefix="miro-sweep-") as tmp:
            cfg = from_dict(SessionConfig, point_session(session, point, tmp))
            result = run_session(cfg, out_dir=tmp)
            source = next((e.energy_source for e in read_typed(Path(tmp) / "results.jsonl", CycleEvent)), None)
        em_before = [0] + [t.em_size for t in result.tasks[:-1]]  # EM during task t = EM after task t-1
        in_ram = [e + t.sb_size for e, t in zip(em_before, result.tasks)]
        record.update(status="ok", final_average_accuracy=result.final_average_accuracy,
                      average_incremental_accuracy=result.average_incremental_accuracy,
                      forgetting=result.forgetting, energy_j=result.energy_j, energy_label=result.energy_label,
                      energy_source=source, train_seconds=result.train_seconds, sample_passes=result.sample_passes,
                      swaps_done=sum(t.swaps_done for t in result.tasks),
                      mean_training_samples_in_ram=float(sum(in_ram)) / max(1, len(in_ram)),
                      tasks=len(result.tasks))
    except Exception as exc:  # one failed point must not sink the sweep: recorded, retried on rerun
        logger.warning("sweep point %s failed: %s", key, exc)
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=5))
    record["wall_s"] = time.time() - t0
    return record


def warm_up(session: Dict[str, Any]) -> None:
    """Spend a process's one-time costs (torch's lazy set-up, the first store and swap worker:
    seconds, so tens of joules in a time-based estimate) on a throw-away one-epoch task, so that
    no measured point carries them."""
    from miro_edge.session import SessionConfig, run_session

    raw = point_session(session, Point(8, 16, 1.0, 0), "")
    raw["train"]["epochs"] = 1
    raw["data"]["num_tasks"] = 2
    try:
        with tempfile.TemporaryDirectory(prefix="miro-sweep-warm-") as tmp:
            raw["out_dir"] = tmp
            run_session(from_dict(SessionConfig, raw), out_dir=tmp)
    except Exception as exc:  # the real points will report what is wrong
        logger.warning("sweep warm-up failed: %s", exc)


def read_runs(path: Path) -> Dict[str, Dict[str, Any]]:
    """The last record of every key in one or more runs files (later lines win)."""
    out: Dict[str, Dict[str, Any]] = {}
    if path.is_file():
        for record in read_events(path):
            if isinstance(record, dict) and "key" in record:
                out[str(record["key"])] = record
    return out


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a power cut mid-append) so the next record starts a line."""
    if not path.is_file():
        return
    with open(str(path), "rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        logger.warning("%s: dropping a torn last line of %d bytes", path, len(data) - keep)
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())


class _Appender:
    """The parent's single writer of ``runs.jsonl``: one fsynced line per finished run."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self._handle = open(str(path), "a")

    def append(self, record: Dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _write_plan(out: Path, p: SweepPlan) -> None:
    from miro_edge.utils.atomic import atomic_write_json

    cells = [{"key": k, "series": c.series, "budget_samples": c.budget_samples, "em_share": c.em_share,
              "swap_ratio": c.swap_ratio, "params": pt.params()} for k, pt, c in p.points]
    atomic_write_json(out / PLAN_FILE, {"format": 1, "workload": p.workload, "sweep": to_dict(p.config),
                                        "session": p.session, "overhead_bytes": p.overhead_bytes,
                                        "bytes_per_sample": p.bytes_per_sample, "cells": cells}, perms=0o644)


def run_sweep(cfg: SweepConfig, out_dir: str, jobs: int = 1, config_dir: Path = Path("."),
              on_result: Optional[Callable[[SweepProgress], None]] = None) -> SweepPlan:
    """Run every point not already done in ``out_dir`` (``jobs`` worker processes) and return the plan.

    ``plan.json`` (the grid, the session, the measured overhead) is written first; a sweep
    directory that holds another workload's plan is refused instead of mixed.
    """
    if jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    p = make_plan(cfg, config_dir)
    existing = out / PLAN_FILE
    if existing.is_file():
        try:
            old = json.loads(existing.read_text()).get("workload")
        except ValueError:
            old = None
        if old is not None and old != p.workload:
            raise ConfigError(f"{out} holds a sweep of another workload ({old}, this one is {p.workload}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_plan(out, p)
    done = {k for k, r in read_runs(out / RUNS_FILE).items() if r.get("status") == "ok"}
    todo = [(k, pt) for k, pt in p.unique().items() if k not in done]
    total = len(p.unique())
    logger.info("sweep %s: %d points, %d done, %d to run with %d job(s)", p.workload, total, len(done), len(todo), jobs)
    appender = _Appender(out / RUNS_FILE)
    finished = len(done)
    try:
        for key, record in _execute(p.session, todo, jobs):
            appender.append(record)
            finished += 1
            if on_result is not None:
                on_result(SweepProgress(key, record, finished, total))
    finally:
        appender.close()
    return p


def _execute(session: Dict[str, Any], todo: List[Tuple[str, Point]], jobs: int) -> Iterator[Tuple[str, Dict[str, Any]]]:
    if not todo:
        return
    if jobs == 1 or len(todo) <= 1:
        warm_up(session)
        for key, point in todo:
            yield key, run_point(session, key, point)
        return
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no forked torch threads
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=warm_up, initargs=(session,)))
        futures = {pool.submit(run_point, session, key, point): key for key, point in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def load_sweep(out_dir: str) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Any]]]:
    """The plan and the results of a sweep directory (for the report)."""
    out = Path(out_dir)
    if not (out / PLAN_FILE).is_file():
        raise InputError(f"{out} holds no sweep ({PLAN_FILE} missing); run `miro-edge sweep` first")
    try:
        plan_data = json.loads((out / PLAN_FILE).read_text())
    except ValueError as exc:
        raise InputError(f"{out / PLAN_FILE}: {exc}") from None
    return plan_data, read_runs(out / RUNS_FILE)

