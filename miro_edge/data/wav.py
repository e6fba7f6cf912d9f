"""WAV clips in and out (stdlib ``wave``: integer PCM, any rate, any channel count) and the two
waveform steps the audio front end needs before features: resampling and a fixed length.

Errors name the file, so one bad clip in a folder of thousands is found at once.
"""
import wave
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from miro_edge.errors import InputError

_PCM_DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32}


def read_wav(path: Union[str, Path]) -> Tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1) and the sample rate; channels are averaged."""
    try:
        with wave.open(str(path), "rb") as clip:
            channels, width, rate = clip.getnchannels(), clip.getsampwidth(), clip.getframerate()
            frames = clip.getnframes()
            raw = clip.readframes(frames)
    except (wave.Error, EOFError, OSError) as exc:
        raise InputError(f"cannot read WAV clip {path}: {exc} (expected integer PCM .wav)") from None
    if frames == 0 or not raw:
        raise InputError(f"WAV clip {path} holds no samples")
    if width == 3:  # 24-bit little-endian: widen to int32
        b = np.frombuffer(raw, dtype=np.uint8)
        b = b[: len(b) - len(b) % 3].reshape(-1, 3)
        ints = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width in _PCM_DTYPES:
        ints = np.frombuffer(raw, dtype=_PCM_DTYPES[width])
        if width == 1:
            data = (ints.astype(np.float32) - 128.0) / 128.0
        else:
            data = ints.astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise InputError(f"WAV clip {path}: unsupported sample width of {width} bytes")
    usable = len(data) - len(data) % channels
    if usable == 0:
        raise InputError(f"WAV clip {path} is truncated (less than one frame of {channels} channels)")
    mono = data[:usable].reshape(-1, channels).mean(axis=1)
    return mono.astype(np.float32), int(rate)


def write_wav(path: Union[str, Path], samples: np.ndarray, rate: int) -> None:
    """Write mono float samples as 16-bit PCM (clipped to [-1, 1])."""
    ints = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0 - 1.0 / 32768) * 32768.0
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(int(rate))
        clip.writeframes(np.round(ints).astype("<i2").tobytes())


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling through the spectrum (the clip is taken as one period): content
    above the lower Nyquist frequency is dropped, nothing is aliased."""
    if rate_in <= 0 or rate_out <= 0:
        raise InputError(f"sample rates must be > 0, got {rate_in} -> {rate_out}")
    x = np.asarray(samples, dtype=np.float64)
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float32)
    n_out = max(1, int(round(len(x) * float(rate_out) / rate_in)))
    spectrum = np.fft.rfft(x)
    keep = min(len(spectrum), n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    out_spec[:keep] = spectrum[:keep]
    if n_out % 2 == 0 and keep == n_out // 2 + 1 and n_out < len(x):
        out_spec[-1] = out_spec[-1].real  # the new Nyquist bin of an even length is real
    y = np.fft.irfft(out_spec, n=n_out) * (float(n_out) / len(x))
    return y.astype(np.float32)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Exactly ``length`` samples: longer clips keep their start, shorter ones are zero-padded."""
    x = np.asarray(samples, dtype=np.float32)
    if len(x) >= length:
        return x[:length]
    return np.concatenate([x, np.zeros(length - len(x), dtype=np.float32)])
