"""Train the paper's CNN, cross-validate it on artists it never heard, and export the shipped model.

    python -m train.train --data ../shared/data/gtzan --data ../shared/data/extra --recipe distil \
        --teacher train/runs/teacher.npz --split ../shared/data/gtzan/splits --final

`--split` holds out each of the three fault-filtered GTZAN lists (artist-disjoint) once; `--folds K` without it
splits by recording, which shares artists between the sides and flatters the figures. The recipes share the network
and its input:
- `paper`: the paper's protocol: random 3-s crops of the training tracks with their track's label, SGD, stop when
  validation accuracy stops improving.
- `best`: the same network and input, plus what makes it generalise from few recordings to unseen short clips:
  genre-balanced sampling, 2-3 s zero-padded crops like the clips it is judged on, random gain, frequency and time
  masks, a cosine learning-rate schedule and an exponential moving average of the weights.
- `distil`: `best`, learning also from a pretrained teacher's soft predictions (knowledge distillation) at every
  window of every training track; needs `--teacher train/runs/teacher.npz` from `python -m train.teacher`. The
  teacher is musicnn's embeddings with a linear genre head fitted, in every fold, on that fold's GTZAN training
  recordings only (GTZAN's label convention, the one evaluated on). Each GTZAN track's soft targets come from a head
  that did not see it; the other audio is labelled by the teacher alone, its own labels unused.
- `distil-extra`: `distil` with a teacher's head made as `--model musicnn`'s is: it learns from the other datasets' labels
  too (on artists never heard that head names 74.5 % of clips against 68.6 % on GTZAN's labels alone).
- `distil-embedding`: `distil-extra`, and the student's hidden layer also learns to predict the teacher's whole
  embedding of each window through a linear map used in training only (feature distillation).
- `views`: `distil`, plus views of the training audio (mixes, speed, gain, EQ, 2-3 s cuts; train/views.py) that the
  teacher labels on exactly the audio the student hears.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamgenre.audio import N_MELS, SAMPLE_RATE, HOP_LENGTH, WINDOW_FRAMES
from train.data import GTZAN_GENRES, Track, artist_folds, find_tracks, group_folds, load_features, window_starts
from train.evaluate import Scores, score, score_probabilities
from train.head import artist_group, by_recording, fit_head, fit_head_with_extra, head_c
from train.net import PaperCNN
from train.pool import pool_pieces, pool_tracks
from train.views import cached_views

SHORT_FRAMES = (int(2.0 * SAMPLE_RATE / HOP_LENGTH), WINDOW_FRAMES)  # 2-3 s clips, like the excerpts
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # training runs on the GPU where there is one


@dataclass
class Recipe:
    name: str
    max_epochs: int = 24
    patience: int = 6
    min_epochs: int = 0  # no early stop before this many epochs
    optimizer: str = "sgd"  # or "adamw"
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
    distil: float = 0.0  # weight of the teacher's soft targets in the loss; 0: hard labels only
    temperature: float = 2.0
    head_gtzan_only: bool = False  # fit the teacher's head on GTZAN recordings only; it labels the rest
    head_extra: bool = False  # the teacher's head learns from the other datasets' labels too (train/head.py)
    views: int = 0  # augmented views of the training audio, each labelled by the teacher (train/views.py)
    embedding: float = 0.0  # weight of predicting the teacher's embedding from the hidden layer (training only)


RECIPES = {
    "paper": Recipe("paper"),
    "best": Recipe("best", balance=True, short_crops=0.5, gain_db=6.0, masks=True, cosine=True, ema=0.98),
    # temperature 1: the linear head's probabilities are soft already (mean top probability 0.67 on held-out windows);
    # a higher rate, lighter dropout and no early stop: soft targets regularise, and learning is what is short here.
    # 3-fold CV by recording (folds sharing artists), held-out clips / windows: 30 epochs 42 / 46 %, 90: 53 / 59 %,
    # 150: 56 / 67 %, 250: 59 / 70 %, 350: 59 / 71 %. An epoch takes 0.3 s on an H200, 20 s on 2 CPU cores.
    "distil": Recipe("distil", max_epochs=350, min_epochs=350, lr=0.03, dropout=0.3, balance=True, short_crops=0.5,
                     gain_db=6.0, masks=True, cosine=True, ema=0.98, distil=0.7, temperature=1.0,
                     head_gtzan_only=True),
    # `distil` on the clean tracks plus teacher-labelled views (train/views.py), which carry their own gain, EQ, speed
    # and mixes; an epoch is every track and view once, so far fewer epochs. Artist-disjoint, 10 epochs: 33.5 % of
    # clips (distil with as many examples, first two folds: 41.5 / 38.1 % against 33.9 / 28.6 %); the long schedule
    # is still to be run.
    # `distil` with a teacher's head made as `--model musicnn`'s is: it learns from the other datasets' recordings too, with
    # their own labels at a share of each genre, and C and the share are chosen on held-out training artists.
    "distil-extra": Recipe("distil-extra", max_epochs=350, min_epochs=350, lr=0.03, dropout=0.3, balance=True,
                           short_crops=0.5, gain_db=6.0, masks=True, cosine=True, ema=0.98, distil=0.7,
                           temperature=1.0, head_extra=True),
    "views": Recipe("views", max_epochs=10, min_epochs=10, lr=0.03, dropout=0.3, balance=True, short_crops=0.5,
                    masks=True, cosine=True, ema=0.98, distil=0.7, temperature=1.0, head_gtzan_only=True, views=8000),
}
# `distil-extra`, and the student's 32 hidden values also learn to predict the teacher's whole 456-value embedding of
# the window through a linear map used in training only (feature distillation): far more to learn from per window than
# ten probabilities, for a student that memorises its few recordings. Weight 1: untuned.
RECIPES["distil-embedding"] = replace(RECIPES["distil-extra"], name="distil-embedding", embedding=1.0)
ARTIST_DISJOINT = "artist-disjoint: the three fault-filtered GTZAN lists as folds"
BY_RECORDING = "by recording: the folds share artists, so the figures flatter the model"


def draw(track: Track, recipe: Recipe, genres: list[str], rng: np.random.Generator) -> tuple[int, np.ndarray, int]:
    """Where to crop a track, the target there and which teacher window it is: the teacher's soft probabilities at
    one of the windows it labelled when distilling, else a random position, the one-hot label and -1."""
    if recipe.distil and track.soft is not None:
        k = int(rng.integers(len(track.soft)))
        return window_starts(track.mel.shape[1])[k], track.soft[k], k
    start = int(rng.integers(0, track.mel.shape[1] - WINDOW_FRAMES + 1))
    return start, np.eye(len(genres))[genres.index(track.genre)], -1


def crop(track: Track, start: int, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """One training window from a track at `start`: 3 s, or 2-3 s zero-padded like a short clip; augmented."""
    window = track.mel[:, start : start + WINDOW_FRAMES].copy()
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


def fit(train: list[Track], valid: list[Track], genres: list[str], recipe: Recipe, seed: int, log=print,
        checkpoint: Path | None = None) -> PaperCNN:
    """Train until validation accuracy (windows and clips) stops improving; return the best weights, on the CPU.
    With `checkpoint`, everything the next epoch depends on (weights, averages, optimiser, schedule, both random
    generators, the best so far) is saved there after every epoch, and a run that finds it resumes from it: an
    interrupted run ends with the weights an uninterrupted one gives."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PaperCNN(len(genres), recipe.dropout).to(DEVICE, memory_format=torch.channels_last)  # 20 % faster on CPU
    average = copy.deepcopy(net) if recipe.ema else net
    probe = embedding_probe(train, net).to(DEVICE) if recipe.embedding else None
    learnt = list(net.parameters()) + (list(probe.parameters()) if probe else [])
    if recipe.optimizer == "adamw":
        opt = torch.optim.AdamW(learnt, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(learnt, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    steps = recipe.max_epochs * -(-len(train) // recipe.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if recipe.cosine else None
    index = {g: i for i, g in enumerate(genres)}
    best, best_acc, stale, first, finished = copy.deepcopy(average.state_dict()), -1.0, 0, 0, False
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        net.load_state_dict(state["net"])
        average.load_state_dict(state["average"])
        if probe:
            probe.load_state_dict(state["probe"])
        opt.load_state_dict(state["optimizer"])
        if sched:
            sched.load_state_dict(state["schedule"])
        rng.bit_generator.state, first = state["numpy_random"], state["epochs"]
        torch.set_rng_state(state["torch_random"])
        best, best_acc, stale, finished = state["best"], state["best_accuracy"], state["stale"], state["finished"]
        log(f"  resumed from {checkpoint} after epoch {first}")
    for epoch in range(first, recipe.max_epochs):
        if finished:
            break
        net.train()
        started, order = time.time(), sample_epoch(train, recipe, rng)
        for b in range(0, len(order), recipe.batch):
            batch = order[b : b + recipe.batch]
            starts, targets, windows_drawn = zip(*(draw(t, recipe, genres, rng) for t in batch))
            x = torch.from_numpy(np.stack([crop(t, s, recipe, rng) for t, s in zip(batch, starts)])[:, None])
            x = x.to(DEVICE, memory_format=torch.channels_last)
            y = torch.tensor([index[t.genre] for t in batch], device=DEVICE)
            own = torch.tensor([float(t.own_label) for t in batch], device=DEVICE)
            soft = torch.from_numpy(np.stack(targets)).float().to(DEVICE)
            opt.zero_grad()
            hidden = net.hidden(net.features(x))
            objective = loss(net.classifier(hidden), y, soft, recipe, own)
            if probe:
                objective = objective + recipe.embedding * embedding_loss(probe(hidden), batch, windows_drawn)
            objective.backward()
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
            finished = stale >= recipe.patience and epoch + 1 >= recipe.min_epochs
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"net": net.state_dict(), "average": average.state_dict(),
                                         "probe": probe.state_dict() if probe else None,
                                         "optimizer": opt.state_dict(), "schedule": sched.state_dict() if sched else None,
                                         "numpy_random": rng.bit_generator.state, "torch_random": torch.get_rng_state(),
                                         "epochs": epoch + 1, "best": best, "best_accuracy": best_acc, "stale": stale,
                                         "finished": finished})
    average.load_state_dict(best)
    return average.cpu().eval()


def embedding_probe(train: list[Track], net: PaperCNN) -> torch.nn.Linear:
    """The training-only linear map from the student's hidden layer to the teacher's embedding."""
    size = next(t.embedding.shape[1] for t in train if t.embedding is not None)
    return torch.nn.Linear(net.classifier[-1].in_features, size)


def embedding_loss(predicted: torch.Tensor, batch: list[Track], windows_drawn) -> torch.Tensor:
    """Mean squared error against the teacher's standardised embedding of each drawn window, over the examples that
    have one (views and the teacher-less draws have none)."""
    have = [i for i, (t, k) in enumerate(zip(batch, windows_drawn)) if t.embedding is not None and k >= 0]
    if not have:
        return predicted.sum() * 0.0
    target = torch.from_numpy(np.stack([batch[i].embedding[windows_drawn[i]] for i in have])).float()
    return F.mse_loss(predicted[have], target.to(predicted.device), reduction="sum") / len(batch) / target.shape[1]


def save_checkpoint(path: Path, state: dict) -> None:
    """Written whole or not at all: a kill during the write leaves the previous epoch's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def training_machine() -> str:
    """Where the weights are trained, for the model card."""
    return torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"


def loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor, recipe: Recipe,
         own_label: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on the labels, mixed with the distillation loss on the teacher's softened targets; examples
    whose own_label is 0 learn from the teacher alone."""
    if not recipe.distil:
        return F.cross_entropy(logits, labels)
    hard = F.cross_entropy(logits, labels, reduction="none")
    if own_label is not None:
        hard = hard * own_label
    t = recipe.temperature
    distilled = F.kl_div(F.log_softmax(logits / t, 1), soft, reduction="none").sum(1) * t * t
    return (recipe.distil * distilled + (1 - recipe.distil) * hard).mean()


def load_teacher(path: Path) -> dict[str, np.ndarray]:
    """Embeddings written by `python -m train.teacher`, by resolved track path."""
    with np.load(path) as f:
        return {p: f[f"e{i}"] for i, p in enumerate(f["paths"])}


def attach_soft_targets(train: list[Track], embeddings: dict, genres: list[str], recipe: Recipe, seed: int,
                        group=by_recording):
    """Soft targets for every training track, and the teacher's head. With `head_gtzan_only` the head learns from
    the GTZAN recordings only (all of them where there are none); with `head_extra` also from the other datasets'
    recordings, at a share of each genre they have, C and share chosen by holding out each `group` of GTZAN (artist
    lists where known). The head labels the tracks it did not learn from (the pool). A track the head learns from
    gets its soft targets from a head fitted on the other recordings (cross-fitted, so no track learns from the
    teacher's memory of it). Only GTZAN's own labels teach the student: the others are another convention."""
    gtzan = [t for t in train if t.recording.startswith("gtzan:")]
    if recipe.head_extra:
        extra = [t for t in train if not t.recording.startswith(("gtzan:", "pool:")) and t.genre in genres]
        head, share = fit_head_with_extra(gtzan, extra, embeddings, genres, group)
        labelled = gtzan + extra
        for t in extra:
            t.own_label = False

        def refit(tracks: list[Track]):
            return fit_head_with_extra([t for t in tracks if t.recording.startswith("gtzan:")],
                                       [t for t in tracks if not t.recording.startswith("gtzan:")],
                                       embeddings, genres, group, c=head_c(head), share=share)[0]
    else:
        labelled = (gtzan if recipe.head_gtzan_only else []) or train
        head = fit_head(labelled, embeddings, genres)

        def refit(tracks: list[Track]):
            return fit_head(tracks, embeddings, genres, head_c(head))
    for part in group_folds(labelled, 5, seed, gtzan_only=False):
        fold_head = refit([t for t in labelled if t.recording not in part])
        for t in labelled:
            if t.recording in part:
                t.soft = soften(fold_head.predict_proba(embeddings[str(t.path.resolve())]), recipe.temperature)
    chosen = {id(t) for t in labelled}
    for t in train:
        if id(t) not in chosen:
            t.soft = soften(head.predict_proba(embeddings[str(t.path.resolve())]), recipe.temperature)
            t.own_label = False
    if recipe.embedding:
        attach_embeddings(train, embeddings)
    return head


def attach_embeddings(train: list[Track], embeddings: dict) -> None:
    """Each training track's teacher embedding at every window, standardised per value over these tracks' windows
    (no held-out audio enters the statistics)."""
    own = [embeddings[str(t.path.resolve())] for t in train]
    every = np.concatenate(own)
    mean, std = every.mean(0), every.std(0) + 1e-6
    for t, values in zip(train, own):
        t.embedding = ((values - mean) / std).astype(np.float32)


def with_views(views, train: list[Track], head, recipe: Recipe) -> list[Track]:
    """The views (train/views.py) made only of these training tracks' recordings, labelled by the teacher's head."""
    if views is None:
        return []
    return views.training_views({t.recording for t in train},
                                lambda e: soften(head.predict_proba(e), recipe.temperature))


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The head's probabilities at a temperature: softmax(log p / T)."""
    return torch.softmax(torch.from_numpy(np.log(probabilities + 1e-12)) / temperature, 1).numpy()


def teacher_scores(head, tracks: list[Track], embeddings: dict, genres: list[str]) -> Scores:
    return score_probabilities(tracks, genres, lambda t: head.predict_proba(embeddings[str(t.path.resolve())]))


def inner_split(tracks: list[Track], seed: int, among: set[str] | None = None) -> tuple[list[Track], list[Track]]:
    """Hold out about 15 % of the GTZAN recordings of a training set (of those in `among`, where given) for choosing
    the weights."""
    fold = group_folds([t for t in tracks if among is None or t.recording in among], 7, seed)[0]
    return [t for t in tracks if t.recording not in fold], [t for t in tracks if t.recording in fold]


def fold_sides(tracks: list[Track], folds: list[set[str]], seed: int):
    """(training, validation, held-out) tracks for each fold held out in turn: validation recordings come from the
    other folds only (with artist folds: from the training artists), and recordings in no fold only ever train."""
    for k, fold in enumerate(folds):
        rest, held = [t for t in tracks if t.recording not in fold], [t for t in tracks if t.recording in fold]
        train, valid = inner_split(rest, seed + k, among=set().union(*folds[:k], *folds[k + 1 :]))
        yield train, valid, held


def cross_validate(tracks, genres, recipe, folds: list[set[str]], seed, teacher=None, views=None, log=print,
                   checkpoints: Path | None = None, only: int | None = None) -> dict:
    """Cross-validation over the given folds of recordings; non-GTZAN audio only trains. When distilling, the teacher
    is fitted on each fold's training side too and scored beside the student. With `only` (1-based), just that fold,
    on the same sides and seed as in the whole run: a long run can be split across sessions or machines."""
    results, teachers = [], []
    for k, (train, valid, held) in enumerate(fold_sides(tracks, folds, seed)):
        if only is not None and k + 1 != only:
            continue
        log(f"fold {k + 1}/{len(folds)}: {len(held)} tracks held out, {len(valid)} validate, {len(train)} train")
        if teacher is not None:
            head = attach_soft_targets(train + valid, teacher, genres, recipe, seed + k, artist_group(folds))
            teachers.append(teacher_scores(head, held, teacher, genres))
            log(f"fold {k + 1} teacher: {teachers[-1].summary()}")
            train = pool_pieces(train, genres) + with_views(views, train, head, recipe)
        net = fit(train, valid, genres, recipe, seed + k, log,
                  checkpoints / f"{recipe.name}-fold{k + 1}.pt" if checkpoints else None)
        results.append(score(net, held, genres))
        log(f"fold {k + 1}: {results[-1].summary()}")
    report = Scores.combine(results).to_json() | {"folds": [s.summary_json() for s in results]}
    if teachers:
        report["teacher"] = Scores.combine(teachers).to_json()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="a dataset root (repeatable)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="best")
    parser.add_argument("--split", type=Path, help="folder of the fault-filtered GTZAN lists (train/valid/"
                        "test_filtered.txt): cross-validate on them, artist-disjoint (what every reported figure is)")
    parser.add_argument("--folds", type=int, default=5, help="without --split: k folds by recording (they share "
                        "artists, so they flatter the model); 0 skips cross-validation")
    parser.add_argument("--fold", type=int, help="cross-validate on this fold alone (1-based), as in the whole run")
    parser.add_argument("--final", action="store_true", help="then train on all data and export to --out")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--teacher", type=Path, help="teacher embeddings (python -m train.teacher), for `distil`")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("engines"))
    parser.add_argument("--report", type=Path, default=Path("train/runs"))
    parser.add_argument("--pool", type=Path, help="the labelled pool (python -m train.pool): its files train only")
    parser.add_argument("--checkpoint", type=Path, help="a folder: checkpoint every epoch there, and resume from it")
    args = parser.parse_args()

    if args.fold is not None and not args.folds:
        parser.error("--fold needs cross-validation (--split, or --folds K)")
    recipe = RECIPES[args.recipe]
    if args.max_epochs:
        recipe.max_epochs = args.max_epochs
    if recipe.distil and not args.teacher:
        parser.error("the distil recipe needs --teacher (write it with python -m train.teacher)")
    teacher = load_teacher(args.teacher) if recipe.distil else None
    tracks = load_features([t for root in args.data for t in find_tracks(root)])
    views = cached_views(tracks, recipe.views, args.seed) if recipe.views else None
    found = {t.genre for t in tracks}
    genres = [g for g in GTZAN_GENRES if g in found] + sorted(found - set(GTZAN_GENRES))
    if args.pool:
        if teacher is None:
            parser.error("--pool needs a distilling recipe: the teacher labels the pool")
        pool, embeddings = pool_tracks(args.pool)
        tracks, teacher = tracks + load_features(pool), teacher | embeddings
        hours = sum(t.mel.shape[1] for t in pool) * HOP_LENGTH / SAMPLE_RATE / 3600
        print(f"pool: {len(pool)} labelled files ({hours:.1f} h) from {args.pool}, training only")
    print(f"{len(tracks)} tracks, {len({t.recording for t in tracks})} recordings, genres: {' '.join(genres)}")
    report = {"recipe": recipe.__dict__, "data": args.data, "seed": args.seed, "genres": genres,
              "machine": training_machine()}
    if args.pool:
        report["pool"] = {"folder": str(args.pool), "files": len(pool), "hours": round(hours, 2)}
    args.report.mkdir(parents=True, exist_ok=True)
    report_file = args.report / (f"{recipe.name}-fold{args.fold}.json" if args.fold else f"{recipe.name}.json")

    if args.folds:
        if args.split:
            folds, protocol = artist_folds(args.split), ARTIST_DISJOINT
        else:
            folds, protocol = group_folds(tracks, args.folds, args.seed), BY_RECORDING
        if args.fold is not None and not 1 <= args.fold <= len(folds):
            parser.error(f"--fold {args.fold}: the folds are 1 to {len(folds)}")
        report["cv"] = cross_validate(tracks, genres, recipe, folds, args.seed, teacher, views,
                                      checkpoints=args.checkpoint, only=args.fold) | {"protocol": protocol}
        print(f"cross-validated ({protocol}): {report['cv']['summary']}")
    report_file.write_text(json.dumps(report, indent=1))
    if args.final:
        from train.export import export

        train, valid = inner_split(tracks, args.seed)
        if teacher is not None:
            group = artist_group(artist_folds(args.split)) if args.split else by_recording
            head = attach_soft_targets(tracks, teacher, genres, recipe, args.seed, group)
            train = pool_pieces(train, genres) + with_views(views, train, head, recipe)
        net = fit(train, valid, genres, recipe, args.seed,
                  checkpoint=args.checkpoint / f"{recipe.name}-final.pt" if args.checkpoint else None)
        torch.save(net.state_dict(), args.report / f"{recipe.name}.pt")  # for the figures
        export(net, genres, args.out, report)


if __name__ == "__main__":
    main()
