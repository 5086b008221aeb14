"""The paper's three figures, each one command that writes a PNG into docs/.

    python -m train.figures confusion --report train/runs/best.json
    python -m train.figures analyses --data ../shared/data/gtzan --data ../shared/data/extra \
        --split ../shared/data/gtzan/splits

`confusion` draws the cross-validated confusion matrices (whole tracks and 2-3 s clips) of a training report, and
writes their counts beside it as JSON.
`analyses` trains the network on the fault-filtered train list (artist-disjoint from the other two, which validate
and test; or loads `--weights` trained that way), then
- estimates the filters of the second pooling layer by Lasso regression of each unit's activation on its receptive
  field in the input (3-s segments with 10 % overlap), drawn as mel x time images;
- projects test windows on three LDA components fitted on training windows, raw log-mel against the last hidden
  layer, and measures how separable each space is by a linear classifier's test accuracy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from streamgenre.audio import WINDOW_FRAMES  # noqa: E402
from train.data import GTZAN_GENRES, Track, artist_folds, find_tracks, load_features  # noqa: E402
from train.net import PaperCNN  # noqa: E402

DOCS = Path("docs")
# receptive field of a unit (i, j) of the second pooling layer in the input: rows 4i-3 .. 4i+6, cols 16j-9 .. 16j+24
RF_ROWS, RF_COLS = 10, 34
SEGMENT_STEP = int(WINDOW_FRAMES * 0.9)  # 10 % overlap, as the paper


def confusion(report_file: Path, out: Path) -> None:
    report = json.loads(report_file.read_text())
    cv, genres = report["cv"], report["genres"]
    kinds = [k for k in ("tracks", "clips") if cv["accuracy"][k]["n"]]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 5.8))
    for ax, kind in zip(np.atleast_1d(axes), kinds):
        m = np.array(cv["confusion"][kind], float)
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(genres)):
            for j in range(len(genres)):
                ax.text(j, i, f"{100 * m[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(genres)), genres, rotation=60)
        ax.set_yticks(range(len(genres)), genres)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = cv["accuracy"][kind]
        ax.set_title(f"{kind}: {100 * acc['accuracy']:.1f} % of {acc['n']}")
    protocol = "artists never heard" if cv.get("protocol", "").startswith("artist-disjoint") else \
        "folds by recording, sharing artists"
    fig.suptitle(f"Cross-validated on {protocol}: recipe '{report['recipe']['name']}' (% of each true genre)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    counts = {"genres": genres, "recipe": report["recipe"]["name"], "protocol": cv.get("protocol"),
              "accuracy": cv["accuracy"],
              "confusion": {k: cv["confusion"][k] for k in kinds}, "rows": "true genre", "columns": "predicted"}
    out.with_suffix(".json").write_text(json.dumps(counts, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")


def list_split(tracks: list[Track], split_dir: Path) -> tuple[list[Track], list[Track], list[Track]]:
    """Train, validation and test from the fault-filtered lists (artist-disjoint); recordings in no list only train.
    The train list trains; of the other two, the one holding more full tracks here tests (the analyses need whole
    tracks: of the 100 in ../shared the valid list holds 49, the test list 4) and the other validates."""
    others = artist_folds(split_dir)[1:]
    full = [sum(t.recording in fold and not t.is_excerpt for t in tracks) for fold in others]
    valid, test = others if full[1] >= full[0] else others[::-1]
    return ([t for t in tracks if t.recording not in valid | test], [t for t in tracks if t.recording in valid],
            [t for t in tracks if t.recording in test])


def segments(tracks: list[Track], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive windows of the full tracks with the given step, and their genre labels."""
    xs, ys = [], []
    for t in tracks:
        if t.is_excerpt or t.genre not in GTZAN_GENRES:
            continue
        for s in range(0, t.mel.shape[1] - WINDOW_FRAMES + 1, step):
            xs.append(t.mel[:, s : s + WINDOW_FRAMES])
            ys.append(GTZAN_GENRES.index(t.genre))
    return np.stack(xs), np.array(ys)


