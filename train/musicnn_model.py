"""The second shipped model: musicnn's MSD_musicnn and MSD_vgg (the PyTorch port) with a linear genre head, exported
to ONNX as one graph (`engines/streamgenre-musicnn.onnx`), cross-validated on artists it never heard.

    python -m train.musicnn_model --data ../shared/data/gtzan --extra ../shared/data/extra \
        --split ../shared/data/gtzan/splits

Its input is what the runtime frontend computes from MUSICNN's parameters (16 kHz, 96 Slaney bands up to 8 kHz,
log10(1 + 10000 x), windows of 186 frames every 93: 2.99 s every 1.49 s), on the training tracks decoded by the same
decoder as the daemon's: the head learns on the numbers it is served. Only the head is trained (a standardised
logistic regression on the 456 embedding values, every genre weighing the same, C chosen by cross-validation grouped
by artist list inside the training side on the GTZAN recordings). With `--extra`, other datasets' recordings train it
too, with their own labels, at a share of each genre's weight chosen the same way (they never judge: GTZAN's label
convention is the one it is judged on); artist-disjoint, they lift clips of unseen artists from 68.6 to 74.5 %.
The scaler and the regression fold into one linear layer; the graph is checked against PyTorch and the regression to
1e-5. The card section it writes goes to the end of `engines/MODEL.md`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamgenre.audio import load_audio, pad_to_window
from streamgenre.frontend import Frontend
from streamgenre.model import SHIPPED, file_sha256
from train.data import CACHE, GTZAN_GENRES, Track, artist_folds, cache_key, cached, find_tracks, load_features
from train.evaluate import Scores, score_probabilities
from train.card import MUSICNN_HEADING, write_card
from train.export import OPSET, _table, export_onnx
from train.musicnn import MUSICNN, TeacherNet
from train.head import EXTRA_SHARES, artist_group, by_recording, fit_head_with_extra, head_c
from train.teacher import Teacher
from train.train import ARTIST_DISJOINT, training_machine


class MusicnnClassifier(nn.Module):
    """(N, 1, 96, 186) windows from the runtime frontend -> (N, genres) probabilities: both MSD networks, their
    embeddings side by side, one linear layer, softmax."""

    def __init__(self, teacher: TeacherNet, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.teacher = teacher
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        self.head.weight.data = torch.from_numpy(weight.astype(np.float32))
        self.head.bias.data = torch.from_numpy(bias.astype(np.float32))
        self.eval()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.teacher(mel[:, 0].transpose(1, 2))), 1)


def linear_head(head) -> tuple[np.ndarray, np.ndarray]:
    """The fitted StandardScaler + LogisticRegression as one (weight, bias): W (x - mean) / scale + b."""
    scaler, regression = head.named_steps["standardscaler"], head.named_steps["logisticregression"]
    weight = regression.coef_ / scaler.scale_
    return weight, regression.intercept_ - weight @ scaler.mean_


def musicnn_windows(path: Path) -> np.ndarray:
    """A file's windows for musicnn as the daemon computes them: (n, 96, 186), a short clip repeated to fill one."""
    audio = load_audio(path, rate=MUSICNN.sample_rate)
    return Frontend(MUSICNN).file_windows(pad_to_window(audio, MUSICNN.window_samples, MUSICNN.short_fill))


def embed(tracks: list[Track], teacher: Teacher, log=print) -> dict[str, np.ndarray]:
    """Each track's embedding at every window, (n, 456), by resolved path; cached per track."""
    out = {}
    for k, track in enumerate(tracks):
        def embedding() -> np.ndarray:
            embedded = teacher.embed(np.ascontiguousarray(musicnn_windows(track.path).transpose(0, 2, 1)))
            if k % 50 == 0:
                log(f"{k}/{len(tracks)} tracks embedded")
            return embedded

        name = f"musicnn-{MUSICNN.short_fill}-{cache_key(track.path)}.npy"  # a short clip's embedding depends on it
        out[str(track.path.resolve())] = cached(CACHE / name, embedding)
    return out


def cross_validate(tracks: list[Track], embeddings: dict, genres: list[str], folds: list[set[str]],
                   extra: list[Track] = (), log=print):
    """Each artist-disjoint list held out once; the head fitted on the other tracks (and the other datasets'
    recordings, which only train) only, its settings chosen by holding out each of the remaining artist groups (the
    two other lists, the recordings in none) in turn."""
    results, shares = [], []
    for k, fold in enumerate(folds):
        train, held = [t for t in tracks if t.recording not in fold], [t for t in tracks if t.recording in fold]
        head, share = fit_head_with_extra(train, list(extra), embeddings, genres, artist_group(folds))
        results.append(score_probabilities(held, genres, lambda t: head.predict_proba(embeddings[str(t.path.resolve())])))
        shares.append(share)
        log(f"fold {k + 1}: {len(held)} held out, {len(train)} train, other datasets' share {share}: "
            f"{results[-1].summary()}")
    return Scores.combine(results).to_json() | {"folds": [s.summary_json() for s in results], "extra_shares": shares,
                                                "protocol": ARTIST_DISJOINT}


