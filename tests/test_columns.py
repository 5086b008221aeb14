"""The incremental CNN (streamgenre/columns.py): a stream's windows computed from carried columns give the whole-window
network's probabilities, on real and random audio, for streams that start mid-way, many in one batch, after gaps."""

import numpy as np
import onnx
import onnxruntime
import pytest

from conftest import SHARED_MUSIC, synth_music
from streamgenre.audio import load_audio
from streamgenre.backends import create_engine
from streamgenre.columns import SplitError, TimeAxis, checked_sessions, layout, split_model
from streamgenre.frontend import PAPER, log_mel, windows
from streamgenre.model import load_model

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def engine():
    return create_engine(load_model(), "onnx", threads=1)


def whole(engine, batch):
    return engine.infer(batch)  # no streams: the whole-window network


def test_the_paper_cnn_has_eight_new_columns_a_step_and_one_edge_at_each_side():
    cols = layout(TimeAxis((3, 5), ((1, 1), (2, 2)), (4, 4)), PAPER.window_frames, PAPER.step_frames)
    assert (cols.columns, cols.new, cols.left, cols.right, cols.carried) == (16, 8, 1, 1, 6)
    assert cols.middle_frames == (103, 248) and cols.left_frames == cols.right_frames == 25
    with pytest.raises(SplitError, match="not whole columns"):
        layout(TimeAxis((3, 5), ((1, 1), (2, 2)), (4, 4)), 256, 120)


def stream_windows(audio: np.ndarray) -> np.ndarray:
    return windows(log_mel(audio))


def run_streams(engine, per_stream: list[np.ndarray], first_number: list[int]) -> list[np.ndarray]:
    """Window k of every stream that has one in batch k, as the daemon batches them; each stream's probabilities."""
    got = [[] for _ in per_stream]
    for k in range(max(len(w) for w in per_stream)):
        members = [s for s, w in enumerate(per_stream) if k < len(w)]
        probs = engine.infer(np.stack([per_stream[s][k] for s in members]),
                             [(keys[s], first_number[s] + k) for s in members])
        for s, p in zip(members, probs):
            got[s].append(p)
    return [np.array(g) for g in got]


class Key:
    """A stream, as the engine knows one: any object, weakly referenced."""


keys = [Key() for _ in range(40)]


def test_real_music_stream_equals_the_whole_window_network(engine):
    audio = load_audio(SHARED_MUSIC[0]) if SHARED_MUSIC else synth_music(30.0)
    ws = stream_windows(audio)
    (got,) = run_streams(engine, [ws], [1])
    np.testing.assert_allclose(got, whole(engine, ws), atol=TOLERANCE)
    assert engine.columns.plan([(keys[0], len(ws) + 1)])[1] == [0]  # the next window would follow on


def test_many_streams_that_start_mid_way_in_one_batch(engine):
    rng = np.random.default_rng(0)
    music = synth_music(25.0, seed=3)
    per_stream = []
    for s in range(40):  # music from a random sample on, noise of random levels, or silence
        if s % 4 == 3:
            audio = (10 ** rng.uniform(-4, 0) * rng.standard_normal(22050 * 8)).astype(np.float32)
        elif s % 8 == 5:
            audio = np.zeros(22050 * 6, np.float32)
        else:
            audio = music[int(rng.integers(0, 22050 * 10)) :]
        per_stream.append(stream_windows(audio))
    got = run_streams(engine, per_stream, [int(n) for n in rng.integers(1, 1000, 40)])
    for ws, g in zip(per_stream, got):
        np.testing.assert_allclose(g, whole(engine, ws), atol=TOLERANCE)


def test_random_log_mel_windows(engine):
    """Arbitrary input, not only what the frontend makes: the columns of consecutive windows overlap by half."""
    frames = np.random.default_rng(1).uniform(0, 8, (64, 128 * 12)).astype(np.float32)
    ws = windows(frames)
    (got,) = run_streams(engine, [ws], [7])
    np.testing.assert_allclose(got, whole(engine, ws), atol=TOLERANCE)


