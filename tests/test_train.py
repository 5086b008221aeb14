"""A tiny model trained on seconds of synthetic audio, exported and loaded back: the whole train -> ship path."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import synth_music
from streamgenre.backends import create_engine
from streamgenre.model import ModelError, load_model
from train.data import Track
from train.evaluate import predict, score
from train.card import CONTENT_HEADING, MUSICNN_HEADING, write_card
from train.export import export_onnx, model_card
from train.net import PaperCNN, WithSoftmax
from train.data import window_starts
from train.train import RECIPES, Recipe, attach_soft_targets, fit, loss
from streamgenre.frontend import PAPER, log_mel


def tiny_dataset():
    """Two 'genres' a CNN tells apart at once: slow low chords against fast high ones."""
    tracks = []
    for i in range(12):
        for genre, tempo, shift in (("slow", 60, 1.0), ("fast", 240, 4.0)):
            x = synth_music(7.0, seed=i, tempo=tempo)
            x = np.interp(np.arange(len(x)) * shift, np.arange(len(x)), x, period=len(x)).astype(np.float32)
            tracks.append(Track(Path(f"/virtual/{genre}-{i}.wav"), genre, f"{genre}:{i}", "test", log_mel(x)))
    return tracks


def test_network_is_the_papers():
    net = PaperCNN(10)
    assert sum(p.numel() for p in net.parameters()) == 586794
    assert net(torch.zeros(2, 1, 64, 256)).shape == (2, 10)


@pytest.fixture(scope="module")
def trained():
    tracks = tiny_dataset()
    genres = ["slow", "fast"]
    recipe = Recipe("test", max_epochs=10, patience=10, batch=4, lr=0.03, short_crops=0.3, gain_db=3, masks=True,
                    ema=0.5)
    net = fit(tracks[:16], tracks[16:], genres, recipe, seed=0, log=lambda *_: None)
    return net, genres, tracks[16:]


def test_training_learns_a_separable_task(trained):
    net, genres, held_out = trained
    assert score(net, held_out, genres).accuracy("windows") >= 0.9


def test_export_round_trip(tmp_path, trained):
    net, genres, held_out = trained
    path = tmp_path / "m.onnx"
    export_onnx(WithSoftmax(net), PAPER, genres, path)
    model = load_model(path)
    assert model.genres == ("slow", "fast") and model.params.n_mels == 64
    batch = np.stack([t.mel[:, :256] for t in held_out])
    np.testing.assert_allclose(create_engine(model).infer(batch), predict(net, batch), atol=1e-5)


def test_each_model_rewrites_its_own_section_of_the_card(tmp_path):
    card = tmp_path / "MODEL.md"
    write_card(card, paper="# The shipped genre model\n\nfirst\n")
    write_card(card, musicnn=f"{MUSICNN_HEADING}\n\nmusicnn\n")
    write_card(card, content=f"{CONTENT_HEADING}\n\ncontent\n")
    write_card(card, paper="# The shipped genre model\n\nsecond\n")
    write_card(card, musicnn=f"{MUSICNN_HEADING}\n\nmusicnn 2\n")
    assert card.read_text() == (f"# The shipped genre model\n\nsecond\n\n{MUSICNN_HEADING}\n\nmusicnn 2\n\n"
                                f"{CONTENT_HEADING}\n\ncontent\n")


def test_the_card_describes_the_recipe_the_file_was_made_with(tmp_path, trained):
    """The shipped card is written by the run that exports the file: what it says of the teacher's head and of
    feature distillation follows the recipe, and its figures are the report's."""
    net, genres, _ = trained
    path = tmp_path / "m.onnx"
    export_onnx(WithSoftmax(net), PAPER, genres, path)
    kinds = ("clips", "windows", "tracks")
    scores = {"accuracy": {k: {"accuracy": 0.5, "n": 4} for k in kinds}, "genres": genres,
              "per_genre": {k: dict.fromkeys(genres, 0.5) for k in kinds},
              "confusion": {k: [[1, 1], [1, 1]] for k in kinds}}
    cards = {}
    for name in ("distil", "distil-embedding"):
        report = {"recipe": RECIPES[name].__dict__, "data": ["gtzan"], "seed": 0, "genres": genres,
                  "cv": scores | {"folds": [{}] * 3, "protocol": "artist-disjoint: the three lists"}}
        cards[name] = model_card(path, genres, report)
    assert "head fitted on the GTZAN training recordings only" in cards["distil"]
    assert "Feature distillation" not in cards["distil"]
    assert "other datasets' recordings with their labels" in cards["distil-embedding"]
    assert "(weight 1.0 against the genre loss)" in cards["distil-embedding"]
    assert all("| **this model**, recipe `%s` | 3 | 50.0 %% |" % name in card for name, card in cards.items())


