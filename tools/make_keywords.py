#!/usr/bin/env python3
"""Synthesize the keyword-spotting workload with espeak-ng: spoken command words in many voices,
rates and pitches, with a random start offset and added white noise, as ``<out>/<word>/<n>.wav``.

Generated once into a cache (default ``.cache/keywords``, not committed); a finished set is
marked by ``manifest.json`` and reused, a half-written one is regenerated. Needs the Debian
package ``espeak-ng`` (``make keywords`` installs it where it can). Deterministic for a seed:
the voice, rate, pitch, offset and noise of every clip come from it.

    python tools/make_keywords.py --out .cache/keywords --per-word 100
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from miro_edge.data.wav import read_wav, write_wav  # noqa: E402

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
          "en-029", "en-us-nyc")
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+croak")
FORMAT = 1


def synthesize(word: str, voice: str, rate_wpm: int, pitch: int, path: Path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(path), word],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def degrade(samples: np.ndarray, rate: int, rng: np.random.Generator, clip_seconds: float) -> np.ndarray:
    """Trim espeak's silence, place the word at a random offset in the clip, add noise at 5-30 dB SNR."""
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    word = samples[loud[0]:loud[-1] + 1] if len(loud) else samples
    length = int(rate * clip_seconds)
    word = word[:length]
    out = np.zeros(length, dtype=np.float32)
    start = int(rng.integers(0, max(1, length - len(word)) + 1)) if len(word) < length else 0
    out[start:start + len(word)] = word
    power = float(np.mean(word ** 2)) if len(word) else 1e-4
    snr_db = float(rng.uniform(5.0, 30.0))
    out += rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10.0)), length).astype(np.float32)
    return out * float(rng.uniform(0.3, 1.0)) / max(1e-6, float(np.max(np.abs(out))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=".cache/keywords", help="cache folder (one sub-folder per word)")
    p.add_argument("--per-word", type=int, default=100, help="clips per word")
    p.add_argument("--words", default=",".join(WORDS), help="comma-separated command words")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clip-seconds", type=float, default=1.0, help="length of every clip (the word fits in it)")
    p.add_argument("--force", action="store_true", help="regenerate even if the cache is complete")
    args = p.parse_args()
    if shutil.which("espeak-ng") is None:
        print("error: espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng, or `make keywords`)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    words = [w.strip() for w in args.words.split(",") if w.strip()]
    settings = {"format": FORMAT, "words": words, "per_word": args.per_word, "seed": args.seed,
                "clip_seconds": args.clip_seconds, "voices": list(VOICES), "variants": list(VARIANTS)}
    manifest = out / "manifest.json"
    if manifest.is_file() and not args.force:
        try:
            if json.loads(manifest.read_text()).get("settings") == settings:
                print(f"keywords already generated in {out} ({len(words)} words x {args.per_word} clips)")
                return 0
        except ValueError:
            pass
    if out.exists():
        shutil.rmtree(str(out))
    rng = np.random.default_rng(args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keywords-", dir=str(out.parent)))  # same file system as out
    try:
        raw = staging / "raw.wav"
        for word in words:
            (staging / word).mkdir()
            for i in range(args.per_word):
                voice = VOICES[int(rng.integers(len(VOICES)))] + VARIANTS[int(rng.integers(len(VARIANTS)))]
                synthesize(word, voice, int(rng.integers(110, 231)), int(rng.integers(15, 86)), raw)
                samples, rate = read_wav(raw)
                write_wav(staging / word / f"{i:04d}.wav", degrade(samples, rate, rng, args.clip_seconds), rate)
            print(f"  {word:<6} {args.per_word} clips", flush=True)
        raw.unlink()
        (staging / "manifest.json").write_text(json.dumps({"settings": settings}, indent=1) + "\n")
        os.replace(str(staging), str(out))
    finally:
        if staging.exists():
            shutil.rmtree(str(staging))
    print(f"wrote {out} ({len(words)} words x {args.per_word} clips, native espeak-ng rate; the adapter resamples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
