"""``miro-edge live``: run the live loop on a source with hot swap; print fps, latency, drops and swaps."""
from typing import Optional

import click

SOURCE_NAMES = ["synthetic", "video", "imu-csv", "imu-socket", "wav"]


@click.command(help="Serve the registry's current version on a source; new versions published while it runs "
                    "are hot-swapped in. Sources: synthetic (--uri N frames), video (--uri camera index or "
                    "file; extra 'video'), imu-csv (--uri FILE), imu-socket (--uri HOST:PORT), wav (--uri "
                    "CLIP|FOLDER|CSV[?front-end options of the run, e.g. n_mels=32&hop_length=320&layout=sequence]).")
@click.option("--registry", "registry_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="registry directory")
@click.option("--source", default="synthetic", show_default=True, type=click.Choice(SOURCE_NAMES))
@click.option("--uri", default=None, help="source location (see above)")
@click.option("--fps", type=click.FloatRange(0.1, None), default=None,
              help="pace the source at this rate and count dropped frames  [default: 30 for synthetic, "
                   "unpaced otherwise]")
@click.option("--seconds", type=click.FloatRange(0.1, None), default=None, help="stop after this long")
@click.option("--frames", type=click.IntRange(1, None), default=None, help="stop after this many frames")
@click.option("--engine", default="auto", show_default=True,
              type=click.Choice(["auto", "tensorrt", "onnxruntime", "torch"]))
@click.option("--threads", type=click.IntRange(0, None), default=1, show_default=True,
              help="intra-op CPU threads per inference (1 leaves a core for loading new versions)")
@click.option("--fp16", is_flag=True, help="FP16 engines where supported")
def command(registry_dir: str, source: str, uri: Optional[str], fps: Optional[float], seconds: Optional[float],
            frames: Optional[int], engine: str, threads: int, fp16: bool) -> None:
    from miro_edge.infer.base import EngineOptions
    from miro_edge.infer.live import run_live

    if seconds is None and frames is None and source == "synthetic" and not uri:
        seconds = 10.0
    stats = run_live(registry_dir, source, uri, fps, seconds, frames, engine,
                     EngineOptions(intra_op_threads=threads, fp16=fp16))
    click.echo(f"frames {stats.frames} in {stats.duration_s:.1f} s ({stats.fps:.1f} fps), version {stats.version}")
    click.echo(f"latency p50 {stats.latency_p50_ms:.2f} ms, p99 {stats.latency_p99_ms:.2f} ms, max {stats.latency_max_ms:.2f} ms")
    click.echo(f"dropped {stats.dropped} (queue {stats.dropped_queue}, late {stats.late}), swaps {stats.swaps} (failed {stats.swap_failures})")