def export(head, genres: list[str], net: TeacherNet, path: Path, embeddings: np.ndarray) -> None:
    """One ONNX graph; its head checked against the regression's own probabilities on real embeddings."""
    weight, bias = linear_head(head)
    model = MusicnnClassifier(net, weight, bias)
    with torch.no_grad():
        folded = torch.softmax(model.head(torch.from_numpy(embeddings)), 1).numpy()
    if not np.allclose(folded, head.predict_proba(embeddings), atol=1e-5):
        raise RuntimeError("the folded head differs from the regression")
    export_onnx(model, MUSICNN, genres, path, "musicnn MSD_musicnn + MSD_vgg embeddings (Pons & Serra 2019, ISC) "
                "with a linear genre head trained on GTZAN")


def card(path: Path, genres: list[str], cv: dict | None, head, tracks: int, extra: int, share: float,
         extra_roots: list[str]) -> str:
    lines = [
        MUSICNN_HEADING, "",
        f"`{path.name}`: musicnn's MSD_musicnn (penultimate layer, 200 values) and MSD_vgg (pool5, 256 values), "
        "pretrained on the Million Song Dataset's tags by Jordi Pons and Xavier Serra (Music Technology Group, "
        "Universitat Pompeu Fabra; https://github.com/jordipons/musicnn, ISC licence, reproduced in "
        "`engines/LICENSE-musicnn`), ported to PyTorch without TensorFlow (`train/musicnn.py`, equal to the "
        "TensorFlow original to 1e-4), with a linear genre head, exported as one ONNX graph (opset "
        f"{OPSET}, dynamic batch). Input `mel` (N, 1, 96, 186), output `probabilities` (N, {len(genres)}). "
        "Built by `python -m train.musicnn_model` (deterministic: only the head is fitted).", "",
        f"- sha256: `{file_sha256(path)}`",
        f"- genres, in output order: {', '.join(genres)}",
        f"- frontend (stored in the file and checked on load): `{json.dumps(MUSICNN.as_metadata())}`. A clip "
        "shorter than one window is repeated from its start to fill it (`short_fill`), as musicnn was trained, and "
        "the head learned on clips filled so (the same cross-validation with clips zero-padded, 2026-12-02: 69.4 % "
        "of clips, 62.1 % of windows, 65.6 % of tracks). musicnn's own "
        "extractor centres its frames (librosa's default); a stream has no start to centre on, so here, as for the "
        "paper model, frames are uncentred, and the head learned on exactly these windows.",
        f"- head: standardised logistic regression, every genre weighing the same (C = "
        f"{head_c(head)}, chosen by cross-validation grouped by artist list: "
        f"validation artists unheard) on the {tracks} GTZAN tracks here"
        + (f" and {extra} recordings of other datasets ({', '.join(f'`{r}`' for r in extra_roots)}) with their own "
           f"labels, given {share:.0%} of the weight of "
           "each genre they have (chosen the same way, among " + ", ".join(f"{s:.0%}" for s in EXTRA_SHARES) + ")"
           if extra else "") + ", folded into one linear layer",
        f"- built on {training_machine()}", "",
    ]
    if cv:
        lines += [
            "## musicnn cross-validated on artists it never heard", "",
            "Same folds as the paper model's (the three fault-filtered GTZAN lists); in each, the head is fitted on "
            "the GTZAN recordings outside the held-out list only" + (" and the other datasets' recordings (which "
            "never judge)" if extra else "") + ", its settings chosen by holding out in turn the other two "
            "lists and the recordings in no list (the MSD networks never saw GTZAN labels)"
            + (f"; the other datasets' share chosen per fold: {', '.join(f'{s:.0%}' for s in cv['extra_shares'])}"
               if extra else "") + ". Accuracy in %, per genre, and how many were held out:", "",
            _table(cv, genres, MUSICNN.short_fill), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a GTZAN root (its recordings train the head)")
    parser.add_argument("--extra", action="append", default=[], help="a root of other genre-labelled recordings "
                        "(repeatable): they train the head beside GTZAN's, never judge it")
    parser.add_argument("--split", type=Path, help="the fault-filtered lists: cross-validate on them first")
    parser.add_argument("--out", type=Path, default=Path("engines"))
    parser.add_argument("--report", type=Path, default=Path("train/runs/musicnn.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    tracks = [t for root in args.data for t in find_tracks(root) if t.recording.startswith("gtzan:")]
    load_features(tracks)  # the paper model's features tell clips from full tracks, as in its evaluation
    genres = [g for g in GTZAN_GENRES if g in {t.genre for t in tracks}]
    found = [t for root in args.extra for t in find_tracks(root)]
    extra = [t for t in found if t.genre in genres]
    if len(extra) < len(found):
        print(f"{len(found) - len(extra)} of the other recordings left out: their genres are not GTZAN's")
    teacher = Teacher()
    embeddings = embed(tracks + extra, teacher)
    cv = cross_validate(tracks, embeddings, genres, artist_folds(args.split), extra) if args.split else None
    if cv:
        print(f"cross-validated ({ARTIST_DISJOINT}): {cv['summary']}")
    group = artist_group(artist_folds(args.split)) if args.split else by_recording
    head, share = fit_head_with_extra(tracks, extra, embeddings, genres, group)
    path = args.out / SHIPPED["musicnn"]
    export(head, genres, teacher.net.cpu(), path, np.concatenate(list(embeddings.values())[:20]))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps({"genres": genres, "cv": cv, "tracks": len(tracks), "extra": len(extra),
                                       "extra_share": share}, indent=1))
    write_card(args.out / "MODEL.md", musicnn=card(path, genres, cv, head, len(tracks), len(extra), share,
                                                         args.extra))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and its section of {args.out / 'MODEL.md'}")


if __name__ == "__main__":
    main()