def activations(net: PaperCNN, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Second pooling layer (N, 64, 16, 16) and last hidden layer (N, 32) for windows x."""
    pools, hidden = [], []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            f = net.features(torch.from_numpy(x[i : i + 128])[:, None])
            pools.append(f.numpy())
            hidden.append(net.hidden(f).numpy())
    return np.concatenate(pools), np.concatenate(hidden)


def lasso_filters(net: PaperCNN, x: np.ndarray, out: Path, units: int = 16) -> None:
    from sklearn.linear_model import Lasso

    pool, _ = activations(net, x)
    positions = [(i, j) for i in range(3, 13, 3) for j in range(3, 13, 3)]  # receptive fields inside the input
    patches = np.concatenate([x[:, 4 * i - 3 : 4 * i + 7, 16 * j - 9 : 16 * j + 25].reshape(len(x), -1)
                              for i, j in positions])
    patches = (patches - patches.mean(0)) / (patches.std(0) + 1e-6)
    channels = np.argsort(pool.var(axis=(0, 2, 3)))[::-1][:units]
    fig, axes = plt.subplots(4, units // 4, figsize=(12, 6.5))
    for ax, c in zip(axes.flat, channels):
        target = np.concatenate([pool[:, c, i, j] for i, j in positions])
        coef = Lasso(alpha=0.01 * target.std(), max_iter=2000).fit(patches, target).coef_
        limit = np.abs(coef).max() or 1.0
        ax.imshow(coef.reshape(RF_ROWS, RF_COLS), origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit,
                  vmax=limit)
        ax.set_title(f"unit {c}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.supxlabel(f"time ({RF_COLS} frames, {RF_COLS * 11.6:.0f} ms)")
    fig.supylabel(f"mel band ({RF_ROWS} bands)")
    fig.suptitle("Filters of the second pooling layer, estimated by Lasso regression (red: excites, blue: inhibits)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def lda_projection(net: PaperCNN, train: tuple, test: tuple, out: Path) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression

    (x_train, y_train), (x_test, y_test) = train, test
    spaces = {"raw log-mel": (x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)),
              "last hidden layer": (activations(net, x_train)[1], activations(net, x_test)[1])}
    fig = plt.figure(figsize=(15, 5))
    separability = {}
    for k, (name, (a, b)) in enumerate(spaces.items()):
        if a.shape[1] > 256:  # LDA in 16384 dimensions from a few thousand windows: reduce first
            pca = PCA(256, random_state=0).fit(a)
            a, b = pca.transform(a), pca.transform(b)
        lda = LinearDiscriminantAnalysis(n_components=3).fit(a, y_train)
        z = lda.transform(b)
        ax = fig.add_subplot(1, 3, k + 1, projection="3d")
        for g in np.unique(y_test):
            ax.scatter(*z[y_test == g].T, s=4, label=GTZAN_GENRES[g])
        ax.set_title(f"{name}: test windows on 3 LDA components")
        clf = LogisticRegression(max_iter=3000, C=0.1).fit(a, y_train)
        separability[name] = float(clf.score(b, y_test))
    ax.legend(markerscale=3, fontsize=7, loc="upper left", bbox_to_anchor=(1.05, 1))
    ax = fig.add_subplot(1, 3, 3)
    ax.bar(list(separability), [100 * v for v in separability.values()], color=["#999", "#2a6"])
    ax.axhline(10, color="k", lw=0.5, ls="--")
    ax.set_ylabel("linear classifier, test-window accuracy (%)")
    ax.set_title("How separable each space is")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}: {separability}")
    return separability


def analyses(args) -> None:
    from train.train import RECIPES, fit

    tracks = load_features([t for root in args.data for t in find_tracks(root)])
    train, valid, test = list_split(tracks, args.split)
    genres = list(GTZAN_GENRES)
    if args.weights and args.weights.exists():
        net = PaperCNN(len(genres))
        net.load_state_dict(torch.load(args.weights))
    else:
        recipe = RECIPES[args.recipe]
        recipe.max_epochs = args.max_epochs or recipe.max_epochs
        net = fit(train, valid, genres, recipe, args.seed)
        if args.weights:
            torch.save(net.state_dict(), args.weights)
    net.eval()
    x_test, y_test = segments(test, SEGMENT_STEP)
    lasso_filters(net, x_test, DOCS / "filters.png")
    lda_projection(net, segments(train, WINDOW_FRAMES // 2), (x_test, y_test), DOCS / "lda.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("confusion")
    c.add_argument("--report", type=Path, default=Path("train/runs/best.json"))
    a = sub.add_parser("analyses")
    a.add_argument("--data", action="append", required=True)
    a.add_argument("--recipe", default="best")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--max-epochs", type=int)
    a.add_argument("--split", type=Path, required=True, help="folder of the fault-filtered GTZAN lists")
    a.add_argument("--weights", type=Path, default=Path("train/runs/figures.pt"),
                   help="weights trained on the lists' split; trained and saved here if missing")
    args = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    if args.command == "confusion":
        confusion(args.report, DOCS / "confusion.png")
    else:
        analyses(args)


if __name__ == "__main__":
    main()
