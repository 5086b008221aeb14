import librosa
import numpy as np
import pytest

from conftest import SHARED_MUSIC
from streamgenre import audio
from streamgenre.frontend import FrontendError, StreamingFrontend, log_mel, mel_filters, windows


def librosa_log_mel(x: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=x, sr=22050, n_fft=512, hop_length=256, n_mels=64, fmax=10000.0,
                                         center=False)
    return np.log1p(mel)


def assert_parity(x: np.ndarray) -> None:
    ours, ref = log_mel(x), librosa_log_mel(x)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5  # relative to the spectrogram's range
    audible = ref > 1e-2
    assert (np.abs(ours - ref)[audible] / ref[audible]).max() < 1e-5  # and element by element where it is audible


def test_filterbank_asset_is_librosas():
    ref = librosa.filters.mel(sr=22050, n_fft=512, n_mels=64, fmax=10000.0)
    np.testing.assert_allclose(mel_filters(), ref, rtol=1e-6, atol=1e-9)


def test_parity_with_librosa_on_synthetic_music(music):
    assert_parity(music)


@pytest.mark.skipif(not SHARED_MUSIC, reason="../shared/data/music is not here")
@pytest.mark.parametrize("path", SHARED_MUSIC[:2], ids=lambda p: p.stem[:20])
def test_parity_with_librosa_on_real_music(path):
    assert_parity(audio.load_audio(path)[: 30 * 22050])


def test_window_shape_and_count(music):
    spec = log_mel(music)
    assert spec.shape[0] == audio.N_MELS
    assert spec.shape[1] == 1 + (len(music) - audio.N_FFT) // audio.HOP_LENGTH
    w = windows(spec)
    assert w.shape == (1 + (spec.shape[1] - 256) // 128, 64, 256)
    np.testing.assert_array_equal(w[1], spec[:, 128:384])
    assert windows(spec[:, :255]).shape == (0, 64, 256)


def test_refuses_other_rates_and_stereo(music):
    with pytest.raises(FrontendError, match="22050 Hz"):
        log_mel(music, sample_rate=44100)
    with pytest.raises(FrontendError, match="mono"):
        log_mel(np.stack([music, music], axis=1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_yields_exactly_the_batch_windows(music, seed):
    rng = np.random.default_rng(seed)
    frontend, got, i = StreamingFrontend(), [], 0
    while i < len(music):
        n = int(rng.choice([1, 7, 255, 256, 257, 511, 4096, 40000]) * rng.uniform(0.5, 1.5)) + 1
        got += frontend.feed(music[i : i + n])
        i += n
    want = windows(log_mel(music))
    assert len(got) == len(want) > 5
    assert [end for end, _ in got] == [256 + 128 * k for k in range(len(want))]
    np.testing.assert_allclose(np.stack([w for _, w in got]), want, rtol=1e-6, atol=1e-6)
    assert frontend.frames_done == log_mel(music).shape[1]
