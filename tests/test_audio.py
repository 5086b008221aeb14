import av
import numpy as np
import pytest
import soundfile

from conftest import write_audio
from streamgenre.audio import SAMPLE_RATE, AudioError, Resampler, load_audio, pad_to_window, WINDOW_SAMPLES


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * SAMPLE_RATE / len(x)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampler_keeps_pitch_and_length_in_chunks(rate):
    t = np.arange(rate * 2) / rate
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    resample = Resampler(rate)
    out = np.concatenate([resample(x[i : i + 1000]) for i in range(0, len(x), 1000)] + [resample(x[:0])])
    assert abs(len(out) - 2 * SAMPLE_RATE) <= 64
    assert abs(dominant_hz(out[2000:-2000]) - 440) < 3


def test_resampler_removes_what_would_alias():
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 15000 * t).astype(np.float32)  # above 22050 / 2
    out = Resampler(48000)(x)
    assert np.sqrt(np.mean(out[500:-500] ** 2)) < 1e-3


def test_resampler_downmixes_stereo():
    left = np.sin(np.arange(8000) * 0.3).astype(np.float32)
    out = Resampler(8000, channels=2)(np.stack([left, -left], axis=1))  # opposite phases cancel
    assert np.abs(out).max() < 1e-3


def write_m4a(path, audio):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio[None], format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            container.mux(packet)
    return path


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "au", "m4a"])
def test_decodes_every_format(tmp_path, music, ext):
    x = music[: SAMPLE_RATE * 3]
    path = tmp_path / f"clip.{ext}"
    write_m4a(path, x) if ext == "m4a" else write_audio(path, x)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) < 0.1 * SAMPLE_RATE


def test_decodes_44k_stereo_to_22k_mono(tmp_path, music):
    stereo = np.stack([music[:22050], music[:22050]], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.repeat(stereo, 2, axis=0), 44100)
    y = load_audio(path)
    assert abs(len(y) - 22050) < 100


def test_errors_are_one_line(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(AudioError, match="cannot") as e:
        load_audio(junk)
    assert "\n" not in str(e.value)


def test_pad_to_window():
    assert len(pad_to_window(np.ones(1000, np.float32))) == WINDOW_SAMPLES
    assert len(pad_to_window(np.ones(WINDOW_SAMPLES + 5, np.float32))) == WINDOW_SAMPLES + 5
