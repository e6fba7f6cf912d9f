"""The audio domain: WAV reading, resampling, the log-mel front end, the ``audio`` adapter on
generated clips, the live path's wav source (same features, ONNX parity) and the keyword
workload through ``miro-edge run`` (espeak-ng clips; skipped where espeak-ng is absent)."""
import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from miro_edge.data.logmel import FrontEndConfig, LogMel, hz_to_mel, mel_filterbank
from miro_edge.data.sources import load_source
from miro_edge.data.wav import fit_length, read_wav, resample, write_wav
from miro_edge.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
FRONT = {"n_mels": 24, "hop_length": 320, "n_fft": 512, "win_length": 400}


def tone(freq_hz: float, rate: int, seconds: float = 0.6, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / float(rate)
    noise = np.random.default_rng(seed).normal(0, 0.01, len(t))
    return (amp * np.sin(2 * np.pi * freq_hz * t) + noise).astype(np.float32)


def make_tone_folder(root: Path, rates=(8000, 22050), per_label: int = 6) -> Path:
    """Three labels, each a tone of its own pitch, recorded at mixed sample rates."""
    for label, freq in (("low", 300.0), ("mid", 1000.0), ("high", 3000.0)):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            rate = rates[i % len(rates)]
            write_wav(root / label / f"{i}.wav", tone(freq * (1 + 0.02 * i), rate, seed=i), rate)
    return root


def test_wav_round_trip_stereo_and_widths(tmp_path):
    x = tone(440.0, 16000)
    write_wav(tmp_path / "a.wav", x, 16000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and len(y) == len(x) and np.max(np.abs(y - x)) < 1e-4
    with wave.open(str(tmp_path / "stereo8.wav"), "wb") as w:  # 8-bit unsigned, 2 channels
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128 + 64, 128 - 64] * 100))
    mono, rate = read_wav(tmp_path / "stereo8.wav")
    assert rate == 8000 and mono.shape == (100,) and np.allclose(mono, 0.0)


def test_resample_keeps_pitch_and_duration():
    x = tone(1000.0, 8000, seconds=0.5)
    y = resample(x, 8000, 16000)
    assert len(y) == 8000
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * 16000.0 / len(y) == pytest.approx(1000.0, abs=4)
    down = resample(tone(3000.0, 22050, seconds=0.5), 22050, 16000)
    assert len(down) == 8000
    assert np.argmax(np.abs(np.fft.rfft(down))) * 16000.0 / len(down) == pytest.approx(3000.0, abs=4)
    assert fit_length(np.ones(5), 3).tolist() == [1, 1, 1]
    assert fit_length(np.ones(2), 4).tolist() == [1, 1, 0, 0]


def test_mel_filterbank_and_a_tone_lands_in_its_band():
    fb = mel_filterbank(24, 512, 16000, 20.0, 8000.0)
    assert fb.shape == (24, 257) and fb.min() >= 0 and fb.max() <= 1.0 + 1e-6
    assert np.all(fb.sum(axis=1) > 0)  # no empty band at these settings
    cfg = FrontEndConfig(normalize=False, **FRONT)
    feats = LogMel(cfg)(torch.from_numpy(fit_length(tone(1000.0, 16000), cfg.clip_samples))[None])
    assert tuple(feats.shape) == (1,) + cfg.feature_shape == (1, 1, 24, 51)
    band = int(feats[0, 0].mean(dim=1).argmax())
    edges = np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 26)
    assert edges[band] <= hz_to_mel(1000.0) <= edges[band + 2]


