"""The ONNX model file and its metadata: genres in output order and the frontend it was trained with.

Loading a model checks its frontend parameters against this package's frontend, so the daemon can never feed a
model windows computed differently from the ones it learned on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import onnx

from .frontend import PARAMS

MODEL_FILE = "streamgenre-cnn.onnx"


class ModelError(Exception):
    """A model file that is missing, unreadable or made for another frontend; one line for the user."""


def named_probabilities(genres: tuple[str, ...], probs) -> dict[str, float]:
    """A model output as {genre: probability}, rounded for JSON, the form every message and result uses."""
    return {g: round(float(p), 5) for g, p in zip(genres, probs)}


def default_model_path() -> Path:
    """The model shipped in the top-level `engines/` folder (installed as `streamgenre.engines`)."""
    return Path(str(files("streamgenre.engines").joinpath(MODEL_FILE)))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Model:
    path: Path
    genres: tuple[str, ...]
    frontend: dict
    sha256: str
    description: str

    @property
    def name(self) -> str:
        return f"{self.path.name}@{self.sha256[:12]}"


def load_model(path: str | Path | None = None) -> Model:
    """Read a model's metadata and check that it was trained on this frontend."""
    path = Path(path) if path else default_model_path()
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValueError, ... for files that are not models
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if "streamgenre.frontend" not in meta or "streamgenre.genres" not in meta:
        raise ModelError(f"{path}: no streamgenre metadata (frontend parameters and genres); export it with train/")
    frontend = json.loads(meta["streamgenre.frontend"])
    differ = {k: (frontend.get(k), v) for k, v in PARAMS.items() if frontend.get(k) != v}
    if differ:
        detail = ", ".join(f"{k}={got!r} (frontend: {want!r})" for k, (got, want) in differ.items())
        raise ModelError(f"{path}: trained with another frontend: {detail}")
    return Model(path, tuple(json.loads(meta["streamgenre.genres"])), frontend, file_sha256(path),
                 meta.get("streamgenre.description", ""))
