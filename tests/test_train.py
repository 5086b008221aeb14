"""A tiny model trained on seconds of synthetic audio, exported and loaded back: the whole train -> ship path."""

import json

import numpy as np
import onnx
import pytest
import torch

from conftest import synth_music
from streamgenre.backends import create_engine
from streamgenre.model import ModelError, load_model
from train.data import Track
from train.evaluate import predict, score
from train.export import export_onnx
from train.net import PaperCNN
from train.train import Recipe, fit
from streamgenre.frontend import log_mel


def tiny_dataset():
    """Two 'genres' a CNN tells apart at once: slow low chords against fast high ones."""
    tracks = []
    for i in range(12):
        for genre, tempo, shift in (("slow", 60, 1.0), ("fast", 240, 4.0)):
            x = synth_music(7.0, seed=i, tempo=tempo)
            x = np.interp(np.arange(len(x)) * shift, np.arange(len(x)), x, period=len(x)).astype(np.float32)
            tracks.append(Track(None, genre, f"{genre}:{i}", "test", log_mel(x)))
    return tracks


def test_network_is_the_papers():
    net = PaperCNN(10)
    assert sum(p.numel() for p in net.parameters()) == 586794
    assert net(torch.zeros(2, 1, 64, 256)).shape == (2, 10)


@pytest.fixture(scope="module")
def trained():
    tracks = tiny_dataset()
    genres = ["slow", "fast"]
    recipe = Recipe("test", max_epochs=10, patience=10, batch=4, short_crops=0.3, gain_db=3, masks=True, ema=0.5)
    net = fit(tracks[:16], tracks[16:], genres, recipe, seed=0, log=lambda *_: None)
    return net, genres, tracks[16:]


def test_training_learns_a_separable_task(trained):
    net, genres, held_out = trained
    assert score(net, held_out, genres).accuracy("windows") >= 0.9


def test_export_round_trip(tmp_path, trained):
    net, genres, held_out = trained
    path = tmp_path / "m.onnx"
    export_onnx(net, genres, path)
    model = load_model(path)
    assert model.genres == ("slow", "fast") and model.frontend["n_mels"] == 64
    batch = np.stack([t.mel[:, :256] for t in held_out])
    np.testing.assert_allclose(create_engine(model).infer(batch), predict(net, batch), atol=1e-5)


def test_a_model_for_another_frontend_is_refused(tmp_path, trained):
    path = tmp_path / "m.onnx"
    export_onnx(trained[0], trained[1], path)
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "streamgenre.frontend":
            prop.value = json.dumps(json.loads(prop.value) | {"n_mels": 128, "f_max": 11025.0})
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match="another frontend: n_mels=128"):
        load_model(path)


def test_not_a_model_is_refused(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(tmp_path / "x.onnx")
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "y.onnx")
