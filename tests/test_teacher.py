"""The distillation teacher: musicnn's MSD networks ported to PyTorch, checked against the TensorFlow original where
TensorFlow is installed; its 96-band frontend checked against librosa's."""

import importlib.util

import numpy as np
import pytest
import torch

from conftest import SHARED_MUSIC, synth_music
from streamgenre.audio import WINDOW_SAMPLES, load_audio
from train.checkpoint import CheckpointError, read_checkpoint

needs_weights = pytest.mark.skipif(not importlib.util.find_spec("musicnn"),
                                   reason="musicnn's weights are not installed (pip install --no-deps musicnn==0.1.0)")
needs_tensorflow = pytest.mark.skipif(
    not (importlib.util.find_spec("musicnn") and importlib.util.find_spec("tensorflow")),
    reason="TensorFlow is not installed (the teacher extra: pip install -e '.[teacher]'), so there is no original "
           "to check the port against")


def real_windows() -> np.ndarray:
    """Student windows of real music where ../shared has some (synthetic music elsewhere), plus a short clip."""
    if SHARED_MUSIC:
        audio = np.concatenate([load_audio(p)[: 3 * WINDOW_SAMPLES] for p in SHARED_MUSIC[:3]])
    else:
        audio = np.concatenate([synth_music(9.0, seed=s, tempo=t) for s, t in ((1, 60), (2, 200))])
    windows = [audio[i : i + WINDOW_SAMPLES] for i in range(0, len(audio) - WINDOW_SAMPLES, WINDOW_SAMPLES // 2)]
    return np.stack(windows)


@needs_tensorflow
def test_port_matches_the_tensorflow_original():
    from train.teacher import TensorflowTeacher, Teacher, teacher_spectrograms

    specs = teacher_spectrograms(real_windows())
    want = TensorflowTeacher().embed(specs)  # raises if a checkpoint variable is missing
    got = Teacher().embed(specs)
    assert got.shape == want.shape == (len(specs), 456)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@needs_weights
def test_port_embeds_windows_and_tells_them_apart():
    from train.teacher import Teacher, teacher_spectrograms
    from train.musicnn import PATCH_FRAMES

    slow, fast = synth_music(2.97, seed=1, tempo=60), synth_music(2.2, seed=2, tempo=200)
    specs = np.concatenate([teacher_spectrograms(slow), teacher_spectrograms(fast)])
    assert specs.shape == (2, PATCH_FRAMES, 96) and np.isfinite(specs).all()
    embeddings = Teacher().embed(specs)
    assert embeddings.shape == (2, 456) and np.isfinite(embeddings).all()
    assert not np.allclose(embeddings[0], embeddings[1])


def test_teacher_frontend_matches_librosa():
    import librosa

    from train.musicnn import TEACHER_RATE, teacher_mel

    audio = librosa.resample(real_windows()[0], orig_sr=22050, target_sr=TEACHER_RATE)
    want = np.log10(1 + 10000 * librosa.feature.melspectrogram(y=audio, sr=TEACHER_RATE, hop_length=256, n_fft=512,
                                                               n_mels=96)).T
    got = teacher_mel(torch.from_numpy(audio)[None])[0].numpy()
    assert got.shape == want.shape == (187, 96)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_short_clips_are_tiled_to_a_patch():
    from train.musicnn import PATCH_FRAMES, to_patch

    mel = torch.arange(50 * 96, dtype=torch.float32).reshape(1, 50, 96)
    patch = to_patch(mel)
    assert patch.shape == (1, PATCH_FRAMES, 96)
    assert torch.equal(patch[0, 50:100], mel[0]) and torch.equal(patch[0, 150:], mel[0, :37])


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    (tmp_path / "x.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint"):
        read_checkpoint(tmp_path / "x")
