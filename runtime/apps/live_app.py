"""Example on-device app: serve a workspace's model on a camera or an IMU stream, print predictions
in the user's labels, and send the user's corrections back as feedback for the next update cycle.

    python runtime/apps/live_app.py /var/lib/miro-edge/ws --source video --uri 0
    python runtime/apps/live_app.py /var/lib/miro-edge/ws --source imu-csv --uri imu.csv --fps 20

A thin client of the library (``miro_edge.workspace.serve``): the daemon (another process) learns
from the feedback when the device is idle and publishes a new version, which this loop hot-swaps.
Type a label and Enter while it runs to label the latest frame (a stand-in for the app's own UI).
"""
import argparse
import sys
import threading
from pathlib import Path
from typing import Any, List, Optional

from miro_edge.workspace.serve import FeedbackInbox, serve


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--source", default="video", help="video, imu-csv, imu-socket, npz, synthetic")
    parser.add_argument("--uri", default="0")
    parser.add_argument("--fps", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args(argv)
    latest: dict = {}

    def show(pred: Any) -> None:
        latest["pred"] = pred
        sys.stdout.write(f"frame {pred.index:6d}  {str(pred.label):<12} {pred.confidence:.2f}  v{pred.version}\n")

    def corrections(inbox: FeedbackInbox) -> None:
        for line in sys.stdin:  # the user's label for the frame on screen
            frame = latest.get("frame")
            if line.strip() and frame is not None:
                inbox(frame, line.strip())

    def keep(frame: Any) -> Any:
        latest["frame"] = frame
        return frame

    stats = serve(args.workspace, args.source, args.uri, args.fps, duration_s=args.seconds, on_prediction=show,
                  preprocess=keep, on_ready=lambda inbox: threading.Thread(target=corrections, args=(inbox,),
                                                                           daemon=True).start())
    sys.stdout.write(f"{stats.as_dict()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