def test_gaps_and_two_windows_of_one_stream_in_one_batch(engine):
    ws = stream_windows(synth_music(20.0, seed=5))
    key = Key()
    numbers = [[1], [2, 3], [5], [6], [7, 8, 9]]  # window 4 never came (a failed tick): 5 starts over
    for batch in numbers:
        probs = engine.infer(ws[[n - 1 for n in batch]], [(key, n) for n in batch])
        np.testing.assert_allclose(probs, whole(engine, ws[[n - 1 for n in batch]]), atol=TOLERANCE)
    assert engine.columns.plan([(key, 10)])[1] == [0]


def test_a_stream_that_is_gone_leaves_no_columns(engine):
    key = Key()
    ws = stream_windows(synth_music(5.0))
    engine.infer(ws, [(key, 1 + k) for k in range(len(ws))])
    count = len(engine.columns._carried)
    del key
    assert len(engine.columns._carried) == count - 1


def test_a_trained_model_splits_from_its_own_weights(tmp_path):
    """Any model of the paper's network, not only the shipped weights."""
    torch = pytest.importorskip("torch", reason="PyTorch (the train extra) exports the model")
    from train.export import export_onnx
    from train.net import PaperCNN, WithSoftmax

    torch.manual_seed(3)
    path = tmp_path / "random.onnx"
    export_onnx(WithSoftmax(PaperCNN(4)), PAPER, ["a", "b", "c", "d"], path)
    engine = create_engine(load_model(path), "onnx", threads=1)
    assert "incrementally" in engine.description
    ws = stream_windows(synth_music(12.0, seed=9))
    (got,) = run_streams(engine, [ws], [1])
    np.testing.assert_allclose(got, whole(engine, ws), atol=TOLERANCE)


def test_a_model_that_does_not_split_runs_whole(tmp_path):
    model = load_model("musicnn")
    with pytest.raises(SplitError, match="convolution part"):
        split_model(model)
    engine = create_engine(model, "onnx", threads=1)
    assert "does not split" in engine.description
    x = np.random.default_rng(0).uniform(0, 3, (3, model.params.n_mels, model.params.window_frames)).astype(np.float32)
    np.testing.assert_array_equal(engine.infer(x, [(Key(), 1), (Key(), 2), (Key(), 3)]), engine.infer(x))


def test_split_graphs_carry_the_model_files_weights():
    model = load_model()
    split = split_model(model)
    shipped = {w.name: onnx.numpy_helper.to_array(w) for w in onnx.load(str(model.path)).graph.initializer}
    for graph in (split.first, split.next):
        weights = {w.name: onnx.numpy_helper.to_array(w) for w in onnx.load_from_string(graph).graph.initializer}
        assert weights.keys() == shipped.keys()
        assert all(np.array_equal(weights[k], shipped[k]) for k in shipped)


def test_a_model_the_layout_misreads_runs_whole_not_wrong(tmp_path):
    """Valid padding in time (the author's public code) makes 14 columns, not the 16 the layout expects: the split
    graphs are checked against the whole network on load, and the model runs whole."""
    pytest.importorskip("torch", reason="PyTorch (the train extra) exports the model")
    from torch import nn
    from train.export import export_onnx

    net = nn.Sequential(nn.Conv2d(1, 8, (3, 3), padding=(1, 0)), nn.ReLU(), nn.MaxPool2d((2, 4)),
                        nn.Conv2d(8, 8, (3, 5), padding=(1, 0)), nn.ReLU(), nn.MaxPool2d((2, 4)), nn.Flatten(),
                        nn.Linear(8 * 16 * 14, 3), nn.Softmax(dim=1))
    path = tmp_path / "valid.onnx"
    export_onnx(net, PAPER, ["a", "b", "c"], path)
    model, session = load_model(path), onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(SplitError, match="split graphs"):
        checked_sessions(split_model(model), model.params, session, onnxruntime.InferenceSession)
    engine = create_engine(load_model(path), "onnx", threads=1)
    ws = stream_windows(synth_music(6.0))
    np.testing.assert_array_equal(engine.infer(ws, [(Key(), 1 + k) for k in range(len(ws))]), engine.infer(ws))
