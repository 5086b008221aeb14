import librosa
import numpy as np
import pytest

from conftest import SHARED_MUSIC, step_spans, synth_music
from streamgenre import audio
from streamgenre.gpu import find_gpu
from streamgenre.frontend import (PAPER, Frontend, FrontendError, FrontendParams, create_frontend, log_mel, mel_filters,
                                  mel_frames, windows)
from train.musicnn import MUSICNN


MODELS = pytest.mark.parametrize("params", [PAPER, MUSICNN], ids=["paper", "musicnn"])


def librosa_log_mel(x: np.ndarray, params: FrontendParams) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=x, sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
                                         n_mels=params.n_mels, fmax=params.f_max, center=False)
    return np.log1p(mel) if params.log == "log1p" else np.log10(1 + 10000 * mel)


def assert_parity(x: np.ndarray, params: FrontendParams) -> None:
    ours, ref = log_mel(x, params.sample_rate, params), librosa_log_mel(x, params)
    assert ours.shape == ref.shape == (params.n_mels, params.frame_count(len(x)))
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5  # relative to the spectrogram's range
    audible = ref > 1e-2
    assert (np.abs(ours - ref)[audible] / ref[audible]).max() < 1e-5  # and element by element where it is audible


@pytest.mark.parametrize("rate,n_mels,f_max", [(22050, 64, 10000.0), (16000, 96, 8000.0), (44100, 128, 22050.0)])
def test_filterbank_is_librosas(rate, n_mels, f_max):
    ref = librosa.filters.mel(sr=rate, n_fft=512, n_mels=n_mels, fmax=f_max)
    np.testing.assert_allclose(mel_filters(rate, 512, n_mels, f_max), ref, rtol=1e-5, atol=1e-8)


@MODELS
def test_parity_with_librosa_on_synthetic_music(params):
    assert_parity(synth_music(20.0, rate=params.sample_rate), params)


@pytest.mark.skipif(not SHARED_MUSIC, reason="../shared/data/music is not here")
@MODELS
@pytest.mark.parametrize("path", SHARED_MUSIC[:2], ids=lambda p: p.stem[:20])
def test_parity_with_librosa_on_real_music(path, params):
    assert_parity(audio.load_audio(path, rate=params.sample_rate)[: 30 * params.sample_rate], params)


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


@MODELS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streams_interleaved_in_batches_yield_exactly_the_batch_windows(params, seed):
    """Steps of three streams arrive in random batches (several steps of one stream in a batch too); each stream's
    windows are those of the batch form on its whole signal."""
    rng = np.random.default_rng(seed)
    music = synth_music(20.0, rate=params.sample_rate)
    signals = [music, music[::-1].copy(), 0.5 * music]
    queues = [step_spans(x, params) for x in signals]
    frontend, got = Frontend(params), [[] for _ in signals]
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
        want = windows(log_mel(x, params.sample_rate, params), params)
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
