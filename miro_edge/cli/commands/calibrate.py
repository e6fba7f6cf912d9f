"""``miro-edge calibrate``: fit the energy model to windows measured by a real meter."""
from typing import Optional

import click


@click.command("calibrate")
@click.option("--windows", "windows_path", required=True, type=click.Path(dir_okay=False),
              help="JSON lines of measured windows (a run's results.jsonl on a device with a power "
                   "sensor, or any file of WindowResult records)")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="device profile to write (.json); use it with energy.profile in a config")
@click.option("--base", default=None, help="profile whose values fill coefficients the windows do not "
                                           "exercise (default: the detected one)")
@click.option("--name", default="calibrated", show_default=True, help="name of the fitted profile")
def command(windows_path: str, out_path: str, base: Optional[str], name: str) -> None:
    """Fit idle_w, j_per_sample_pass, j_per_gflop and j_per_byte (non-negative least squares)
    and save them as a device profile the calibrated energy model loads."""
    from miro_edge.energy.model import calibrate, save_profile
    from miro_edge.energy.window_records import read_windows
    from miro_edge.errors import InputError

    if not out_path.endswith(".json"):
        raise InputError("--out must name a .json file (the energy model loads profiles by that suffix), "
                         f"got {out_path}")
    windows = read_windows(windows_path)
    cal = calibrate(windows, base=base, name=name)
    p = cal.profile
    save_profile(p, out_path)
    sources = sorted({w.source for w in windows if w.measured})
    click.echo("fitted on {} measured windows (source {}), rmse {:.3f} J of {:.3f} J mean".format(
        cal.windows, ", ".join(sources), cal.rmse_j, cal.mean_energy_j))
    for key in ("idle_w", "j_per_sample_pass", "j_per_gflop", "j_per_byte"):
        click.echo("  {:<18} {:.6g}  ({})".format(key, getattr(p, key),
                                                  "fitted" if key in cal.fitted else "from base profile"))
    click.echo(f"wrote {out_path}  (estimates made with it are labelled estimated, source model:{p.name})")
