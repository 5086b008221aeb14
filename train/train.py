"""Train the paper's CNN, cross-validate it by recording, and export the shipped model.

    python -m train.train --data ../shared/data/gtzan --data ../shared/data/extra --recipe best --folds 5 --final

Two recipes share everything but the regularisation:
- `paper`: the paper's protocol: random 3-s crops of the training tracks with their track's label, SGD, stop when
  validation accuracy stops improving.
- `best`: the same network and input, plus what makes it generalise from few recordings to unseen short clips:
  genre-balanced sampling, 2-3 s zero-padded crops like the clips it is judged on, random gain, frequency and time
  masks, a cosine learning-rate schedule and an exponential moving average of the weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamgenre.audio import N_MELS, SAMPLE_RATE, HOP_LENGTH, WINDOW_FRAMES
from train.data import GTZAN_GENRES, Track, find_tracks, group_folds, load_features, read_split
from train.evaluate import Scores, score
from train.net import PaperCNN

SHORT_FRAMES = (int(2.0 * SAMPLE_RATE / HOP_LENGTH), WINDOW_FRAMES)  # 2-3 s clips, like the excerpts


@dataclass
class Recipe:
    name: str
    max_epochs: int = 24
    patience: int = 6
    batch: int = 32
    lr: float = 0.01
    weight_decay: float = 1e-3  # the paper's L2 regularisation
    dropout: float = 0.5
    balance: bool = False
    short_crops: float = 0.0  # fraction of crops cut to 2-3 s and zero-padded
    gain_db: float = 0.0
    masks: bool = False
    cosine: bool = False
    ema: float = 0.0  # decay of the weight average evaluated and kept; 0: the raw weights


RECIPES = {
    "paper": Recipe("paper"),
    "best": Recipe("best", balance=True, short_crops=0.5, gain_db=6.0, masks=True, cosine=True, ema=0.98),
}


def crop(track: Track, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """One training window from a track: a random 3-s crop, or a random 2-3 s crop zero-padded like a short clip."""
    mel = track.mel
    start = int(rng.integers(0, mel.shape[1] - WINDOW_FRAMES + 1))
    window = mel[:, start : start + WINDOW_FRAMES].copy()
    if not track.is_excerpt and rng.random() < recipe.short_crops:
        window[:, int(rng.integers(*SHORT_FRAMES)) :] = 0.0
    if recipe.gain_db:
        gain = 10 ** (rng.uniform(-recipe.gain_db, recipe.gain_db) / 10)  # on power, before ln(1 + x)
        window = np.log1p(np.expm1(window) * gain)
    if recipe.masks:
        f, t = int(rng.integers(0, 9)), int(rng.integers(0, 25))
        f0, t0 = int(rng.integers(0, N_MELS - f + 1)), int(rng.integers(0, WINDOW_FRAMES - t + 1))
        window[f0 : f0 + f, :] = 0.0
        window[:, t0 : t0 + t] = 0.0
    return window


def sample_epoch(tracks: list[Track], recipe: Recipe, rng: np.random.Generator) -> list[Track]:
    """One epoch: as many draws as tracks; with `balance`, every genre equally likely whatever its track count."""
    if not recipe.balance:
        return [tracks[i] for i in rng.permutation(len(tracks))]
    counts: dict[str, int] = {}
    for t in tracks:
        counts[t.genre] = counts.get(t.genre, 0) + 1
    weights = np.array([1.0 / counts[t.genre] for t in tracks])
    return [tracks[i] for i in rng.choice(len(tracks), len(tracks), p=weights / weights.sum())]


def fit(train: list[Track], valid: list[Track], genres: list[str], recipe: Recipe, seed: int, log=print) -> PaperCNN:
    """Train until validation accuracy (windows and clips) stops improving; return the best weights."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PaperCNN(len(genres), recipe.dropout)
    average = copy.deepcopy(net) if recipe.ema else net
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    steps = recipe.max_epochs * -(-len(train) // recipe.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if recipe.cosine else None
    index = {g: i for i, g in enumerate(genres)}
    best, best_acc, stale = copy.deepcopy(average.state_dict()), -1.0, 0
    for epoch in range(recipe.max_epochs):
        net.train()
        started, order = time.time(), sample_epoch(train, recipe, rng)
        for b in range(0, len(order), recipe.batch):
            batch = order[b : b + recipe.batch]
            x = torch.from_numpy(np.stack([crop(t, recipe, rng) for t in batch])[:, None])
            y = torch.tensor([index[t.genre] for t in batch])
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
            if sched:
                sched.step()
            if recipe.ema:
                with torch.no_grad():
                    for a, p in zip(average.parameters(), net.parameters()):
                        a.lerp_(p, 1 - recipe.ema)
        acc = score(average, valid, genres).example_accuracy
        log(f"  epoch {epoch + 1}: valid accuracy {acc:.3f} ({time.time() - started:.0f} s)")
        if acc > best_acc:
            best, best_acc, stale = copy.deepcopy(average.state_dict()), acc, 0
        else:
            stale += 1
            if stale >= recipe.patience:
                break
    average.load_state_dict(best)
    return average.eval()


def inner_split(tracks: list[Track], seed: int) -> tuple[list[Track], list[Track]]:
    """Hold out about 15 % of the GTZAN recordings of a training set for early stopping."""
    fold = group_folds(tracks, 7, seed)[0]
    return [t for t in tracks if t.recording not in fold], [t for t in tracks if t.recording in fold]


def cross_validate(tracks, genres, recipe, folds, seed, log=print) -> dict:
    """k-fold cross-validation grouped by recording and stratified by genre; extra (non-GTZAN) audio only trains."""
    results = []
    for k, fold in enumerate(group_folds(tracks, folds, seed)):
        log(f"fold {k + 1}/{folds}: {len(fold)} recordings held out")
        rest = [t for t in tracks if t.recording not in fold]
        train, valid = inner_split(rest, seed + k)
        net = fit(train, valid, genres, recipe, seed + k, log)
        s = score(net, [t for t in tracks if t.recording in fold], genres)
        log(f"fold {k + 1}: {s.summary()}")
        results.append(s)
    return Scores.combine(results).to_json() | {"folds": [s.summary_json() for s in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a dataset root (repeatable)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="best")
    parser.add_argument("--folds", type=int, default=5, help="k for cross-validation; 0 skips it")
    parser.add_argument("--split", type=Path, help="folder of GTZAN split lists (train/valid/test_filtered.txt)")
    parser.add_argument("--final", action="store_true", help="then train on all data and export to --out")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("engines"))
    parser.add_argument("--report", type=Path, default=Path("train/runs"))
    args = parser.parse_args()

    recipe = RECIPES[args.recipe]
    if args.max_epochs:
        recipe.max_epochs = args.max_epochs
    tracks = load_features([t for root in args.data for t in find_tracks(root)])
    found = {t.genre for t in tracks}
    genres = [g for g in GTZAN_GENRES if g in found] + sorted(found - set(GTZAN_GENRES))
    print(f"{len(tracks)} tracks, {len({t.recording for t in tracks})} recordings, genres: {' '.join(genres)}")
    report = {"recipe": recipe.__dict__, "data": args.data, "seed": args.seed, "genres": genres}
    args.report.mkdir(parents=True, exist_ok=True)
    report_file = args.report / f"{recipe.name}.json"

    if args.split:
        parts = {name: read_split(args.split / f"{name}_filtered.txt") for name in ("train", "valid", "test")}
        net = fit([t for t in tracks if t.recording not in parts["valid"] | parts["test"]],
                  [t for t in tracks if t.recording in parts["valid"]], genres, recipe, args.seed)
        report["split"] = score(net, [t for t in tracks if t.recording in parts["test"]], genres).to_json()
        print(f"test split: {report['split']['summary']}")
    if args.folds:
        report["cv"] = cross_validate(tracks, genres, recipe, args.folds, args.seed)
        print(f"cross-validated: {report['cv']['summary']}")
    report_file.write_text(json.dumps(report, indent=1))
    if args.final:
        from train.export import export

        train, valid = inner_split(tracks, args.seed)
        net = fit(train, valid, genres, recipe, args.seed)
        torch.save(net.state_dict(), args.report / f"{recipe.name}.pt")  # for the figures
        export(net, genres, args.out, report)


if __name__ == "__main__":
    main()