def test_adapter_folder_shapes_labels_and_resampling(tmp_path):
    root = make_tone_folder(tmp_path / "tones")
    src = load_source("audio", path=str(root), **FRONT)
    assert src.name == "tones" and src.x.shape == (18, 1, 24, 51) and src.x.dtype == np.float32
    assert src.class_names == ("high", "low", "mid") and np.bincount(src.y).tolist() == [6, 6, 6]
    assert src.info["source_rates_hz"] == [8000, 22050] and src.info["front_end"]["sample_rate"] == 16000
    # once resampled, a tone recorded at 8 kHz and at 22.05 kHz peaks in the same mel band
    x8, x22 = src.x[src.y == 2][0, 0], src.x[src.y == 2][1, 0]  # "mid" clips 0 (8 kHz) and 1 (22.05 kHz)
    other22 = src.x[src.y == 0][1, 0]  # "high" clip 1, 22.05 kHz
    assert x8.mean(axis=1).argmax() == x22.mean(axis=1).argmax() != other22.mean(axis=1).argmax()
    seq = load_source("audio", path=str(root), layout="sequence", **FRONT)
    assert seq.x.shape == (18, 24, 51) and np.allclose(seq.x, src.x[:, 0])


def test_adapter_csv_with_header_and_relative_paths(tmp_path):
    root = make_tone_folder(tmp_path / "tones", per_label=2)
    (tmp_path / "list.csv").write_text("path,label\ntones/low/0.wav,bass\ntones/high/1.wav,treble\n"
                                       "{},treble\n".format(root / "high" / "0.wav"))
    src = load_source("audio", path=str(tmp_path / "list.csv"), **FRONT)
    assert src.class_names == ("bass", "treble") and src.y.tolist() == [0, 1, 1] and src.x.shape[0] == 3


def test_bad_clips_are_errors_naming_the_file(tmp_path):
    root = make_tone_folder(tmp_path / "tones", per_label=2)
    bad = root / "mid" / "broken.wav"
    bad.write_bytes(b"RIFF....this is not a wave file")
    with pytest.raises(InputError, match="broken.wav"):
        load_source("audio", path=str(root), **FRONT)
    bad.unlink()
    empty = root / "mid" / "empty.wav"
    write_wav(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="empty.wav.*no samples"):
        load_source("audio", path=str(root), **FRONT)
    empty.unlink()
    with pytest.raises(InputError, match="make keywords"):
        load_source("audio", path=str(tmp_path / "nowhere"))
    (tmp_path / "bad.csv").write_text("tones/low/0.wav\n")
    with pytest.raises(InputError, match="bad.csv:1"):
        load_source("audio", path=str(tmp_path / "bad.csv"))
    with pytest.raises(InputError, match="n_mels"):
        load_source("audio", path=str(root), n_mels=0)
    with pytest.raises(InputError, match="unknown config key"):
        load_source("audio", path=str(root), nmels=12)


