"""``miro-edge serve DIR --source ...``: the live loop on the workspace's current model."""
import sys
from pathlib import Path
from typing import Optional

import click


@click.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--source", default="synthetic", show_default=True,
              help="frame source: synthetic, npz (--uri FILE.npz), video, imu-csv, imu-socket")
@click.option("--uri", default=None, help="the source's file, device or host:port")
@click.option("--fps", type=float, default=None, help="pace the source at this rate (default: as fast as it reads)")
@click.option("--engine", default="auto", show_default=True, help="tensorrt, onnxruntime, torch or auto")
@click.option("--max-frames", type=click.IntRange(1, None), default=None)
@click.option("--duration", "duration_s", type=float, default=None, help="seconds to serve")
@click.option("--print-predictions", is_flag=True, help="print one line per frame: index, label, confidence")
@click.option("--predictions-out", type=click.Path(dir_okay=False), default=None,
              help="append one JSON line per prediction to this file (- for stdout)")
@click.option("--feedback-every", type=click.IntRange(0, None), default=0,
              help="send every N-th frame with its label (npz sources with y) to the workspace as feedback")
@click.option("--loop", "loop_source", is_flag=True, help="replay a file source from the start when it ends")
@click.option("--poll-every", type=click.IntRange(1, None), default=15, show_default=True,
              help="check the registry for a new current version every N frames")
def command(directory: str, source: str, uri: Optional[str], fps: Optional[float], engine: str,
            max_frames: Optional[int], duration_s: Optional[float], print_predictions: bool,
            predictions_out: Optional[str], feedback_every: int, loop_source: bool, poll_every: int) -> None:
    """Serve predictions in the user's labels, hot-swapping each newly published version."""
    from miro_edge.infer.live import LiveConfig, Prediction
    from miro_edge.workspace.serve import serve

    def show(pred: Prediction) -> None:
        click.echo(f"frame {pred.index:>6}  {str(pred.label):<12} {pred.confidence:.3f}  v{pred.version}")

    out = None
    if predictions_out == "-":
        out = sys.stdout
    elif predictions_out:
        out = open(predictions_out, "a")
    try:
        stats = serve(Path(directory), source, uri, fps, engine, max_frames, duration_s,
                      show if print_predictions else None, out, feedback_every,
                      LiveConfig(poll_every_frames=poll_every, poll_interval_s=0.5), loop_source=loop_source)
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    click.echo(f"served {stats.frames} frames at {stats.fps:.1f} fps: p50 {stats.latency_p50_ms:.2f} ms, p99 {stats.latency_p99_ms:.2f} ms, dropped {stats.dropped}, swaps {stats.swaps} ({stats.swap_failures} failed), "
               f"feedback sent {stats.feedback_sent}, version v{stats.version}",
               err=True)
