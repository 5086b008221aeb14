"""The teacher's genre head: a standardised logistic regression on musicnn's 456 embedding values, every genre
weighing the same. One head serves the distilling teacher (train.train) and the shipped musicnn model
(train.musicnn_model). Its settings are chosen by holding out groups of GTZAN recordings; with other datasets'
recordings (their own labels, another convention), those only ever train it, at a share of each genre's weight chosen
the same way: on artists never heard they lift musicnn from 68.6 to 74.5 % of clips."""

from __future__ import annotations

import numpy as np

from train.data import Track

HEAD_C = (1e-3, 1e-2, 1e-1)  # the distilling teacher's choices of C, validated by recording (the `distil` recipe)
ARTIST_HEAD_C = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)  # validated by artist list the choice falls on 1e-4 to 1e-3
EXTRA_SHARES = (0.0, 0.25, 0.5, 0.75)  # of a genre's weight in the head's loss given to other datasets' recordings


def by_recording(track: Track) -> str:
    return track.recording


def artist_group(folds: list[set[str]]):
    """A track's artist list (or -1: in none), for choosing settings on artists the head did not learn from."""
    return lambda track: next((k for k, fold in enumerate(folds) if track.recording in fold), -1)


def head_rows(tracks: list[Track], embeddings: dict, genres: list[str], group=by_recording):
    """Every window's embedding, its track's genre and its track's group: (x, y, groups)."""
    rows = [(e, genres.index(t.genre), group(t)) for t in tracks for e in embeddings[str(t.path.resolve())]]
    return np.stack([r[0] for r in rows]), np.array([r[1] for r in rows]), [r[2] for r in rows]


def fit_head(tracks: list[Track], embeddings: dict, genres: list[str], c: float | None = None,
             group=by_recording, grid: tuple = HEAD_C):
    """Balanced logistic regression on the standardised embeddings; C chosen from `grid` by cross-validation grouped
    by `group` unless given."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, groups = head_rows(tracks, embeddings, genres, group)
    head = make_pipeline(StandardScaler(), LogisticRegression(C=c or grid[0], class_weight="balanced", max_iter=2000))
    if c:
        return head.fit(x, y)
    return GridSearchCV(head, {"logisticregression__C": grid}, cv=GroupKFold(3)).fit(x, y, groups=groups).best_estimator_


def head_c(head) -> float:
    return head.get_params()["logisticregression__C"]


def genre_weights(y: np.ndarray, y_extra: np.ndarray, n_genres: int, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample weights of the GTZAN rows and the other datasets' rows: every genre weighs the same in all (as
    class_weight="balanced" does, which share 0 equals), and in a genre the other datasets have, `share` of its
    weight is theirs. Genres they lack (disco, metal in ../shared/data/extra) stay GTZAN's alone."""
    ours, theirs = np.bincount(y, minlength=n_genres), np.bincount(y_extra, minlength=n_genres)
    given = np.where(theirs > 0, share, 0.0)
    scale = len(y) / n_genres
    return scale * (1 - given[y]) / ours[y], scale * given[y_extra] / theirs.clip(1)[y_extra]


def weighted_head(x, y, x_extra, y_extra, n_genres: int, c: float, share: float):
    """The head on GTZAN's rows and the other datasets' rows at `share` of each genre they have."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight, weight_extra = genre_weights(y, y_extra, n_genres, share)
    used = weight_extra > 0
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(
        np.concatenate([x, x_extra[used]]), np.concatenate([y, y_extra[used]]),
        logisticregression__sample_weight=np.concatenate([weight, weight_extra[used]]))


def fit_head_with_extra(train: list[Track], extra: list[Track], embeddings: dict, genres: list[str], group,
                        shares: tuple = EXTRA_SHARES, c: float | None = None, share: float | None = None):
    """The head on GTZAN's recordings and, where given, other datasets' recordings with their own labels: C chosen
    on GTZAN alone, then the other datasets' share of each genre chosen by holding out each `group` of GTZAN in turn
    (the other recordings always train, never judge); either is kept where given. Returns (head, share)."""
    from sklearn.model_selection import GroupKFold

    if not extra:
        return fit_head(train, embeddings, genres, c, group=group, grid=ARTIST_HEAD_C), 0.0
    c = c or head_c(fit_head(train, embeddings, genres, group=group, grid=ARTIST_HEAD_C))
    x, y, groups = head_rows(train, embeddings, genres, group)
    x_extra, y_extra, _ = head_rows(extra, embeddings, genres)
    if share is None:
        splits = list(GroupKFold(3).split(x, y, groups))
        accuracy = {s: np.mean([weighted_head(x[fit], y[fit], x_extra, y_extra, len(genres), c, s).score(x[judge], y[judge])
                                for fit, judge in splits]) for s in shares}
        share = max(shares, key=lambda s: accuracy[s])  # the first (smallest) of equals
    return weighted_head(x, y, x_extra, y_extra, len(genres), c, share), share