@pytest.mark.parametrize("change,reason", [
    ({"n_mels": 128, "f_max": 11025.0}, r"its input is \(1, 64, 256\), not \(N, 1, 128, 256\)"),
    ({"log": "log2"}, "cannot build its frontend: log 'log2' is not one"),
    ({"mel": "htk"}, "cannot build its frontend: mel 'htk'"),
    ({"step_frames": 100}, "window_frames = 2 x step_frames"),
    ({"f_max": 20000.0}, "f_max 20000.0 must be"),
    ({"hop_length": 0}, r"\['hop_length'\] must be positive"),
    ({"dither": 1}, r"unknown frontend parameters \['dither'\]"),
])
def test_a_model_whose_frontend_cannot_be_built_is_refused(tmp_path, trained, change, reason):
    path = tmp_path / "m.onnx"
    export_onnx(WithSoftmax(trained[0]), PAPER, trained[1], path)
    proto = onnx.load(str(path))
    for prop in proto.metadata_props:
        if prop.key == "streamgenre.frontend":
            prop.value = json.dumps(json.loads(prop.value) | change)
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=reason):
        load_model(path)


def test_not_a_model_is_refused(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(tmp_path / "x.onnx")
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "y.onnx")


def band_means(track):
    """A small real embedding: each window's mean log-mel per band (a weak teacher, but a real one)."""
    return np.stack([track.mel[:, s : s + 256].mean(1) for s in window_starts(track.mel.shape[1])])


def test_distillation_cross_fits_soft_targets_and_trains():
    tracks = tiny_dataset()
    genres = ["slow", "fast"]
    embeddings = {str(t.path.resolve()): band_means(t) for t in tracks}
    recipe = Recipe("test", max_epochs=10, patience=10, batch=4, lr=0.03, distil=0.7, temperature=2.0)
    head = attach_soft_targets(tracks[:16], embeddings, genres, recipe, seed=0)
    for t in tracks[:16]:
        assert t.soft.shape == (len(window_starts(t.mel.shape[1])), 2)
        np.testing.assert_allclose(t.soft.sum(1), 1, rtol=1e-6)
    assert head.score(np.concatenate([band_means(t) for t in tracks[16:]]),
                      np.concatenate([[genres.index(t.genre)] * len(band_means(t)) for t in tracks[16:]])) > 0.9
    net = fit(tracks[:16], tracks[16:], genres, recipe, seed=0, log=lambda *_: None)
    assert score(net, tracks[16:], genres).accuracy("windows") >= 0.9


def test_loss_is_cross_entropy_without_a_teacher():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    soft = torch.softmax(torch.randn(4, 3), 1)
    plain = loss(logits, labels, soft, RECIPES["best"])
    assert torch.isclose(plain, torch.nn.functional.cross_entropy(logits, labels))
    assert not torch.isclose(loss(logits, labels, soft, RECIPES["distil"]), plain)


def test_audio_without_its_own_label_learns_from_the_teacher_alone():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    soft = torch.softmax(torch.randn(4, 3), 1)
    recipe = RECIPES["distil"]
    teacher_only = recipe.distil * torch.nn.functional.kl_div(torch.log_softmax(logits, 1), soft, reduction="batchmean")
    assert torch.isclose(loss(logits, labels, soft, recipe, torch.zeros(4)), teacher_only)
    assert loss(logits, labels, soft, recipe, torch.ones(4)) > teacher_only


