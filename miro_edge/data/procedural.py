"""Procedurally generated workloads: data the code makes from a seed, nothing read or
downloaded. They exist because the bundled sets saturate (almost any replay set-up reaches
0.97-0.99 on them), so they cannot show whether replay size, and a controller choosing it, matter.

Both are *multi-modal*: each class is a union of several sub-prototypes ("modes") built from
parts that other classes share. A small EM holds a few modes of each old class and forgets the
rest; only a large EM (or all data) keeps every mode, so accuracy keeps growing with samples per
class instead of saturating at a handful.

- ``glyphs``: 1 x 12 x 12 images, strokes on a canvas (the hard workload of the benchmarks).
- ``chirps``: 3 x 64 multichannel series, sums of tones and chirps (the set-aside workload,
  benchmarked but never used to tune anything).
"""
from typing import Tuple

import numpy as np

from miro_edge.data.sources import DATASETS, ArraySource
from miro_edge.errors import InputError


def _check(name: str, classes: int, per_class: int, modes: int) -> None:
    if classes < 2 or per_class < 4 or modes < 1:
        raise InputError(f"dataset {name}: need classes >= 2, per_class >= 4 and modes >= 1, got {classes}, {per_class}, {modes}")


def _stroke(size: int, rng: np.random.Generator) -> np.ndarray:
    """One anti-aliased line segment with random end points and width on a size x size canvas."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    p, q = rng.uniform(1, size - 2, 2), rng.uniform(1, size - 2, 2)
    d = q - p
    t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0.0, 1.0)
    dist = np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))
    return np.clip(1.5 - dist / rng.uniform(0.6, 1.1), 0.0, 1.0)


@DATASETS.register("glyphs")
def glyphs(classes: int = 10, per_class: int = 200, modes: int = 8, parts: int = 0, strokes_per_glyph: int = 3,
           noise: float = 0.1, seed: int = 1234) -> ArraySource:
    """``classes`` x ``per_class`` images of 1 x 12 x 12. Each class has ``modes`` glyphs of
    ``strokes_per_glyph`` strokes, drawn from a vocabulary of ``parts`` strokes that classes share
    (``parts`` 0: every glyph draws its own strokes); a sample is one of its class's
    glyphs shifted by up to one pixel, with each stroke's intensity jittered, one stroke sometimes
    missing, and Gaussian noise. Same arguments, same data."""
    _check("glyphs", classes, per_class, modes)
    size = 12
    rng = np.random.default_rng(seed)
    if parts:
        vocab = np.stack([_stroke(size, rng) for _ in range(parts)])
        glyph_parts = np.stack([[rng.choice(parts, size=strokes_per_glyph, replace=False) for _ in range(modes)]
                                for _ in range(classes)])  # (classes, modes, strokes)
    else:
        total = classes * modes * strokes_per_glyph
        vocab = np.stack([_stroke(size, rng) for _ in range(total)])
        glyph_parts = np.arange(total).reshape(classes, modes, strokes_per_glyph)
    n = classes * per_class
    y = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    mode = rng.integers(0, modes, size=n)
    chosen = glyph_parts[y, mode]  # (n, strokes)
    weight = rng.uniform(0.6, 1.2, size=chosen.shape).astype(np.float32)
    drop = rng.random(n) < 0.3
    weight[drop, rng.integers(0, strokes_per_glyph, size=int(drop.sum()))] = 0.0
    x = np.einsum("ns,nshw->nhw", weight, vocab[chosen])
    shifts = rng.integers(-1, 2, size=(n, 2))
    for i, (dy, dx) in enumerate(shifts):
        x[i] = np.roll(x[i], (int(dy), int(dx)), axis=(0, 1))
    x = np.clip(x, 0.0, 1.5) + noise * rng.standard_normal(x.shape).astype(np.float32)
    return ArraySource("glyphs", x[:, None].astype(np.float32), y, tuple(f"glyph{c}" for c in range(classes)),
                       None, {"origin": "miro_edge.data.procedural.glyphs", "seed": seed, "modes": modes})


def _tone(length: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A random tone or chirp (start and end frequency in cycles per window) and its phase law."""
    t = np.linspace(0.0, 1.0, length, dtype=np.float32)
    f0, f1 = rng.uniform(1.0, 12.0, 2)
    return t, (2 * np.pi * (f0 * t + 0.5 * (f1 - f0) * t * t)).astype(np.float32)


@DATASETS.register("chirps")
def chirps(classes: int = 8, per_class: int = 200, modes: int = 6, parts: int = 16, channels: int = 3,
           length: int = 64, noise: float = 0.3, seed: int = 4321) -> ArraySource:
    """``classes`` x ``per_class`` series of ``channels`` x ``length``. A shared vocabulary of
    ``parts`` tones/chirps; each class has ``modes`` patterns, each placing two parts on random
    channels with random gains; a sample is one pattern with a random phase, time shift and
    amplitude, plus Gaussian noise. Same arguments, same data."""
    _check("chirps", classes, per_class, modes)
    rng = np.random.default_rng(seed)
    laws = np.stack([_tone(length, rng)[1] for _ in range(parts)])  # (parts, length)
    pattern_parts = rng.integers(0, parts, size=(classes, modes, 2))
    pattern_gain = rng.uniform(-1.0, 1.0, size=(classes, modes, 2, channels)).astype(np.float32)
    n = classes * per_class
    y = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    mode = rng.integers(0, modes, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 2, 1)).astype(np.float32)
    waves = np.sin(laws[pattern_parts[y, mode]] + phase)  # (n, 2, length)
    x = np.einsum("nkc,nkl->ncl", pattern_gain[y, mode], waves) * rng.uniform(0.7, 1.3, size=(n, 1, 1))
    shifts = rng.integers(-4, 5, size=n)
    for i, s in enumerate(shifts):
        x[i] = np.roll(x[i], int(s), axis=1)
    x = x + noise * rng.standard_normal(x.shape)
    return ArraySource("chirps", x.astype(np.float32), y, tuple(f"chirp{c}" for c in range(classes)),
                       None, {"origin": "miro_edge.data.procedural.chirps", "seed": seed, "modes": modes})
