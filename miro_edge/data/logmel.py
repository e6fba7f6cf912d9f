"""The audio front end: waveform -> log-mel spectrogram, in torch (``torch.stft`` and a mel
filterbank built here; torchaudio does not import beside our torch).

It runs as a **preprocessing step**, not inside the exported model: the store, EM and SB hold
log-mels (a quarter of the bytes of a 16 kHz waveform at the defaults), training never recomputes
them, and the exported network starts at the log-mels, so it parses on TensorRT generations
without an STFT layer (TX2's opset 13 has none). The live path runs the same ``LogMel`` module on
each clip before the engine (``miro_edge.infer.audio_source``), and the adapter runs it on the
training clips: one implementation, one config, so the two cannot drift apart.
"""
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from miro_edge.config import field, require

LAYOUTS = ("image", "sequence")


@dataclass(frozen=True)
class FrontEndConfig:
    """Waveform to features; every field travels in the data options of a run's config."""

    sample_rate: int = field(16000, help="clips are resampled to this rate (Hz)")
    clip_seconds: float = field(1.0, help="clips are cut or zero-padded to this length")
    n_fft: int = field(512, help="FFT size of the STFT")
    win_length: int = field(400, help="analysis window (samples; 25 ms at 16 kHz)")
    hop_length: int = field(160, help="hop between frames (samples; 10 ms at 16 kHz)")
    n_mels: int = field(40, help="mel bands")
    f_min: float = field(20.0, help="lowest mel band edge (Hz)")
    f_max: Optional[float] = field(None, help="highest band edge (Hz); default: half the sample rate")
    log_floor: float = field(1e-6, help="added to the mel power before the log")
    normalize: bool = field(True, help="standardise each clip's log-mels (mean 0, std 1): gain-invariant")
    layout: str = field("image", help="image: (1, n_mels, frames) for cnn2d; sequence: (n_mels, frames) for cnn1d")

    def __post_init__(self) -> None:
        require(self.sample_rate > 0, "sample_rate", "must be > 0")
        require(self.clip_seconds > 0, "clip_seconds", "must be > 0")
        require(0 < self.win_length <= self.n_fft, "win_length", "must be in 1..n_fft")
        require(self.hop_length > 0, "hop_length", "must be > 0")
        require(self.n_mels >= 1, "n_mels", "must be >= 1")
        top = self.f_max if self.f_max is not None else self.sample_rate / 2.0
        require(0 <= self.f_min < top <= self.sample_rate / 2.0, "f_min/f_max",
                "need 0 <= f_min < f_max <= sample_rate / 2")
        require(self.log_floor > 0, "log_floor", "must be > 0")
        require(self.layout in LAYOUTS, "layout", "must be one of {}".format(", ".join(LAYOUTS)))

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def frames(self) -> int:
        return 1 + self.clip_samples // self.hop_length

    @property
    def feature_shape(self) -> Tuple[int, ...]:
        return (1, self.n_mels, self.frames) if self.layout == "image" else (self.n_mels, self.frames)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def hz_to_mel(f: Union[float, np.ndarray]) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, equally spaced on the HTK mel scale, peak 1."""
    bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


class LogMel(nn.Module):
    """(batch, samples) waveforms -> log-mel features shaped ``(batch,) + cfg.feature_shape``."""

    def __init__(self, cfg: FrontEndConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f_max = cfg.f_max if cfg.f_max is not None else cfg.sample_rate / 2.0
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True))
        self.register_buffer("filters", torch.from_numpy(
            mel_filterbank(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.f_min, f_max)))

    window: torch.Tensor
    filters: torch.Tensor

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, n_fft=self.cfg.n_fft, hop_length=self.cfg.hop_length,
                          win_length=self.cfg.win_length, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                   # (B, n_fft/2+1, frames)
        mel = torch.matmul(self.filters, power)                    # (B, n_mels, frames)
        feats = torch.log(mel + self.cfg.log_floor)
        if self.cfg.normalize:
            mean = feats.mean(dim=(1, 2), keepdim=True)
            std = feats.std(dim=(1, 2), keepdim=True)
            feats = (feats - mean) / (std + 1e-5)
        return feats.unsqueeze(1) if self.cfg.layout == "image" else feats


def clip_to_wave(samples: np.ndarray, rate: int, cfg: FrontEndConfig) -> np.ndarray:
    """Resample to the front end's rate and cut or pad to its clip length."""
    from miro_edge.data.wav import fit_length, resample
    return fit_length(resample(samples, rate, cfg.sample_rate), cfg.clip_samples)


@torch.no_grad()
def log_mels(waves: Sequence[np.ndarray], cfg: FrontEndConfig, batch_size: int = 256) -> np.ndarray:
    """Features of fixed-length waveforms (each ``cfg.clip_samples`` long), as float32."""
    front = LogMel(cfg)
    out = []
    for start in range(0, len(waves), batch_size):
        batch = torch.from_numpy(np.stack(waves[start:start + batch_size]).astype(np.float32))
        out.append(front(batch).numpy())
    if not out:
        return np.zeros((0,) + cfg.feature_shape, dtype=np.float32)
    return np.concatenate(out).astype(np.float32)

