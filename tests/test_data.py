import numpy as np
import pytest

from conftest import SHARED, synth_music, write_audio
from train.data import GTZAN_GENRES, SPLIT_LISTS, artist_folds, cache_key, find_tracks, group_folds, load_features
from train.train import fold_sides


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


def test_features_are_cached_whole(tmp_path):
    make_files(tmp_path / "music", ["blues.00001.wav"], seconds=4.0)
    track = load_features(find_tracks(tmp_path / "music"), cache=tmp_path / "cache")[0]
    first = track.mel
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{cache_key(track.path)}.npy"]  # nothing partial
    again = load_features(find_tracks(tmp_path / "music"), cache=tmp_path / "cache")[0].mel
    assert np.array_equal(first, again)


def test_folds_keep_recordings_together_and_are_stratified(tmp_path):
    names = [f"{g}.{i:05d}.wav" for g in GTZAN_GENRES[:4] for i in range(10)]
    names += [f"ex/{g}.{i:05d}.wav" for g in GTZAN_GENRES[:4] for i in range(5)]  # same recordings again
    tracks = find_tracks(make_files(tmp_path, names, seconds=0.1))
    folds = group_folds(tracks, 5, seed=0)
    assert set().union(*folds) == {t.recording for t in tracks}
    assert sum(len(f) for f in folds) == 40  # disjoint
    for fold in folds:
        assert sorted(r.split(":")[1].split(".")[0] for r in fold) == sorted(GTZAN_GENRES[:4] * 2)


def test_artist_folds_never_put_one_list_on_both_sides(tmp_path):
    """Three lists (artist-disjoint, like the fault-filtered ones) and recordings in no list: each list is held out
    once, its recordings never train or validate, validation comes from the other lists, the rest only train."""
    lists = {name: [f"{g}.{i:05d}" for g in GTZAN_GENRES[:4] for i in range(7 * k, 7 * k + 7)]
             for k, name in enumerate(SPLIT_LISTS)}
    (tmp_path / "splits").mkdir()
    for name, stems in lists.items():
        (tmp_path / "splits" / f"{name}_filtered.txt").write_text("".join(f"{s[:-6]}/{s}.wav\n" for s in stems))
    unlisted = [f"{g}.{i:05d}" for g in GTZAN_GENRES[:4] for i in (90, 91)]
    names = [f"audio/{s}.wav" for stems in lists.values() for s in stems] + [f"audio/{s}.wav" for s in unlisted]
    names += ["audio/ex/blues.00001.wav"]  # an excerpt of a listed recording: goes wherever its recording goes
    tracks = find_tracks(make_files(tmp_path, names, seconds=0.1) / "audio")
    folds = artist_folds(tmp_path / "splits")
    sides = list(fold_sides(tracks, folds, seed=0))
    assert len(sides) == 3
    for k, (train, valid, held) in enumerate(sides):
        held_list = {f"gtzan:{s}" for s in lists[SPLIT_LISTS[k]]}
        others = {f"gtzan:{s}" for j, name in enumerate(SPLIT_LISTS) if j != k for s in lists[name]}
        assert {t.recording for t in held} == held_list
        assert not ({t.recording for t in train + valid} & held_list)
        assert valid and {t.recording for t in valid} <= others
        assert {f"gtzan:{s}" for s in unlisted} <= {t.recording for t in train}
        assert len(train) + len(valid) + len(held) == len(tracks)
    assert sum(len(held) for _, _, held in sides) == len(tracks) - len(unlisted)


@pytest.mark.skipif(not (SHARED / "data" / "gtzan" / "splits").is_dir(), reason="../shared/data/gtzan is not here")
def test_shared_gtzan_and_its_splits():
    tracks = find_tracks(SHARED / "data" / "gtzan")
    assert len(tracks) == 500 and {t.genre for t in tracks} == set(GTZAN_GENRES)
    splits = artist_folds(SHARED / "data" / "gtzan" / "splits")
    assert [len(s) for s in splits] == [443, 197, 290]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    assert len({t.recording for t in tracks} & set().union(*splits)) == 383  # the rest only ever train


def test_a_fold_that_is_not_there_is_refused_in_one_line(tmp_path):
    """`train.train --fold N` outside the folds would train nothing; it is an error instead (exit 2)."""
    import subprocess
    import sys
    from pathlib import Path

    names = [f"genres/{g}/{g}.{i:05d}.wav" for g in GTZAN_GENRES[:2] for i in range(6)]
    root = make_files(tmp_path, names, seconds=0.5)
    run = subprocess.run([sys.executable, "-m", "train.train", "--data", str(root), "--folds", "3", "--fold", "4",
                          "--report", str(tmp_path / "report")], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[1])
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines()[-1] == "train.py: error: --fold 4: the folds are 1 to 3"
