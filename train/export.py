"""Export a trained network to one ONNX file carrying its frontend parameters, and write its model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from streamgenre.frontend import PAPER, FrontendParams
from streamgenre.model import SHIPPED, file_sha256
from train.card import write_card
from train.net import PaperCNN, WithSoftmax

OPSET = 17  # parsed by TensorRT 8.6 and later


def export_onnx(model: torch.nn.Module, params: FrontendParams, genres: list[str], path: Path,
                description: str = "") -> None:
    """One self-contained file carrying its frontend parameters, dynamic batch, input `mel` (N, 1, n_mels,
    window_frames), output `probabilities` (N, genres); checked against PyTorch to 1e-5."""
    model = model.eval()
    example = torch.randn(3, 1, params.n_mels, params.window_frames).abs()
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=OPSET,
        input_names=["mel"], output_names=["probabilities"],
        dynamic_axes={"mel": {0: "batch"}, "probabilities": {0: "batch"}},
    )
    proto = onnx.load(str(path))
    meta = {"streamgenre.frontend": json.dumps(params.as_metadata()), "streamgenre.genres": json.dumps(genres),
            "streamgenre.description": description}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"mel": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    if not np.allclose(got, want, atol=1e-5):
        raise RuntimeError(f"ONNX export differs from PyTorch by {np.abs(got - want).max():.2e}")


def export(net: PaperCNN, genres: list[str], out: Path, report: dict) -> Path:
    """Write the paper model (`out/streamgenre-cnn.onnx`) and `out/MODEL.md`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / SHIPPED["paper"]
    recipe = report["recipe"]["name"]
    export_onnx(WithSoftmax(net), PAPER, genres, path,
                f"Dong 2018 CNN, recipe '{recipe}', trained on {_data_names(report)}")
    write_card(out / "MODEL.md", paper=model_card(path, genres, report))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {out / 'MODEL.md'}")
    return path


def _data_names(report: dict) -> str:
    return ", ".join(Path(d).name for d in report["data"])


def _table(result: dict, genres: list[str], fill: str = "zeros") -> str:
    """Accuracy on clips, windows and tracks, then per genre: % right and, below, how many were held out."""
    acc = result["accuracy"]
    rows = ["| held out | accuracy | n |", "| --- | --- | --- |"]
    filled = "repeated to fill one window" if fill == "repeat" else "zero-padded to one window"
    for kind, text in (("clips", f"2-3 s clips ({filled})"), ("windows", "3-s windows of full tracks"),
                       ("tracks", "whole tracks (mean of windows)")):
        if acc[kind]["n"]:
            rows.append(f"| {text} | {100 * acc[kind]['accuracy']:.1f} % | {acc[kind]['n']} |")
    per = result["per_genre"]
    rows += ["", "| genre | " + " | ".join(genres) + " |", "| --- " * (len(genres) + 1) + "|"]
    for kind in ("clips", "tracks"):
        if acc[kind]["n"]:
            counts = np.array(result["confusion"][kind]).sum(1)
            rows.append(f"| {kind}, % right | " + " | ".join(
                "-" if per[kind][g] is None else f"{100 * per[kind][g]:.0f}" for g in genres) + " |")
            rows.append(f"| {kind} held out | " + " | ".join(str(int(n)) for n in counts) + " |")
    return "\n".join(rows)


def _side_by_side(report: dict) -> str:
    """One row per model: the teacher (scored in this model's folds), this model, the compared recipes."""
    rows = [("teacher: musicnn MSD embeddings + linear head (2 networks, 25 times the compute)",
             report["cv"].get("teacher"))]
    rows += [(f"**this model**, recipe `{report['recipe']['name']}`", report["cv"])]
    rows += [(f"recipe `{o['recipe']['name']}`" + (" (from scratch)" if not o["recipe"].get("distil") else "")
              + ("" if _artist_disjoint(o) else " (by recording: shares artists, flattered)"), o["cv"])
             for o in report.get("compare", [])]
    folds = len(report["cv"]["folds"])
    rows = [(name, result, folds if result is report["cv"].get("teacher") else len(result["folds"]))
            for name, result in rows if result]
    lines = ["| model | folds | 2-3 s clips | 3-s windows | whole tracks |", "| --- | --- | --- | --- | --- |"]
    for name, result, k in rows:
        if result:
            acc = result["accuracy"]
            lines.append(f"| {name} | {k} | " + " | ".join(
                f"{100 * acc[k]['accuracy']:.1f} %" if acc[k]["n"] else "-" for k in ("clips", "windows", "tracks"))
                + " |")
    return "\n".join(lines)


def _artist_disjoint(report: dict) -> bool:
    return report.get("cv", {}).get("protocol", "").startswith("artist-disjoint")


