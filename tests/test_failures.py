"""The daemon's own failures are survived and reported, never hidden: a failing tick, a flood of one log line."""

import logging
import time

import onnx

from conftest import poll
from streamgenre.backends import create_engine
from streamgenre.frontend import _constants, create_frontend
from streamgenre.logs import RepeatFilter
from streamgenre.model import shipped_model_path, load_model
from streamgenre.pipeline import Pipeline, Stream
from streamgenre.sources import FileSource


def fixed_batch_model(tmp_path):
    """The shipped model with its batch fixed at 1, as a careless export leaves it: ONNX Runtime refuses a batch of
    several windows, which the pipeline makes whenever several are ready in one tick."""
    proto = onnx.load(str(shipped_model_path()))
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "batch1.onnx"
    onnx.save(proto, str(path))
    return load_model(path)


def test_a_failing_tick_is_reported_and_the_pipeline_goes_on(tmp_path, music_file):
    model = fixed_batch_model(tmp_path)
    # the fast file completes many windows in its first tick (a batch the model refuses); the real-time one then
    # completes one window per tick, which goes through
    streams = [Stream(FileSource("fast", music_file, realtime=False), "last:3"),
               Stream(FileSource("live", music_file, realtime=True), "last:3")]
    messages, problems = [], []
    pipeline = Pipeline(streams, create_frontend("cpu"), create_engine(model, "onnx"), model.genres, messages.append)
    pipeline.start()
    poll(lambda: problems.append(pipeline.problem()), lambda _: any(m["type"] == "prediction" for m in messages),
         timeout=20, every=0.05)
    errors = pipeline.metrics.registry.get_sample_value("streamgenre_pipeline_tick_errors_total")
    pipeline.stop()
    assert errors >= 1
    reported = [p for p in problems if p]
    assert reported and "pipeline: " in reported[0] and "dimensions" in reported[0]  # what /healthz says
    assert [m["stream"] for m in messages if m["type"] == "prediction"] == ["live"]  # it went on after the failure
    assert pipeline.problem() == "pipeline: not running"  # stopped now; while it ran, the good tick cleared it


def test_the_filterbank_is_read_before_the_first_tick(music_file):
    _constants.cache_clear()
    model = load_model()
    Pipeline([Stream(FileSource("a", music_file), "last:3")], create_frontend("cpu"), create_engine(model, "onnx"),
             model.genres, lambda m: None)
    assert _constants.cache_info().currsize == 1


def test_repeated_log_lines_are_held_back_and_counted():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RepeatFilter(interval=0.3))
    logger = logging.getLogger("test.repeat")
    logger.addHandler(handler)
    try:
        for _ in range(1000):
            logger.warning("%s: cannot connect", "radio1")
        logger.warning("%s: cannot connect", "radio2")
        time.sleep(0.35)
        logger.warning("%s: cannot connect", "radio1")
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records]
    assert lines[:2] == ["radio1: cannot connect", "radio2: cannot connect"]
    assert len(lines) == 3 and lines[2].startswith("radio1: cannot connect (repeated 999 more times in")


def test_a_source_that_has_not_delivered_yet_is_not_stale_at_once(tmp_path, music_file):
    stream = Stream(FileSource("a", music_file), "last:3")  # not started: nothing written
    assert stream.problem() is None  # it had the time stamp 0 before: "no audio in the last 5 s" from the start
    stream.created -= 6.0
    assert stream.problem() == "no audio in the last 5 s"
