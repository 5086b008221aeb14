"""musicnn's MSD networks ported to PyTorch (the distillation teacher, and inside the shipped musicnn model), checked
against the TensorFlow original where TensorFlow is installed."""

import importlib.util

import numpy as np
import pytest

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
    from train.musicnn import MUSICNN
    from train.teacher import Teacher, teacher_spectrograms

    slow, fast = synth_music(2.97, seed=1, tempo=60), synth_music(2.2, seed=2, tempo=200)
    specs = np.concatenate([teacher_spectrograms(slow), teacher_spectrograms(fast)])
    assert specs.shape == (2, MUSICNN.window_frames, 96) and np.isfinite(specs).all()
    embeddings = Teacher().embed(specs)
    assert embeddings.shape == (2, 456) and np.isfinite(embeddings).all()
    assert not np.allclose(embeddings[0], embeddings[1])


def shipped_musicnn_head() -> tuple[np.ndarray, np.ndarray]:
    """The linear genre head inside the shipped musicnn graph: (genres, 456) weight and bias."""
    import onnx
    from onnx import numpy_helper

    from streamgenre.model import shipped_model_path

    values = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(shipped_model_path("musicnn"))).graph.initializer}
    return values["head.weight"], values["head.bias"]


def shipped_musicnn(windows: np.ndarray) -> np.ndarray:
    from streamgenre.backends import create_engine
    from streamgenre.model import load_model

    return create_engine(load_model("musicnn"), "onnx").infer(windows)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@needs_tensorflow
def test_the_shipped_musicnn_graph_matches_the_tensorflow_original():
    """The exported graph (both networks and the head) against musicnn's TensorFlow networks with the same head."""
    from train.teacher import TensorflowTeacher, teacher_spectrograms

    specs = teacher_spectrograms(real_windows())
    weight, bias = shipped_musicnn_head()
    want = softmax(TensorflowTeacher().embed(specs) @ weight.T + bias)
    np.testing.assert_allclose(shipped_musicnn(specs.transpose(0, 2, 1)), want, atol=1e-4, rtol=0)


@needs_weights
def test_the_shipped_musicnn_graph_is_the_port_with_its_head():
    from train.teacher import Teacher, teacher_spectrograms

    specs = teacher_spectrograms(real_windows()[:4])
    weight, bias = shipped_musicnn_head()
    want = softmax(Teacher().embed(specs) @ weight.T + bias)
    np.testing.assert_allclose(shipped_musicnn(specs.transpose(0, 2, 1)), want, atol=1e-5, rtol=0)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    (tmp_path / "x.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint"):
        read_checkpoint(tmp_path / "x")
