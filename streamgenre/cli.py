"""The `streamgenre` command: classify files, list devices, watch one source, serve many."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from .access import MAX_CLIENTS, Access
from .audio import AudioError
from .model import ModelError, load_model
from .history.recorder import HOLD_SECONDS, RETENTION_DAYS
from .cluster import SHARD_SIZE, SINGLE_PROCESS_CORES, SINGLE_PROCESS_STREAMS
from .content_stage import PATCHES_PER_STEP
from .pipeline import DEAD_AIR_SECONDS, SILENCE_DB

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ModelOption = typer.Option(None, "--model", help="paper (the default: Dong 2018's CNN), musicnn (more accurate, "
                           "about 20 times the CPU) or an ONNX model file")
EngineOption = typer.Option("auto", "--engine", help="auto (TensorRT where it runs, else ONNX Runtime), tensorrt, onnx")
FrontendOption = typer.Option("auto", "--frontend", help="auto (the GPU where CuPy finds one), gpu, cpu")
Fp16Option = typer.Option(False, "--fp16", help="run TensorRT in half precision")
ContentOption = typer.Option("on", "--content", help="on: say music, speech, noise or silence first, and a genre "
                             "for music only; off: a genre for every sound that is not silence")


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"streamgenre {version('streamgenre')}")
        raise typer.Exit()


@app.callback()
def _commands(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                           help="say the version and stop")) -> None:
    """Real-time music-genre classification (Dong 2018's CNN) of files, sound cards and streams."""
    from .frontend import limit_blas_threads

    limit_blas_threads()


def fail(message: str) -> None:
    """A clear one-line error and a non-zero exit."""
    typer.echo(f"streamgenre: error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def classify(
    paths: list[Path] = typer.Argument(..., help="audio files (wav, au, flac, ogg, mp3, m4a, ...)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line and file"),
    timeline: bool = typer.Option(False, "--timeline", help="add the probabilities of every window"),
    model: Optional[str] = ModelOption,
    engine_kind: str = EngineOption,
    frontend_kind: str = FrontendOption,
    fp16: bool = Fp16Option,
    content: str = ContentOption,
    jobs: str = typer.Option("auto", "--jobs", help="files classified at once, each in a process of its own: N, "
                             "or auto (one per core for 4 files a core or more, else 1)"),
) -> None:
    """Classify audio files; errors for single files go to stderr and make the exit code 1."""
    import shutil

    from .classify import classify_in_parallel, classify_or_error

    loaded, frontend, engine = _runtime(model, engine_kind, frontend_kind, fp16)
    stage = _content(content, engine_kind, loaded.params.step_seconds, fp16=fp16)
    processes = _jobs(jobs, len(paths))
    if processes > 1:
        results = classify_in_parallel(paths, processes, model, engine_kind, frontend_kind, fp16, content, timeline)
    else:
        results = (classify_or_error(path, frontend, engine, loaded.genres, stage, timeline) for path in paths)
    failed = 0
    # the file column as wide as the longest name, and as the terminal leaves room for ($COLUMNS when piped)
    width = max(20, min(max(len(str(p)) for p in paths), shutil.get_terminal_size().columns - 53))
    if not as_json:
        typer.echo(f"{'file':{width}} {'content':18} {'genre':10} {'conf':>5} {'windows':>7} {'seconds':>8}")
    for path, (result, error) in zip(paths, results):
        if error:  # one line, and the other files go on
            typer.echo(f"streamgenre: error: {error}", err=True)
            failed += 1
            continue
        if "replaced_samples" in result:
            typer.echo(f"streamgenre: warning: {path}: {result['replaced_samples']} NaN or infinite samples, "
                       "classified as silence", err=True)
        if "skipped_packets" in result:
            typer.echo(f"streamgenre: warning: {path}: {result['skipped_packets']} undecodable packets skipped",
                       err=True)
        if as_json:
            typer.echo(json.dumps(result, allow_nan=False))
        else:
            genre = result["genre"]
            conf = f"{result['probabilities'][genre]:5.2f}" if genre else "    -"
            genre = genre or "-"
            typer.echo(f"{_fit(str(path), width):{width}} {_content_share(result['content']):18} {genre:10} {conf} "
                       f"{result['windows']:7d} {result['duration']:8.1f}")
            for window in result.get("timeline", []):
                top = max(window["probabilities"], key=window["probabilities"].get)
                shown = f"{top:10} {window['probabilities'][top]:.2f}" if window["content"] == "music" else ""
                typer.echo(f"  {window['start']:7.2f}-{window['end']:7.2f} s  {window['content']:8} {shown}")
    if failed:
        raise typer.Exit(1)


def _jobs(value: str, files: int) -> int:
    """`--jobs`: a number, or auto: one process per core where there are at least 4 files a core (a process takes
    about a second to start), else 1; else a one-line error."""
    if value == "auto":
        cores = os.cpu_count() or 1
        return cores if cores > 1 and files >= 4 * cores else 1
    if not value.isdigit() or not 1 <= int(value) <= 256:
        fail(f"--jobs {value!r}: a number of processes (1 to 256) or auto")
    return int(value)


def _content_share(seconds: dict[str, float]) -> str:
    """The kinds that make up a file, largest first: "speech 80% music 20%"."""
    total = sum(seconds.values()) or 1.0
    shares = sorted(((t / total, kind) for kind, t in seconds.items() if t / total >= 0.05), reverse=True)
    return " ".join(f"{kind} {100 * share:.0f}%" for share, kind in shares[:2])


AverageOption = typer.Option("last:10", "--average", help="running average: last:N, ema:SECONDS (half-life) or all")


@app.command()
def devices() -> None:
    """List the audio input devices."""
    from .sources import input_devices

    try:
        found = input_devices()
    except AudioError as e:
        fail(str(e))
    if not found:
        typer.echo("no input devices")
    for d in found:
        typer.echo(f"{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['rate']:.0f} Hz, {d['api']})")


@app.command()
def listen(
    device: Optional[str] = typer.Option(None, "--device", help="input device index or part of its name"),
    file: Optional[Path] = typer.Option(None, "--file", help="an audio file, played in real time"),
    url: Optional[str] = typer.Option(None, "--url", help="an HTTP(S)/Icecast stream"),
    average: str = AverageOption,
    model: Optional[str] = ModelOption,
    engine_kind: str = EngineOption,
    frontend_kind: str = FrontendOption,
    fp16: bool = Fp16Option,
    content: str = ContentOption,
) -> None:
    """Watch the genre of one source live in the terminal (default: the default input device)."""
    import time

    from .pipeline import Pipeline
    from .view import render

    if sum(x is not None for x in (device, file, url)) > 1:
        fail("give one of --device, --file, --url")
    spec = str(file) if file else url if url else f"device:{device or ''}"
    loaded, frontend, engine = _runtime(model, engine_kind, frontend_kind, fp16)
    streams = _build([spec], average, True, True, loaded.params)
    stream = streams[0]
    pipeline = Pipeline(streams, frontend, engine, loaded.genres, publish=lambda message: None,
                        content=_content(content, engine_kind, loaded.params.step_seconds, fp16=fp16))
    pipeline.start()
    try:
        while True:
            typer.echo(render(stream, loaded.genres, loaded.name, f"{engine.name}, frontend {frontend.name}"), nl=False)
            if stream.exhausted:
                break
            time.sleep(0.25)
    finally:
        pipeline.stop()
    if stream.source.error and stream.source.kind != "file":
        fail(stream.source.error)


@app.command()
def serve(
    sources: list[str] = typer.Argument(None, help="[name=]device:ID, [name=]PATH or [name=]URL, as many as wanted"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with host, port, average and \\[\\[source]] tables"),
    host: Optional[str] = typer.Option(None, "--host", help="address to listen on [127.0.0.1]"),
    port: Optional[int] = typer.Option(None, "--port", help="port for WebSocket and HTTP [8765]"),
    average: Optional[str] = typer.Option(None, "--average", help="last:N, ema:SECONDS or all [last:10]"),
    fast: bool = typer.Option(False, "--fast", help="read files as fast as possible instead of in real time, once "
                              "each, the genre log timed by the audio's clock"),
    once: bool = typer.Option(False, "--once", help="play each file once (they loop in real time otherwise)"),
    model: Optional[str] = ModelOption,
    engine_kind: Optional[str] = typer.Option(None, "--engine", help="auto, tensorrt or onnx [auto]"),
    frontend_kind: Optional[str] = typer.Option(None, "--frontend", help="auto, gpu or cpu [auto]"),
    fp16: Optional[bool] = typer.Option(None, "--fp16/--fp32", help="TensorRT precision [fp32]"),
    max_clients: Optional[int] = typer.Option(None, "--max-clients", help=f"WebSocket clients at most [{MAX_CLIENTS}]"),
    token: Optional[str] = typer.Option(None, "--token", envvar="STREAMGENRE_TOKEN",
                                        help="clients and HTTP requests must present it (needed beyond loopback)"),
    allow_origin: Optional[list[str]] = typer.Option(None, "--allow-origin",
                                                     help="a web origin whose pages may open the WebSocket"),
    allow_host: Optional[list[str]] = typer.Option(None, "--allow-host", help="a name of this machine that "
                                                   "requests may use (Host), besides its addresses and localhost"),
    history: Optional[str] = typer.Option(None, "--history", envvar="STREAMGENRE_HISTORY",
                                          help="the genre log: an SQLite path, sqlite:///PATH, postgresql://... or "
                                               "off [history.sqlite3 in the state directory]"),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="ray or ray://HOST:PORT: spread the streams over "
                                          "a Ray cluster, this process their coordinator [off]"),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", min=1, help="streams per shard [100]"),
    workers: Optional[str] = typer.Option(None, "--workers", help="worker processes the streams spread over: N, "
                                          "or auto (one per core beyond 50 streams on more than 2 cores, else this process) [auto]"),
    every: Optional[int] = typer.Option(None, "--every", min=1, help="classify every Nth window step only (the "
                                        "running average covers the same seconds with fewer windows) [1]"),
    content: Optional[str] = typer.Option(None, "--content", help="on (music, speech, noise or silence first; a "
                                          "genre for music only) or off [on]"),
    notify: Optional[list[str]] = typer.Option(None, "--notify", "--webhook", help="tell every event to this URL: "
                                               "https://... (a JSON POST), or an Apprise URL (discord://, "
                                               "mailto://, ...); rules per target in [[notify]] tables"),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", envvar="STREAMGENRE_MQTT", help="mqtt[s]://[user:pass@]"
                                       "HOST[:PORT]: state, events and Home Assistant discovery [off]"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the daemon: classify every source and broadcast the predictions over WebSocket."""
    import asyncio
    import logging
    import signal

    from .events import Events, Rule
    from .server import PROTOCOL_VERSION, Broadcaster, serve as serve_forever

    from .logs import configure

    configure(log_level)
    if any(arg == "--token" or arg.startswith("--token=") for arg in sys.argv):
        logging.getLogger("streamgenre").warning(
            "--token on the command line can be read by every user of this machine (/proc/PID/cmdline, ps): "
            "give it in $STREAMGENRE_TOKEN or as token in the config file instead")
    settings = dict(SERVE_DEFAULTS, source=[])
    if config:
        settings |= _read_config(config)
    overrides = {"host": host, "port": port, "average": average, "model": model, "engine": engine_kind,
                 "frontend": frontend_kind, "fp16": fp16, "max_clients": max_clients, "token": token,
                 "allow_origins": allow_origin, "allow_hosts": allow_host, "history": history, "cluster": cluster,
                 "shard_size": shard_size, "workers": workers, "content": content, "every": every, "mqtt": mqtt}
    settings |= {k: v for k, v in overrides.items() if v is not None}
    settings["notify"] = settings["notify"] + [{"url": url} for url in notify or []]
    settings["loop"] = not (once or fast)
    settings["every"] = _every(settings["every"])
    access = Access(settings["host"], settings["token"], tuple(settings["allow_origins"]), int(settings["max_clients"]),
                    tuple(name.lower() for name in settings["allow_hosts"]))
    if problem := access.check_settings():
        fail(problem)
    specs = list(sources or []) + settings["source"]
    if not specs:
        fail("no sources: give [name=]device:ID, [name=]PATH or [name=]URL, or a --config with [[source]]")
    log = logging.getLogger("streamgenre")
    recorder = events = None
    broadcaster = Broadcaster(lambda: {
        "type": "hello", "version": PROTOCOL_VERSION, "model": loaded.name, "genres": list(loaded.genres),
        "streams": [{"name": s.name, "kind": s.source.kind, "error": s.source.error, "ended": s.source.finished}
                    for s in pipeline.streams]})

    def publish(message: dict) -> None:
        if message["type"] == "status" and message["event"] in ("error", "reconnecting", "dropped", "interrupted"):
            log.warning("%s", message["message"])
        elif message["type"] == "status" and message["event"] in ("recovered", "looped", "ended"):
            log.info("%s", message["message"])
        broadcaster.publish(message)
        if recorder:
            recorder.observe(message)
        if events:
            events.observe(message)

    targets, notify_metrics = _notify_targets(settings)
    build = _cluster_pipeline if settings["cluster"] or _workers(settings["workers"], len(specs)) > 1 \
        else _single_pipeline
    pipeline, loaded, serve_specs = build(settings, specs, not fast, publish, access)
    recorder = _recorder(settings, loaded.params.step_seconds, pipeline.metrics.registry, audio_clock=fast)
    notify_metrics.register(pipeline.metrics.registry)
    events = Events([(Rule(), WebSocketEvents(broadcaster))] + targets, pipeline.problem,
                    float(settings["dead_air_seconds"]), loaded.params.window_seconds, notify_metrics)

    def reload() -> None:
        """SIGHUP (systemctl reload): reread the config's sources; the unchanged ones go on uninterrupted, new
        ones start, removed ones stop. Other settings take a restart."""
        if not config:
            log.warning("reload: there is no --config to reread")
            return
        try:
            fresh = _read_config(config)
        except typer.Exit:
            log.error("reload: %s is not valid (said above); the streams are unchanged", config)
            return
        new = list(sources or []) + fresh["source"]
        if duplicate := _duplicate_name(new):
            log.error("reload: two sources are named %r; the streams are unchanged", duplicate)
            return
        serve_specs(new)

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        await serve_forever(pipeline, broadcaster, access, int(settings["port"]), stop, recorder)

    if recorder:
        recorder.start()
    events.start()
    try:
        asyncio.run(main())
    except OSError as e:
        fail(f"cannot serve on {settings['host']}:{settings['port']}: {e.strerror or e}")
    finally:
        if recorder:
            recorder.stop()  # after the pipeline: every open segment closed and written
        events.stop()
    log.info("stopped")


def _single_pipeline(settings: dict, specs: list[str], realtime: bool, publish, access):
    """The embedded default: every stream in this process. Returns the pipeline, the model and how a reload
    serves new specs."""
    import logging

    from .pipeline import Pipeline, reloaded_streams, stream_from_spec

    log = logging.getLogger("streamgenre")
    loaded, frontend, engine = _runtime(settings["model"], settings["engine"], settings["frontend"], settings["fp16"],
                                        log.info)
    every = settings["every"]
    streams = _build(specs, settings["average"], realtime, False, loaded.params, settings["silence_db"],
                     settings["dead_air_seconds"], settings["loop"], every)
    if lowered := access.fit_descriptors(len(streams)):
        log.warning("%s", lowered)
    stage = _content(settings["content"], settings["engine"], loaded.params.step_seconds,
                     settings["content_patches"], settings["fp16"], log.info, settings["content_switch"])
    log.info("model %s; engine: %s; frontend: %s; %s", loaded.name, engine.description, frontend.description,
             stage.description)
    pipeline = Pipeline(streams, frontend, engine, loaded.genres, publish, content=stage)
    pipeline.metrics.model.info({"model": loaded.name, "engine": engine.name, "frontend": frontend.name})

    def serve_specs(new_specs: list[str]) -> None:
        new = reloaded_streams(pipeline.streams, new_specs, lambda spec: stream_from_spec(
            spec, settings["average"], realtime, settings["silence_db"], settings["dead_air_seconds"], loaded.params,
            settings["loop"], every))
        pipeline.replace_streams(new)
        log.info("reload: %d streams (%d new)", len(new), sum(not any(n is s for s in pipeline.streams) for n in new))

    return pipeline, loaded, serve_specs


def _workers(value, streams: int) -> int:
    """`workers`: a number, or "auto": one process per core on machines with more than SINGLE_PROCESS_CORES cores
    once there are more than SINGLE_PROCESS_STREAMS streams; else one process, which measured better there (on 2
    cores, ONNX Runtime's threads already use both from one process: docs/speed.md)."""
    if value == "auto":
        cores = os.cpu_count() or 1
        return cores if cores > SINGLE_PROCESS_CORES and streams > SINGLE_PROCESS_STREAMS else 1
    try:
        if 1 <= int(value) <= 256 and str(int(value)) == str(value).strip():
            return int(value)
    except ValueError:
        pass
    fail(f"workers {value!r}: a number of processes (1 to 256) or auto")


def _cluster_pipeline(settings: dict, specs: list[str], realtime: bool, publish, access):
    """The streams in shards, this process their coordinator: on a Ray cluster (`--cluster ray[://ADDRESS]`), or
    over worker processes on this machine (`--workers N`)."""
    import logging

    log = logging.getLogger("streamgenre")
    where = f"--cluster {settings['cluster']}" if settings["cluster"] else f"--workers {settings['workers']}"
    try:
        from .cluster.coordinator import ClusterPipeline, shard_settings

        loaded = load_model(settings["model"])
        fitted = shard_settings(settings, realtime)
        if settings["cluster"]:
            from .cluster.ray_shards import RayShards, ray_address

            address = ray_address(settings["cluster"])
    except ImportError:
        fail("--cluster needs Ray: pip install 'streamgenre[cluster]'")
    except (ValueError, ModelError) as e:
        fail(str(e))
    if duplicate := _duplicate_name(specs):
        fail(f"two sources are named {duplicate!r}: name them with NAME=SOURCE")
    try:
        if settings["cluster"]:
            pipeline = ClusterPipeline(RayShards(address), specs, fitted, publish, shard_size=int(settings["shard_size"]))
        else:
            from .cluster.process_shards import ProcessShards

            pipeline = ClusterPipeline(ProcessShards(), specs, fitted, publish,
                                       shards=_workers(settings["workers"], len(specs)))
    except Exception as e:  # Ray's errors for a cluster it cannot reach or start
        fail(f"{where}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}")
    log.info("model %s; %s", loaded.name, pipeline.description)
    pipeline.metrics.model.info({"model": loaded.name, "engine": settings["engine"], "frontend": settings["frontend"]})

    def serve_specs(new_specs: list[str]) -> None:
        pipeline.reconfigure(new_specs)
        log.info("reload: %d streams on %d shards", len(pipeline.streams), len(pipeline.shards))

    return pipeline, loaded, serve_specs


def _notify_targets(settings: dict):
    """The [[notify]] targets and --mqtt, made before anything starts: one that cannot be is a one-line error."""
    from .notify import NotifyError, NotifyMetrics, create_targets

    metrics = NotifyMetrics()
    entries = settings["notify"] + ([{"url": settings["mqtt"]}] if settings["mqtt"] else [])
    try:
        return create_targets(entries, metrics, prefix=settings["mqtt_prefix"],
                              discovery=bool(settings["mqtt_discovery"]),
                              discovery_prefix=settings["mqtt_discovery_prefix"]), metrics
    except NotifyError as e:
        fail(str(e))


class WebSocketEvents:
    """Events as messages to the WebSocket clients (the dashboard shows them)."""

    def __init__(self, broadcaster):
        self.deliver = broadcaster.publish

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _recorder(settings: dict, step_seconds: float, registry, audio_clock: bool = False):
    """The genre log's writer, or None where `history = "off"`; `audio_clock` for --fast (Recorder)."""
    from .history import default_location
    from .history.recorder import Recorder

    location = settings["history"] or default_location()
    if location == "off":
        return None
    return Recorder(location, step_seconds, registry, float(settings["history_hold_seconds"]),
                    float(settings["history_days"]), bool(settings["history_windows"]), audio_clock)


@app.command()
def report(
    history: Optional[str] = typer.Option(None, "--history", envvar="STREAMGENRE_HISTORY",
                                          help="the genre log (as for serve) [history.sqlite3 in the state directory]"),
    stream: Optional[str] = typer.Option(None, "--stream", help="one stream only"),
    since: Optional[str] = typer.Option(None, "--since", help="2026-11-27T14:00, 2026-11-27, -24h, yesterday, ..."),
    until: Optional[str] = typer.Option(None, "--until", help="as --since [now]"),
    output: str = typer.Option("table", "--format", help="table, csv or json"),
    plot_file: Optional[Path] = typer.Option(None, "--plot", help="also draw the timelines and airtime to a PNG"),
) -> None:
    """What aired: airtime per genre per stream, the longest segments and dead air, from the genre log."""
    from .history import HistoryError, default_location
    from .history.report import as_csv, as_json, as_table, clipped, nothing_found, parse_time, plot, summarize
    from .history.store import read_segments, read_stream_spans

    if output not in ("table", "csv", "json"):
        fail(f"--format {output!r}: use table, csv or json")
    location = history or default_location()
    if "://" not in location and not Path(location).expanduser().is_file():
        fail(f"{location}: no history there (the daemon writes it; see --history)")
    try:
        start, end = (parse_time(t) if t else None for t in (since, until))
        segments = clipped(read_segments(location, stream, start, end), start, end)
        if not segments:
            typer.echo(f"streamgenre: {nothing_found(read_stream_spans(location), stream, start, end)}", err=True)
            raise typer.Exit(1)
    except (ValueError, HistoryError) as e:
        fail(str(e))
    summary = summarize(segments)
    typer.echo({"table": as_table, "csv": as_csv}.get(output, lambda s: as_json(s, start, end))(summary), nl=False)
    if plot_file:
        try:
            plot(segments, summary, str(plot_file))
        except ImportError:
            fail("--plot needs matplotlib: pip install 'streamgenre[report]'")
        except OSError as e:
            fail(f"{plot_file}: {e.strerror or e}")


engine_app = typer.Typer(no_args_is_help=True, help="TensorRT plans for this machine's NVIDIA GPU.")
app.add_typer(engine_app, name="engine")


@engine_app.command("build")
def engine_build(
    fp16: bool = typer.Option(False, "--fp16", help="half precision"),
    max_batch: int = typer.Option(1024, "--max-batch", min=1, help="largest batch the plan takes"),
    rebuild: bool = typer.Option(False, "--rebuild", help="build even when a cached plan fits"),
    model: Optional[str] = ModelOption,
) -> None:
    """Build the TensorRT plan of the model for this GPU and TensorRT (or find it in the cache), for --engine."""
    from .backends import EngineError
    from .backends.tensorrt import load_plan, tensorrt_unavailable

    why = tensorrt_unavailable()
    if why:
        fail(f"cannot build a TensorRT plan: {why}")
    try:
        loaded = load_model(model)
        _, path, built = load_plan(loaded, fp16, max_batch, rebuild, log=typer.echo)
    except (ModelError, EngineError) as e:
        fail(str(e))
    typer.echo(f"{'built' if built else 'already cached'}: {path}")


SERVE_DEFAULTS = {"host": "127.0.0.1", "port": 8765, "average": "last:10", "model": "paper", "engine": "auto",
                  "frontend": "auto", "history": None, "history_hold_seconds": HOLD_SECONDS,
                  "history_days": RETENTION_DAYS, "history_windows": False, "cluster": None,
                  "shard_size": SHARD_SIZE, "workers": "auto", "shard_cpus": "auto",
                  "fp16": False, "max_clients": MAX_CLIENTS, "token": None, "allow_origins": [], "allow_hosts": [],
                  "silence_db": SILENCE_DB, "dead_air_seconds": DEAD_AIR_SECONDS, "content": "on",
                  "content_patches": PATCHES_PER_STEP, "content_switch": None, "every": 1,
                  "notify": [], "mqtt": None, "mqtt_prefix": "streamgenre", "mqtt_discovery": True,
                  "mqtt_discovery_prefix": "homeassistant"}


def _read_config(path: Path) -> dict:
    """The settings of SERVE_DEFAULTS, and [[source]] tables with name and one of device, file, url."""
    import re
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{path}: {e}")
    from .notify import NotifyError, notify_entries

    try:
        data["notify"] = notify_entries(data.get("notify", []))
    except NotifyError as e:
        fail(f"{path}: {e}")
    specs = []
    entries = data.pop("source", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        fail(f"{path}: source must be [[source]] tables (name and one of device, file, url), not {entries!r}")
    for entry in entries:
        kinds = [k for k in ("device", "file", "url") if k in entry]
        if len(kinds) != 1:
            fail(f"{path}: each [[source]] needs exactly one of device, file, url: {entry}")
        if "name" in entry and not re.fullmatch(r"[\w.-]+", str(entry["name"])):
            fail(f"{path}: source name {entry['name']!r}: letters, digits, '.', '-' and '_' only")
        value = f"device:{entry['device']}" if kinds[0] == "device" else str(entry[kinds[0]])
        specs.append(f"{entry['name']}={value}" if "name" in entry else value)
    unknown = set(data) - set(SERVE_DEFAULTS)
    if unknown:
        fail(f"{path}: unknown settings {sorted(unknown)}")
    return data | {"source": specs}


def _runtime(model: Optional[str], engine_kind: str, frontend_kind: str, fp16: bool,
             log: Callable[[str], None] = lambda message: typer.echo(f"streamgenre: {message}", err=True)):
    """The model, the frontend and the engine asked for; what cannot run here is a one-line error."""
    from .backends import EngineError, create_engine
    from .frontend import FrontendError, create_frontend

    try:
        loaded = load_model(model)
        return (loaded, create_frontend(frontend_kind, loaded.params),
                create_engine(loaded, engine_kind, fp16=fp16, log=log))
    except (ModelError, EngineError, FrontendError) as e:
        fail(str(e))


def _content(setting: str, engine_kind: str, step_seconds: float, patches: int = PATCHES_PER_STEP,
             fp16: bool = False, log: Callable[[str], None] = lambda message: None, switch: float | None = None):
    """The content stage asked for (content_stage.create_content_stage); what cannot run is a one-line error."""
    from .backends import EngineError
    from .content_stage import create_content_stage

    try:
        return create_content_stage(setting, engine_kind, step_seconds, patches, fp16=fp16, log=log, switch=switch)
    except (ValueError, ModelError, EngineError) as e:
        fail(str(e))


def _every(value) -> int:
    """The `every` setting: a whole number of window steps, at least 1; else a one-line error."""
    if type(value) is not int or value < 1:
        fail(f"every = {value!r}: a whole number of window steps, 1 or more")
    return value


def _build(specs: list[str], average: str, realtime: bool, strict: bool, params, silence_db: float = SILENCE_DB,
           dead_air_seconds: float = DEAD_AIR_SECONDS, loop: bool = False, every: int = 1) -> list:
    """One stream per source, for a model's frontend `params`; with `strict` a source that cannot open is an error,
    else it is kept as a broken stream that reports its error."""
    import logging

    from .pipeline import Average, stream_from_spec
    from .sources import BrokenSource

    try:
        Average(average)
    except ValueError as e:
        fail(str(e))
    streams = [stream_from_spec(spec, average, realtime, silence_db, dead_air_seconds, params, loop, every)
               for spec in specs]
    broken = [s.source.error for s in streams if isinstance(s.source, BrokenSource)]
    if broken and strict:
        fail(broken[0])
    if duplicate := _duplicate_name(streams):
        fail(f"two sources are named {duplicate!r}: name them with NAME=SOURCE")
    if len(broken) == len(streams):
        fail("; ".join(broken))
    for error in broken:
        logging.getLogger("streamgenre").error("%s", error)
    return streams


def _duplicate_name(streams: list) -> str | None:
    """The first name that two streams (or two source specs) share, or None."""
    from .sources import split_spec

    names = [split_spec(s)[0] if isinstance(s, str) else s.name for s in streams]
    return next((n for n in names if names.count(n) > 1), None)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