def test_teacher_head_learns_gtzan_labels_and_labels_the_other_audio():
    tracks = tiny_dataset()[:16]
    for t in tracks[:10]:
        t.recording = f"gtzan:{t.recording}"
    embeddings = {str(t.path.resolve()): band_means(t) for t in tracks}
    recipe = Recipe("test", distil=0.7, temperature=1.0, head_gtzan_only=True)
    head = attach_soft_targets(tracks, embeddings, ["slow", "fast"], recipe, seed=0)
    assert [t.own_label for t in tracks] == [True] * 10 + [False] * 6
    for t in tracks[10:]:  # labelled by the head fitted on all GTZAN recordings
        np.testing.assert_allclose(t.soft, head.predict_proba(embeddings[str(t.path.resolve())]), rtol=1e-5)


def test_views_labelled_by_the_teacher_train_beside_the_tracks():
    from train.train import with_views
    from train.views import Views

    tracks = tiny_dataset()
    genres = ["slow", "fast"]
    embeddings = {str(t.path.resolve()): band_means(t) for t in tracks}
    recipe = Recipe("test", max_epochs=10, patience=10, batch=4, lr=0.03, distil=0.7, temperature=1.0, views=16)
    head = attach_soft_targets(tracks[:16], embeddings, genres, recipe, seed=0)
    # views of every track: its second window, as a mix-free view of its recording
    bank = Views(np.stack([t.mel[:, 128:384] for t in tracks]).astype(np.float16),
                 np.stack([band_means(t)[1] for t in tracks]),
                 np.array([(t.recording, "") for t in tracks]), np.array([t.genre for t in tracks]))
    views = with_views(bank, tracks[:16], head, recipe)
    assert len(views) == 16 and {v.recording for v in views} == {f"view:{i}" for i in range(16)}  # none held out
    np.testing.assert_allclose(views[0].soft, head.predict_proba(bank.embedding[:1]), rtol=1e-5)
    net = fit(tracks[:16] + views, tracks[16:], genres, recipe, seed=0, log=lambda *_: None)
    assert score(net, tracks[16:], genres).accuracy("windows") >= 0.9


class Interrupted(Exception):
    pass


def test_training_resumes_from_its_checkpoint_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """A run killed after its second epoch (the checkpoint is on disk), run again, ends with the same weights,
    bit for bit, as a run that was never interrupted: the optimiser, schedule, average and random generators are
    all resumed, not only the weights."""
    tracks, genres = tiny_dataset(), ["slow", "fast"]
    recipe = Recipe("test", max_epochs=4, patience=10, batch=4, lr=0.03, short_crops=0.3, gain_db=3, masks=True,
                    ema=0.5, cosine=True)
    whole = fit(tracks[:16], tracks[16:], genres, recipe, seed=3, log=lambda *_: None,
                checkpoint=tmp_path / "whole.pt")

    def stop_after_two(line):
        if line.strip().startswith("epoch 2:"):
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(tracks[:16], tracks[16:], genres, recipe, seed=3, log=stop_after_two, checkpoint=tmp_path / "cut.pt")
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["epochs"] == 1  # epoch 2 was cut before its save
    said = []
    resumed = fit(tracks[:16], tracks[16:], genres, recipe, seed=3, log=said.append, checkpoint=tmp_path / "cut.pt")
    assert said[0].strip().startswith("resumed from") and len(said) == 1 + 3
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    fresh = fit(tracks[:16], tracks[16:], genres, Recipe(**{**recipe.__dict__, "max_epochs": 3}), seed=3,
                log=lambda *_: None)
    assert any(not torch.equal(a, b) for a, b in zip(whole.state_dict().values(), fresh.state_dict().values()))


