"""The distillation teacher (musicnn's MSD networks); runs only where musicnn and TensorFlow are installed."""

import importlib.util

import numpy as np
import pytest

from conftest import synth_music

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("musicnn") and importlib.util.find_spec("tensorflow")),
    reason="the teacher's extra is not installed (pip install -e '.[teacher]' && pip install --no-deps musicnn==0.1.0)")


def test_teacher_embeds_windows_and_tells_them_apart():
    from train.teacher import PATCH_FRAMES, Teacher, teacher_spectrogram

    slow, fast = synth_music(3.0, seed=1, tempo=60), synth_music(2.2, seed=2, tempo=200)
    specs = np.stack([teacher_spectrogram(slow), teacher_spectrogram(fast)])
    assert specs.shape == (2, PATCH_FRAMES, 96) and np.isfinite(specs).all()  # no float16 overflow
    embeddings = Teacher().embed(specs)  # raises if a checkpoint variable is missing
    assert embeddings.shape[0] == 2 and embeddings.shape[1] > 200 and np.isfinite(embeddings).all()
    assert not np.allclose(embeddings[0], embeddings[1])
