"""What `--every N` costs: how often the genre named with every Nth window equals the genre named with every window.

    python benchmarks/every_cost.py [--model paper|musicnn] [--every 1 2 3 4]

For each file, every window's probabilities once (the model's frontend and engine, as the daemon computes them);
then, for each N, the decision from every Nth window (each phase of the thinning: the daemon's is arbitrary) is
compared with the decision from all windows, over the whole file and over 15-s stretches (the running average's
default span, `last:10`). Agreement needs no labels, so it is measured on music no model here was trained on
(`../shared/data/music`); GTZAN's full tracks are added as a second row, marked: the shipped models heard them.
An accuracy moves by at most the disagreement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from streamgenre.audio import load_audio
from streamgenre.backends import create_engine
from streamgenre.frontend import log_mel, windows
from streamgenre.model import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STRETCH_SECONDS = 15.0


def agreement(probs: np.ndarray, every: int, span: int) -> tuple[list[bool], list[bool]]:
    """(whole-file, 15-s stretch) agreements of the every-Nth decision with the all-windows one, every phase."""
    whole, stretches = [], []
    for phase in range(every):
        whole.append(probs[phase::every].mean(0).argmax() == probs.mean(0).argmax())
    for start in range(0, len(probs) - span + 1):
        part = probs[start : start + span]
        for phase in range(every):
            stretches.append(part[phase::every].mean(0).argmax() == part.mean(0).argmax())
    return whole, stretches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paper")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()
    model = load_model(args.model)
    engine = create_engine(model, "onnx")
    span = int(round(STRETCH_SECONDS / model.params.step_seconds)) - 1  # windows whose audio lies in 15 s
    sets = {"unheard music (../shared/data/music)": sorted((SHARED / "music").glob("*.ogg")),
            "GTZAN full tracks (heard in training)": sorted((SHARED / "gtzan" / "full").glob("*.flac"))}
    print(f"model {model.name}; 15-s stretch = {span} windows; agreement with every window, all phases")
    print(f"{'audio':40} {'files':>5} " + " ".join(f"{'N=' + str(n) + ' track':>11} {'15 s':>6}" for n in args.every))
    for label, files in sets.items():
        if not files:
            print(f"{label:40} none here")
            continue
        probs = [engine.infer(windows(log_mel(load_audio(f, rate=model.params.sample_rate),
                                              model.params.sample_rate, model.params), model.params))
                 for f in files]
        row = f"{label:40} {len(files):5d} "
        for n in args.every:
            whole, stretch = zip(*(agreement(p, n, span) for p in probs if len(p) >= span))
            row += f"{100 * np.mean(sum(whole, [])):10.1f}% {100 * np.mean(sum(stretch, [])):5.1f}% "
        print(row)


if __name__ == "__main__":
    main()