def test_one_fold_alone_scores_as_it_does_in_the_whole_cross_validation():
    """`--fold N` (a long run split across sessions) trains fold N on the same sides and seed as the whole run."""
    from train.data import group_folds
    from train.train import cross_validate

    tracks, genres = tiny_dataset(), ["slow", "fast"]
    for t in tracks:
        t.recording = f"gtzan:{t.recording}"  # folds are made of GTZAN recordings
    recipe = Recipe("test", max_epochs=2, patience=10, batch=4, lr=0.03)
    folds = group_folds(tracks, 3, seed=0)
    quiet = lambda *_: None  # noqa: E731
    whole = cross_validate(tracks, genres, recipe, folds, seed=0, log=quiet)
    alone = cross_validate(tracks, genres, recipe, folds, seed=0, log=quiet, only=2)
    assert len(whole["folds"]) == 3 and alone["folds"] == whole["folds"][1:2]
    assert alone["confusion"]["windows"] != whole["confusion"]["windows"]


def test_every_shipped_graph_loads_on_the_oldest_onnxruntime_the_project_admits():
    """pyproject admits onnxruntime 1.18, which reads IR versions up to 10 and opsets up to 21 (onnxruntime's
    version matrix): a graph stamped newer loads here and fails there (the content model at IR 14 failed on 1.30)."""
    import re
    from importlib.resources import files

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'"onnxruntime>=([\d.]+)"', pyproject).group(1) == "1.18"
    graphs = sorted(Path(str(files("streamgenre.engines"))).glob("*.onnx"))
    assert len(graphs) == 3
    for path in graphs:
        proto = onnx.load(path, load_external_data=False)
        assert proto.ir_version <= 10, path.name
        assert all(o.version <= 21 for o in proto.opset_import if o.domain in ("", "ai.onnx")), path.name


def test_the_teachers_embedding_is_learnt_standardised_and_resumes_with_its_probe(tmp_path):
    """`distil-embedding`: every training window carries the teacher's embedding standardised over the training
    windows; the student learns the task with the extra loss; and the training-only probe is part of the checkpoint
    (a resumed run without it would end with other weights)."""
    tracks, genres = tiny_dataset(), ["slow", "fast"]
    embeddings = {str(t.path.resolve()): band_means(t) for t in tracks}
    recipe = Recipe("test", max_epochs=10, patience=10, batch=4, lr=0.03, distil=0.7, temperature=2.0, embedding=1.0)
    attach_soft_targets(tracks[:16], embeddings, genres, recipe, seed=0)
    every = np.concatenate([t.embedding for t in tracks[:16]])
    np.testing.assert_allclose(every.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(every.std(0), 1, atol=1e-3)
    assert all(t.embedding is None for t in tracks[16:])  # held out: no statistics from them
    net = fit(tracks[:16], tracks[16:], genres, recipe, seed=0, log=lambda *_: None)
    assert score(net, tracks[16:], genres).accuracy("windows") >= 0.9

    recipe = Recipe(**{**recipe.__dict__, "max_epochs": 4, "ema": 0.5, "cosine": True})
    whole = fit(tracks[:16], tracks[16:], genres, recipe, seed=1, log=lambda *_: None, checkpoint=tmp_path / "w.pt")
    probe = torch.load(tmp_path / "w.pt", weights_only=False)["probe"]
    assert probe["weight"].shape == (every.shape[1], 32)

    def stop_after_two(line):
        if line.strip().startswith("epoch 2:"):
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(tracks[:16], tracks[16:], genres, recipe, seed=1, log=stop_after_two, checkpoint=tmp_path / "cut.pt")
    resumed = fit(tracks[:16], tracks[16:], genres, recipe, seed=1, log=lambda *_: None, checkpoint=tmp_path / "cut.pt")
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_embedding_loss_counts_only_the_windows_that_have_one():
    from train.train import embedding_loss

    tracks = tiny_dataset()[:3]
    tracks[0].embedding, tracks[1].embedding = np.ones((5, 4), np.float32), np.zeros((5, 4), np.float32)
    predicted = torch.zeros(3, 4)
    # the first has its window 2 (all ones: error 1 per value), the second none drawn, the third no embedding
    assert torch.isclose(embedding_loss(predicted, tracks, (2, -1, 0)), torch.tensor(1 / 3))
    assert embedding_loss(predicted, tracks[1:], (-1, 0)) == 0
