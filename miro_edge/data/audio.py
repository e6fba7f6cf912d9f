"""The ``audio`` adapter: labelled WAV clips -> log-mel samples.

Clips come from a folder with one sub-folder per label (``root/<label>/*.wav``) or from a CSV
file of ``path,label`` rows (paths relative to the CSV's folder; a ``path,label`` header is
skipped). Each clip is read, resampled, cut or padded to a fixed length and turned into log-mels
by the front end (:mod:`miro_edge.data.logmel`); all of it is set by the adapter's options
(``data_options`` in a run config), which are recorded with the source.
"""
import csv
import logging
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np

from miro_edge.config import from_dict
from miro_edge.data.sources import DATASETS, ArraySource, encode_labels
from miro_edge.data.wav import read_wav
from miro_edge.errors import ConfigError, InputError

logger = logging.getLogger(__name__)


def list_clips(path: Path) -> List[Tuple[Path, str]]:
    """``(clip, label)`` pairs of a label-per-folder tree or a ``path,label`` CSV, in a fixed order."""
    if path.is_dir():
        pairs = [(clip, folder.name) for folder in sorted(p for p in path.iterdir() if p.is_dir())
                 for clip in sorted(folder.glob("*.wav"))]
        if not pairs:
            raise InputError(f"audio folder {path} has no <label>/*.wav clips")
        return pairs
    if path.is_file():
        pairs = []
        with open(str(path), newline="") as handle:
            for number, row in enumerate(csv.reader(handle), 1):
                if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]):
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise InputError(f"{path}:{number}: expected a path,label row, got {row!r}")
                clip = Path(row[0].strip())
                pairs.append((clip if clip.is_absolute() else path.parent / clip, row[1].strip()))
        if not pairs:
            raise InputError(f"audio CSV {path} lists no clips")
        return pairs
    raise InputError(f"audio data {path} does not exist (a folder of <label>/*.wav or a path,label CSV); "
                     "for the keyword workload run `make keywords`")


@DATASETS.register("audio")
def audio(path: str, **front_end: Any) -> ArraySource:
    """Log-mel samples of labelled WAV clips, named after the folder (or CSV); ``front_end`` options are
    :class:`~miro_edge.data.logmel.FrontEndConfig` fields (sample_rate, clip_seconds, n_mels...)."""
    from miro_edge.data.logmel import FrontEndConfig, clip_to_wave, log_mels

    try:
        cfg = from_dict(FrontEndConfig, front_end, "data_options")
    except ConfigError as exc:
        raise InputError(f"audio adapter: {exc}") from None
    root = Path(path).expanduser()
    pairs = list_clips(root)
    waves, labels, rates = [], [], set()
    for clip, label in pairs:
        samples, rate = read_wav(clip)
        rates.add(rate)
        waves.append(clip_to_wave(samples, rate, cfg))
        labels.append(label)
    ids, names = encode_labels(np.asarray(labels))
    x = log_mels(waves, cfg)
    logger.info("audio %s: %d clips, %d labels, rates %s -> %d Hz, features %s", root, len(pairs), len(names),
                sorted(rates), cfg.sample_rate, cfg.feature_shape)
    return ArraySource(root.stem, x, ids, names, None,
                       {"origin": str(root), "front_end": cfg.to_dict(), "source_rates_hz": sorted(rates)})