def model_card(path: Path, genres: list[str], report: dict) -> str:
    sections = [
        "# The shipped genre model",
        "",
        f"`{path.name}`: the CNN of Dong 2018 exactly (conv 64 3x3, max-pool 2x4, conv 64 3x5, max-pool 2x4, "
        "dense 32, dense 10 with softmax; dropout and L2), exported to ONNX (opset "
        f"{OPSET}, dynamic batch). Input `mel` (N, 1, 64, 256), output `probabilities` (N, {len(genres)}).",
        "",
        f"- sha256: `{file_sha256(path)}`",
        f"- genres, in output order: {', '.join(genres)}",
        f"- frontend (stored in the file and checked on load): `{json.dumps(PAPER.as_metadata())}`",
        f"- trained on: {_data_names(report)} (recipe `{report['recipe']['name']}`, seed {report['seed']}), "
        f"on {report.get('machine', 'a CPU')}",
        f"- recipe: `{json.dumps(report['recipe'])}`",
        "",
    ]
    if report["recipe"].get("distil"):
        recipe = report["recipe"]
        if recipe.get("head_extra"):
            head = ("fitted on the GTZAN training recordings and, at a share of each genre chosen on held-out training "
                    "artists, on the other datasets' recordings with their labels, as `--model musicnn`'s head is")
            others = "the tracks it learned from got theirs from a head that did not see them (cross-fitted)"
        else:
            head = "fitted on the GTZAN training recordings only"
            others = ("GTZAN tracks got theirs from a head that did not see them (cross-fitted), the other datasets' "
                      "audio was labelled by the teacher alone (its own labels, of other conventions, unused)")
        sections += [
            f"Distilled: a teacher (musicnn's MSD_musicnn and MSD_vgg embeddings, a standardised linear genre head "
            f"{head}) gave soft targets for every 3-s window of every training track; {others}. The student "
            f"learned from {recipe['distil']:.0%} teacher (temperature {recipe['temperature']}) and the rest GTZAN "
            f"labels, on 2-3 s and 3 s crops with {'gain and ' if recipe.get('gain_db') else ''}masking "
            "augmentation. The network and its input are unchanged; nothing of the teacher is in this file.", ""]
        if recipe.get("embedding"):
            sections += [
                "Feature distillation: its 32 hidden values also learned to predict the teacher's whole embedding of "
                "each drawn window (456 values, each standardised over the training windows) through a linear map "
                f"used in training only (weight {recipe['embedding']} against the genre loss); the map is not in this "
                "file.", ""]
        if recipe.get("views"):
            sections += [
                f"Views: besides the clean tracks, it learned from {recipe['views']} augmented views of the "
                "training audio (`train/views.py`: half of them two recordings mixed, each played up to 6 % faster "
                "or slower, with a random gain and EQ tilt, half cut to 2-3 s), each labelled by the teacher on "
                "exactly that audio (the PyTorch port of musicnn, `train/musicnn.py`); in each fold only the views "
                "made entirely of that fold's training recordings.", ""]
    if "cv" in report and _artist_disjoint(report):
        sections += [
            "## Cross-validated on artists it never heard", "",
            "Protocol: the three fault-filtered GTZAN lists (Kereliuk et al. 2015; no artist is in two of them) are "
            "the folds. Each list is held out once: the network trains on the recordings of the other two lists, on "
            "the GTZAN recordings in no list (which only ever train) and on all non-GTZAN audio (never evaluated "
            "on); it keeps the weights that score best on a seventh of the other two lists' recordings (training "
            "artists only); it is scored on the held-out list: 2-3 s excerpts as clips (the case the shipped model "
            "is judged on), every 3-s window of the held-out full tracks, and each full track by the mean of its "
            "windows' probabilities. Only the recordings of GTZAN indices 0-40 are here, so each list is held out "
            "with the part of it that is present (n below). This file itself was trained, with the same recipe and "
            "seed, on every recording here; the recipes tried before it and the rule that chose it are in "
            "`docs/model.md`.", "",
            _side_by_side(report), "", "This model in detail (accuracy in %, per genre, and how many were held out):",
            "", _table(report["cv"], genres), ""]
    elif "cv" in report:
        sections += [
            "## Cross-validated by recording (the folds share artists: these figures flatter the model)", "",
            f"{len(report['cv']['folds'])} folds of the recordings, stratified by genre; GTZAN has many recordings "
            "per artist, so every held-out fold holds artists the network trained on. `--split` gives the "
            "artist-disjoint figures.", "", _side_by_side(report), "", _table(report["cv"], genres), ""]
    if "teacher" in report.get("cv", {}):
        sections += ["## The teacher it learned from (musicnn MSD embeddings + linear head), same folds", "",
                     _table(report["cv"]["teacher"], genres), ""]
    for other in report.get("compare", []):
        sections += [f"## For comparison: recipe `{other['recipe']['name']}`, {len(other['cv']['folds'])} folds", "",
                     f"`{json.dumps(other['recipe'])}`", "", _table(other["cv"], genres), ""]
    return "\n".join(sections)


def main() -> None:
    """Rewrite engines/MODEL.md from training reports, e.g. after the `paper` recipe's cross-validation finished."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--report", type=Path, default=Path("train/runs/best.json"))
    parser.add_argument("--compare", type=Path, nargs="*", default=[], help="other recipes' reports")
    parser.add_argument("--out", type=Path, default=Path("engines"))
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    report["compare"] = [json.loads(p.read_text()) for p in args.compare]
    write_card(args.out / "MODEL.md", paper=model_card(args.out / SHIPPED["paper"], report["genres"], report))
    print(f"wrote {args.out / 'MODEL.md'}")


if __name__ == "__main__":
    main()
