"""The pretrained teacher for distillation: musicnn's MSD networks as a music embedding, on the PyTorch port.

    python -m train.teacher --data ../shared/data/gtzan --data ../shared/data/extra

Embeds every student window position of every training track (3-s windows every 128 frames, the excerpts as one
padded window) with MSD_musicnn (penultimate layer, 200 values) and MSD_vgg (pool5, flattened) and caches them in
`train/cache/teacher-<key>-frontend.npy`; a linear genre head on these embeddings is what teaches the student. It runs
the shipped musicnn graph cut before its head on ONNX Runtime (`OnnxTeacher`), or with `--torch` `train/musicnn.py`,
the port to PyTorch (no TensorFlow; `pip install --no-deps musicnn==0.1.0` brings the weights), on the GPU where
PyTorch sees one.

`TensorflowTeacher` is the original, kept to check the port against (tests/test_teacher.py, where TensorFlow is
installed: `pip install -e ".[teacher]"`). Three traps of running musicnn on today's TensorFlow are handled there:
Keras 3 lacks `tf.layers.batch_normalization` (TF_USE_LEGACY_KERAS=1), musicnn's own extractor hides a failed
restore behind a bare `except:` (variables are checked against the checkpoint here), and its float16 spectrogram
overflows under NumPy 2 (the port's frontend stays in float32).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from streamgenre.audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES, load_audio, pad_to_window  # noqa: E402
from streamgenre.frontend import PAPER, mel_frames  # noqa: E402
from train.data import CACHE, Track, cache_key, cached, find_tracks, window_starts  # noqa: E402
from train.musicnn import MUSICNN, TeacherNet, musicnn_folder  # noqa: E402
from train.train import DEVICE  # noqa: E402

MODELS = ("MSD_musicnn", "MSD_vgg")


def to_teacher_window(audio_22k: np.ndarray) -> np.ndarray:
    """Student-rate audio (up to one student window) resampled to the teacher's 16 kHz (soxr, as librosa.load
    does) and zero-padded to one teacher window (the 2.98-s student window is 2 ms shorter)."""
    import soxr

    audio = soxr.resample(np.asarray(audio_22k, np.float32), SAMPLE_RATE, MUSICNN.sample_rate)
    return pad_to_window(audio.astype(np.float32), MUSICNN.window_samples)[: MUSICNN.window_samples]


def teacher_spectrograms(audio_22k: np.ndarray) -> np.ndarray:
    """musicnn's input for (n, samples) student windows of audio, from the runtime frontend with MUSICNN's
    parameters: (n, 186, 96) float32."""
    return mel_frames(np.stack([to_teacher_window(a) for a in np.atleast_2d(audio_22k)]), MUSICNN)


class Teacher:
    """Both MSD networks on the PyTorch port, on the GPU where there is one."""

    def __init__(self):
        self.net = TeacherNet().to(DEVICE)

    def embed(self, spectrograms: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, frames, 96) -> (N, 456): both networks' embeddings side by side."""
        with torch.no_grad():
            parts = [self.net(torch.from_numpy(spectrograms[i : i + batch]).to(DEVICE)).cpu()
                     for i in range(0, len(spectrograms), batch)]
        return torch.cat(parts).numpy()


EMBEDDING_OUTPUT = "/teacher/Concat_output_0"  # both networks' embeddings, before the shipped model's genre head


