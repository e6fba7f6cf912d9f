"""The live path's audio source: WAV clips through the same front end the training data went
through (:mod:`miro_edge.data.logmel`), so the engine sees the features the model learnt on.

``--source wav --uri PATH[?option=value&...]``: ``PATH`` is one ``.wav`` file, a folder of them
(recursively, in sorted order) or a ``path,label`` CSV; the options are the front end's
(``sample_rate``, ``hop_length``, ``n_mels``, ``layout``...) and must be those of the run that
trained the model. A shape mismatch with the model is an error that says so.
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from miro_edge.config import from_dict
from miro_edge.data.logmel import FrontEndConfig, LogMel, clip_to_wave
from miro_edge.data.wav import read_wav
from miro_edge.errors import ConfigError, InputError
from miro_edge.infer.sources import SOURCES, FrameSource


def parse_uri(uri: str) -> Tuple[str, Dict[str, Any]]:
    """``path?k=v&k=v`` -> path and typed front-end options (numbers and true/false parsed)."""
    path, _, query = uri.partition("?")
    options: Dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"wav source option {part!r} must be key=value")
        options[key] = _value(value)
    return path, options


def _value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@SOURCES.register("wav")
class WavClipSource(FrameSource):
    """One log-mel frame per WAV clip, read on demand (``fps`` None) or paced."""

    def __init__(self, clips: Sequence[Path], front_end: FrontEndConfig, fps: Optional[float] = None) -> None:
        import torch
        self.clips = list(clips)
        self.cfg = front_end
        self.fps = fps
        self._front = LogMel(front_end)
        self._torch = torch
        self._next = 0

    @classmethod
    def from_uri(cls, uri: Optional[str], input_shape: Sequence[int], fps: Optional[float]) -> "WavClipSource":
        if not uri:
            raise InputError("the wav source needs --uri PATH[?front-end options], e.g. clips/?n_mels=32&layout=sequence")
        path, options = parse_uri(uri)
        try:
            cfg = from_dict(FrontEndConfig, options, "wav source")
        except ConfigError as exc:
            raise InputError(str(exc)) from None
        if tuple(input_shape) != cfg.feature_shape:
            raise InputError(f"the wav source's front end makes features {cfg.feature_shape} but the model takes {tuple(input_shape)}; pass the "
                             "run's data_options in the uri (e.g. ?n_mels=..&hop_length=..&layout=..)")
        return cls(find_clips(Path(path)), cfg, fps)

    def features(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The model input for one clip (what the adapter stores for the same clip)."""
        wave = self._torch.from_numpy(clip_to_wave(samples, rate, self.cfg)[None, :])
        with self._torch.no_grad():
            return self._front(wave)[0].numpy()

    def read(self) -> Optional[np.ndarray]:
        if self._next >= len(self.clips):
            return None
        clip = self.clips[self._next]
        self._next += 1
        return self.features(*read_wav(clip))


def find_clips(path: Path) -> List[Path]:
    if path.is_file() and path.suffix.lower() == ".wav":
        return [path]
    if path.is_file():
        from miro_edge.data.audio import list_clips
        return [clip for clip, _ in list_clips(path)]
    if path.is_dir():
        clips = sorted(path.rglob("*.wav"))
        if clips:
            return clips
        raise InputError(f"no .wav clips under {path}")
    raise InputError(f"wav source: {path} does not exist")
