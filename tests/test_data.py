import numpy as np
import pytest

from conftest import SHARED, synth_music, write_audio
from train.data import GTZAN_GENRES, find_tracks, group_folds, load_features, read_split


def make_files(root, names, seconds=1.0):
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, synth_music(seconds, seed=i))
    return root


@pytest.mark.parametrize("layout", ["genres/{g}/{g}.{i:05d}.au", "genres_original/{g}/{g}.{i:05d}.wav",
                                    "{g}.{i:05d}.wav"])
def test_gtzan_layouts(tmp_path, layout):
    names = [layout.format(g=g, i=i) for g in GTZAN_GENRES[:3] for i in range(2)]
    tracks = find_tracks(make_files(tmp_path, names))
    assert [(t.genre, t.recording) for t in tracks] == [
        (g, f"gtzan:{g}.{i:05d}") for g in GTZAN_GENRES[:3] for i in range(2)]


def test_folder_per_genre_collection(tmp_path):
    make_files(tmp_path, ["Drum and Bass/a.wav", "Drum and Bass/live/b.flac", "techno/c.ogg"])
    (tmp_path / "techno" / "notes.txt").write_text("not audio")
    (tmp_path / "loose.wav").write_bytes(b"")  # not in a genre folder: ignored
    tracks = find_tracks(tmp_path)
    assert [t.genre for t in tracks] == ["Drum and Bass", "Drum and Bass", "techno"]
    assert len({t.recording for t in tracks}) == 3


def test_tracks_csv(tmp_path):
    make_files(tmp_path, ["x/jazz.1.ogg", "x/pop.2.ogg"])
    (tmp_path / "tracks.csv").write_text("file,genre,source,seconds\nx/jazz.1.ogg,jazz,x,1\nx/pop.2.ogg,pop,x,1\n")
    assert [t.genre for t in find_tracks(tmp_path)] == ["jazz", "pop"]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no labelled audio"):
        find_tracks(tmp_path)
    with pytest.raises(FileNotFoundError):
        find_tracks(tmp_path / "nope")


def test_short_excerpts_become_one_padded_window(tmp_path):
    make_files(tmp_path, ["blues.00001.wav"], seconds=2.2)
    make_files(tmp_path / "full", ["blues.00001.wav"], seconds=8.0)
    tracks = load_features(find_tracks(tmp_path), cache=None)
    excerpt, full = sorted(tracks, key=lambda t: t.mel.shape[1])
    assert excerpt.mel.shape == (64, 256) and excerpt.is_excerpt
    assert not full.is_excerpt
    assert excerpt.recording == full.recording  # an excerpt and its track are one recording
    assert np.all(excerpt.mel[:, -40:] == 0)  # the padding is silence


def test_folds_keep_recordings_together_and_are_stratified(tmp_path):
    names = [f"{g}.{i:05d}.wav" for g in GTZAN_GENRES[:4] for i in range(10)]
    names += [f"ex/{g}.{i:05d}.wav" for g in GTZAN_GENRES[:4] for i in range(5)]  # same recordings again
    tracks = find_tracks(make_files(tmp_path, names, seconds=0.1))
    folds = group_folds(tracks, 5, seed=0)
    assert set().union(*folds) == {t.recording for t in tracks}
    assert sum(len(f) for f in folds) == 40  # disjoint
    for fold in folds:
        assert sorted(r.split(":")[1].split(".")[0] for r in fold) == sorted(GTZAN_GENRES[:4] * 2)


@pytest.mark.skipif(not (SHARED / "data" / "gtzan" / "splits").is_dir(), reason="../shared/data/gtzan is not here")
def test_shared_gtzan_and_its_splits():
    tracks = find_tracks(SHARED / "data" / "gtzan")
    assert len(tracks) == 500 and {t.genre for t in tracks} == set(GTZAN_GENRES)
    splits = [read_split(SHARED / "data" / "gtzan" / "splits" / f"{n}_filtered.txt") for n in ("train", "valid", "test")]
    assert [len(s) for s in splits] == [443, 197, 290]
    assert not (splits[0] & splits[2])