class OnnxTeacher:
    """The same embeddings from the shipped musicnn model's graph cut before its head, on ONNX Runtime: about 2x the
    PyTorch port on the CPU (29 windows/s on 2 cores)."""

    def __init__(self, threads: int = 0):
        import onnx
        import onnxruntime

        from streamgenre.model import load_model

        graph = onnx.load(load_model("musicnn").path)
        graph.graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, None))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(graph.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])

    def embed(self, spectrograms: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, frames, 96) -> (N, 456), as Teacher.embed."""
        mel = np.ascontiguousarray(spectrograms.transpose(0, 2, 1)[:, None], np.float32)
        return np.concatenate([self.session.run([EMBEDDING_OUTPUT], {"mel": mel[i : i + batch]})[0]
                               for i in range(0, len(mel), batch)]).reshape(len(mel), -1)


def make_teacher(torch: bool = False, threads: int = 0):
    """The teacher a command asks for: ONNX Runtime by default (`threads`, 0: one per core), the PyTorch port with
    `torch`."""
    return Teacher() if torch else OnnxTeacher(threads)


class TensorflowTeacher:
    """The TensorFlow original (musicnn's own graph and checkpoints), restored and checked: the port's reference."""

    def __init__(self):
        import tensorflow as tf
        from musicnn import models

        tf.compat.v1.disable_eager_execution()
        self.tf = tf
        self.sessions = []
        for name in MODELS:
            graph = tf.Graph()
            with graph.as_default():
                with tf.name_scope("model"):
                    x = tf.compat.v1.placeholder(tf.float32, [None, MUSICNN.window_frames, MUSICNN.n_mels])
                    training = tf.compat.v1.placeholder(tf.bool)
                    outputs = models.define_model(x, training, name, 50)
                embedding = outputs[-1]  # pool5 (vgg) or the penultimate layer (musicnn)
                session = tf.compat.v1.Session(graph=graph)
                folder = f"{musicnn_folder() / name}/"
                self._check_checkpoint(folder, graph)
                tf.compat.v1.train.Saver().restore(session, folder)
            self.sessions.append((session, x, training, embedding))

    def _check_checkpoint(self, folder: str, graph) -> None:
        reader = self.tf.compat.v1.train.NewCheckpointReader(folder)  # files `.index`, `.data-*`: an empty prefix
        stored = reader.get_variable_to_shape_map()
        missing = [v.op.name for v in graph.get_collection("variables") if v.op.name not in stored]
        if missing:
            raise RuntimeError(f"{folder}: checkpoint lacks {len(missing)} variables, e.g. {missing[:3]}")

    def embed(self, spectrograms: np.ndarray, batch: int = 64) -> np.ndarray:
        """(N, frames, 96) -> (N, 456): both networks' embeddings side by side."""
        parts = []
        for session, x, training, embedding in self.sessions:
            out = [session.run(embedding, {x: spectrograms[i : i + batch], training: False})
                   for i in range(0, len(spectrograms), batch)]
            parts.append(np.concatenate(out).reshape(len(spectrograms), -1))
        return np.concatenate(parts, axis=1)


def embed_windows(audio: np.ndarray, teacher) -> np.ndarray:
    """A student-rate recording's embeddings at every window_starts() position: (n, 456) float32."""
    audio = pad_to_window(audio)
    specs = teacher_spectrograms(np.stack([audio[s * HOP_LENGTH : s * HOP_LENGTH + WINDOW_SAMPLES]
                                           for s in window_starts(PAPER.frame_count(len(audio)))]))
    return teacher.embed(specs).astype(np.float32)


def embed_tracks(tracks: list[Track], teacher) -> dict[str, np.ndarray]:
    """Embeddings at every window_starts() position of every track, keyed by resolved path, cached per track."""
    out = {}
    for k, track in enumerate(tracks):
        def embedding() -> np.ndarray:
            embedded = embed_windows(load_audio(track.path), teacher)
            if k % 50 == 0:
                print(f"{k}/{len(tracks)} tracks embedded", flush=True)
            return embedded

        out[str(track.path.resolve())] = cached(CACHE / f"teacher-{cache_key(track.path)}-frontend.npy", embedding)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("train/runs/teacher.npz"))
    parser.add_argument("--torch", action="store_true", help="the PyTorch port instead of ONNX Runtime")
    args = parser.parse_args()
    tracks = [t for root in args.data for t in find_tracks(root)]
    embeddings = embed_tracks(tracks, make_teacher(args.torch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, paths=np.array(list(embeddings)), **{f"e{i}": e for i, e in enumerate(embeddings.values())})
    print(f"{len(embeddings)} tracks, {sum(len(e) for e in embeddings.values())} windows embedded: {args.out}")


if __name__ == "__main__":
    main()
