"""Example live-path apps: an IMU activity recogniser and a camera digit reader with hot swap and feedback.

Run one with ``python -m miro_edge.runtime.live_app imu --registry /var/lib/miro/registry --csv imu.csv``
(or ``camera --uri 0``). Each serves the registry's current version, prints predictions, and
sends every ``--feedback-every``-th window to ``ingest`` with a label, standing in for a user's
correction; a real app passes its store's ``ingest`` (see docs/export.md).
"""
import argparse
import logging
import sys
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)


def _printing_ingest(x: np.ndarray, label: int) -> None:
    logger.info("feedback: sample %s labelled %d", x.shape, label)


def run_app(registry: str, source: str, uri: Optional[str], fps: Optional[float], seconds: Optional[float],
            feedback_every: int = 0, ingest: Optional[Callable[[np.ndarray, int], Any]] = None,
            engine: str = "auto") -> Any:
    """Serve ``registry`` on ``source``; every ``feedback_every``-th frame goes to ``ingest`` with its prediction."""
    from miro_edge.registry.model_registry import ModelRegistry
    from miro_edge.infer.base import EngineOptions, input_shape_of
    from miro_edge.infer.live import Prediction, registry_live_loop
    from miro_edge.infer.sources import make_source

    reg = ModelRegistry(registry)
    version = reg.current_version()
    if version is None:
        from miro_edge.errors import RegistryError
        raise RegistryError("registry {} has no current version; publish one first".format(registry))
    shape = input_shape_of(reg.artifacts(version))
    frames = make_source(source, uri, shape, fps)
    recent = []  # type: List[Tuple[np.ndarray, int]]

    def keep_frame(frame: np.ndarray) -> np.ndarray:
        recent[:] = [(frame, -1)]
        return frame

    loop_ref = []  # type: List[Any]

    def on_prediction(pred: Prediction) -> None:
        sys.stdout.write("frame {:6d}  class {:3d}  v{}  {:.2f} ms\n".format(
            pred.index, pred.label, pred.version, pred.latency_s * 1e3))
        if feedback_every and pred.index % feedback_every == 0 and recent:
            loop_ref[0].feedback(recent[0][0], pred.label)

    with registry_live_loop(registry, frames, engine, EngineOptions(intra_op_threads=1), None, on_prediction,
                            ingest or (_printing_ingest if feedback_every else None), keep_frame) as loop:
        loop_ref.append(loop)
        return loop.run(duration_s=seconds)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["imu", "camera"])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--csv", help="IMU CSV file (imu)")
    parser.add_argument("--uri", default="0", help="camera index or video file (camera)")
    parser.add_argument("--fps", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--feedback-every", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    source, uri = ("imu-csv", args.csv) if args.kind == "imu" else ("video", args.uri)
    stats = run_app(args.registry, source, uri, args.fps, args.seconds, args.feedback_every)
    sys.stdout.write("{}\n".format(stats.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
