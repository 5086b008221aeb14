import librosa
import numpy as np
import pytest

from conftest import SHARED_MUSIC, step_spans
from streamgenre import audio
from streamgenre.gpu import find_gpu
from streamgenre.frontend import Frontend, FrontendError, create_frontend, log_mel, mel_filters, mel_frames, windows


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


def test_batched_frames_equal_one_signal_at_a_time(music):
    batch = np.stack([music[:50000], music[1000:51000]])
    np.testing.assert_array_equal(mel_frames(batch)[1], mel_frames(music[1000:51000]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streams_interleaved_in_batches_yield_exactly_the_batch_windows(music, seed):
    """Steps of three streams arrive in random batches (several steps of one stream in a batch too); each stream's
    windows are those of the batch form on its whole signal."""
    rng = np.random.default_rng(seed)
    signals = [music, music[::-1].copy(), 0.5 * music]
    queues = [step_spans(x) for x in signals]
    frontend, got = Frontend(), [[] for _ in signals]
    frontend.open_streams(len(signals))
    while any(queues):
        ids, spans = [], []
        for i, q in enumerate(queues):
            for _ in range(min(len(q), int(rng.integers(0, 3)))):
                ids.append(i)
                spans.append(q.pop(0))
        if spans:
            for i, w in zip(ids, frontend.stream_windows(ids, np.stack(spans))):
                got[i].append(w)
    for x, windows_of_stream in zip(signals, got):
        want = windows(log_mel(x))
        assert len(windows_of_stream) - 1 == len(want) > 5  # the first step only starts the first window
        np.testing.assert_array_equal(np.stack(windows_of_stream[1:]), want)


@pytest.mark.skipif(find_gpu()[0] is not None, reason="a GPU is here: tests/test_gpu.py covers it")
def test_frontend_selection_without_a_gpu():
    cpu = create_frontend("auto")
    assert cpu.name == "cpu" and "auto:" in cpu.description
    with pytest.raises(FrontendError, match="--frontend gpu: "):
        create_frontend("gpu")
    with pytest.raises(FrontendError, match="use auto, gpu or cpu"):
        create_frontend("tpu")