def test_live_wav_source_gives_the_training_features_and_onnx_matches(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime (extra 'onnx') runs the exported model")
    from miro_edge.export.onnx_export import export_onnx
    from miro_edge.export.parity import check_parity
    from miro_edge.infer.sources import make_source
    from miro_edge.model.architectures import create_model

    root = make_tone_folder(tmp_path / "tones", per_label=2)
    src = load_source("audio", path=str(root), layout="sequence", **FRONT)
    uri = f"{root}?n_mels=24&hop_length=320&n_fft=512&win_length=400&layout=sequence"
    with make_source("wav", uri, src.input_shape, None) as live:
        frames = []
        frame = live.read()
        while frame is not None:
            frames.append(frame)
            frame = live.read()
    assert np.stack(frames).shape == src.x.shape
    assert np.max(np.abs(np.stack(frames) - src.x)) < 1e-5  # same clips, same order, same front end
    with pytest.raises(InputError, match="model takes"):
        make_source("wav", str(root), src.input_shape, None)  # default front end: other shape
    model = create_model("cnn1d", src.input_shape, 3, 8)
    model.eval()
    export_onnx(model, tmp_path / "kws.onnx", src.input_shape)
    report = check_parity(model, tmp_path / "kws.onnx", src.input_shape, samples=np.stack(frames))
    assert report.passed and report.sample_source == "given" and report.n_samples == 6


def write_tone_config(tmp_path: Path) -> Path:
    root = make_tone_folder(tmp_path / "tones", per_label=12)
    cfg = tmp_path / "tones.yaml"
    cfg.write_text("""
data: {{dataset: audio, classes_per_task: 1, seed: 0}}
data_options: {{path: {root}, n_mels: 24, hop_length: 320, layout: sequence}}
memory: {{em_size: 6, swap: {{swap_ratio: 0.5}}}}
train: {{model: cnn1d, width: 8, epochs: 3, batch_size: 8, lr: 0.02, threads: 1}}
out_dir: {out}
""".format(root=root, out=tmp_path / "run"))
    return cfg


def test_run_cli_on_an_audio_folder(tmp_path):
    cfg = write_tone_config(tmp_path)
    out = subprocess.run([sys.executable, "-m", "miro_edge", "run", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "miro-edge run: audio (1 classes/task), model cnn1d" in out.stdout
    assert "task  2" in out.stdout and "final average accuracy" in out.stdout
    events = [json.loads(ln) for ln in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sum(e["kind"] == "task" for e in events) == 3
    session = json.loads((tmp_path / "run" / "session.json").read_text())
    assert session["config"]["data_options"]["n_mels"] == 24 and len(session["rows"]) == 3
    # the trained model, published, serves WAV clips through the live path's front end
    pytest.importorskip("onnxruntime", reason="ONNX Runtime (extra 'onnx') serves the published model")
    from miro_edge.export.pipeline import export_checkpoint

    ckpt = tmp_path / "run" / "checkpoints" / "cycle-000002.pt"
    onnx_path = export_checkpoint(ckpt, tmp_path / "export").onnx.path
    reg = tmp_path / "reg"
    pub = subprocess.run([sys.executable, "-m", "miro_edge", "publish", str(onnx_path), "--registry", str(reg),
                          "--checkpoint", str(ckpt), "--metric", "val_accuracy=0.9"], capture_output=True, text=True)
    assert pub.returncode == 0 and "published" in pub.stdout, pub.stderr
    uri = "{}?n_mels=24&hop_length=320&layout=sequence".format(tmp_path / "tones")
    live = subprocess.run([sys.executable, "-m", "miro_edge", "live", "--registry", str(reg), "--source", "wav",
                           "--uri", uri, "--engine", "onnxruntime"], capture_output=True, text=True)
    assert live.returncode == 0, live.stderr
    assert "frames 36 in" in live.stdout and "version 1" in live.stdout
    wrong = subprocess.run([sys.executable, "-m", "miro_edge", "live", "--registry", str(reg), "--source", "wav",
                            "--uri", str(tmp_path / "tones"), "--engine", "onnxruntime"], capture_output=True, text=True)
    assert wrong.returncode == 1 and "model takes" in wrong.stderr


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng / make keywords)")


@needs_espeak
def test_keyword_tool_generates_clips_the_adapter_reads(tmp_path):
    out = tmp_path / "kw"
    cmd = [sys.executable, str(ROOT / "tools" / "make_keywords.py"), "--out", str(out), "--per-word", "3",
           "--words", "yes,no,stop"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "no", "stop", "yes"]
    assert len(list(out.glob("*/*.wav"))) == 9
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert "already generated" in again.stdout  # generated once, then reused
    src = load_source("audio", path=str(out), n_mels=32, hop_length=320, layout="sequence")
    assert src.x.shape == (9, 32, 51) and src.class_names == ("no", "stop", "yes")
    assert src.info["source_rates_hz"] == [22050]  # espeak-ng's rate, resampled to 16 kHz


@needs_espeak
def test_keyword_config_runs_through_the_cli(tmp_path):
    out = tmp_path / "kw"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_keywords.py"), "--out", str(out), "--per-word", "8",
                    "--words", "yes,no,up,down"], check=True, capture_output=True)
    text = (ROOT / "configs" / "keywords.yaml").read_text().replace(".cache/keywords", str(out))
    text = text.replace("epochs: 20", "epochs: 2")
    cfg = tmp_path / "keywords.yaml"
    cfg.write_text(text)
    res = subprocess.run([sys.executable, "-m", "miro_edge", "run", "--config", str(cfg), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "audio (2 classes/task), model cnn1d" in res.stdout and "task  1" in res.stdout
    assert (tmp_path / "r" / "results.jsonl").is_file()
