"""musicnn's genre head with other datasets' recordings beside GTZAN's: every genre weighs the same, the others'
share is chosen on held-out GTZAN artists, and recordings that teach nothing get none of it."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from train.data import Track
from train.head import ARTIST_HEAD_C, fit_head, fit_head_with_extra, genre_weights

GENRES = ["blues", "disco", "jazz"]
CENTRES = np.random.default_rng(0).normal(size=(3, 16))
SEED = 6  # of the synthetic recordings; at some seeds (4 of 2-7) C falls to 1e-4 and no share tells the cases apart


def tracks(source: str, per_genre: int, seed: int, mislabelled=False):
    """Synthetic 'embeddings' with an artist effect, as real ones have: each track sits at its genre's centre plus
    an offset of its own, its windows close around it; `mislabelled` names each track after the next genre (another
    dataset's convention gone wrong)."""
    rng = np.random.default_rng(seed)
    out, embeddings = [], {}
    for g, genre in enumerate(GENRES):
        for i in range(per_genre):
            path = Path(f"/{source}/{genre}.{i:05d}.wav")
            out.append(Track(path, GENRES[(g + 1) % len(GENRES)] if mislabelled else genre, f"{source}:{genre}.{i}",
                             source))
            artist = CENTRES[g] + 1.5 * rng.normal(size=16)
            embeddings[str(path.resolve())] = artist + 0.3 * rng.normal(size=(8, 16))
    return out, embeddings


def group(track: Track) -> int:
    return int(track.recording.rsplit(".", 1)[1]) % 3


def test_every_genre_weighs_the_same_and_the_others_take_their_share_where_they_have_the_genre():
    y = np.array([0, 0, 0, 1, 2, 2])
    y_extra = np.array([0, 2, 2, 2, 2])  # no genre 1 among the others
    ours, theirs = genre_weights(y, y_extra, 3, 0.25)
    totals = [ours[y == g].sum() + theirs[y_extra == g].sum() for g in range(3)]
    np.testing.assert_allclose(totals, [2.0, 2.0, 2.0])  # len(y) / genres each, as class_weight="balanced"
    assert theirs[y_extra == 0].sum() == pytest.approx(0.25 * totals[0])
    assert ours[y == 1].sum() == pytest.approx(totals[1])  # a genre the others lack stays ours alone
    ours, theirs = genre_weights(y, y_extra, 3, 0.0)
    from sklearn.utils.class_weight import compute_sample_weight

    np.testing.assert_allclose(ours, compute_sample_weight("balanced", y))
    assert not theirs.any()


def test_share_zero_is_the_balanced_head_and_no_others_leave_it_as_it_was():
    ours, embeddings = tracks("gtzan", 6, seed=1)
    head, share = fit_head_with_extra(ours, [], embeddings, GENRES, group)
    assert share == 0.0
    alone = fit_head(ours, embeddings, GENRES, group=group, grid=ARTIST_HEAD_C)
    x = np.concatenate(list(embeddings.values()))
    np.testing.assert_allclose(head.predict_proba(x), alone.predict_proba(x))


def test_recordings_of_the_same_genres_get_a_share_and_mislabelled_ones_none():
    ours, embeddings = tracks("gtzan", 3, seed=SEED)  # few, noisy recordings of our own
    clean, clean_embeddings = tracks("extra", 20, seed=SEED + 1)
    _, share = fit_head_with_extra(ours, clean, embeddings | clean_embeddings, GENRES, group)
    assert share > 0
    wrong, wrong_embeddings = tracks("extra", 20, seed=SEED + 1, mislabelled=True)
    _, share = fit_head_with_extra(ours, wrong, embeddings | wrong_embeddings, GENRES, group)
    assert share == 0.0


def test_the_distil_extra_teacher_is_that_head_cross_fitted_and_only_gtzan_labels_teach_the_student():
    from train.train import RECIPES, attach_soft_targets

    ours, embeddings = tracks("gtzan", 3, seed=SEED)
    clean, clean_embeddings = tracks("extra", 20, seed=SEED + 1)
    pool = Track(Path("/pool/a.ogg"), "", "pool:a", "pool", own_label=False)
    embeddings |= clean_embeddings | {str(pool.path.resolve()): np.random.default_rng(2).normal(size=(5, 16))}
    head = attach_soft_targets(ours + clean + [pool], embeddings, GENRES, RECIPES["distil-extra"], seed=0, group=group)
    expected, share = fit_head_with_extra(ours, clean, embeddings, GENRES, group)
    assert share > 0  # the other datasets' labels do reach the teacher
    x = np.concatenate(list(embeddings.values()))
    np.testing.assert_allclose(head.predict_proba(x), expected.predict_proba(x))
    assert [t.own_label for t in ours + clean + [pool]] == [True] * len(ours) + [False] * (len(clean) + 1)
    np.testing.assert_allclose(pool.soft, head.predict_proba(embeddings[str(pool.path.resolve())]), rtol=1e-5)
    for t in ours + clean:  # from heads that did not see them
        assert not np.allclose(t.soft, head.predict_proba(embeddings[str(t.path.resolve())]), rtol=1e-3)
