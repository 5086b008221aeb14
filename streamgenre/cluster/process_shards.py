"""Shards as worker processes on this machine (`serve --workers N`): one process per shard, each running today's
pipeline on its streams, so one daemon uses every core instead of one interpreter's. A worker that dies is started
again with its streams; the coordinator reports it as a shard that was down and restarted, as with Ray."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from .shard import Shard

STOP_SECONDS = 5.0  # a worker asked to stop has this long before it is killed


def serve_shard(shard_class, index: int, settings: dict, specs: list[str], connection) -> None:
    """A worker's life: the shard, then its coordinator's requests until it asks to stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the coordinator stops us
    shard = shard_class(index, settings, specs)
    try:
        while True:
            try:
                kind, argument = connection.recv()
            except (EOFError, OSError):  # the coordinator died: nothing to serve any more
                break
            if kind == "drain":
                connection.send(shard.drain(argument))
            elif kind == "configure":
                shard.configure(argument)
            else:
                break
    finally:
        shard.stop()


class WorkerDied(Exception):
    pass


class Worker:
    """One worker process and the pipe to it; `specs` are the streams it was last asked to serve."""

    def __init__(self, context, shard_class, index: int, settings: dict, specs: list[str]):
        self.context, self.shard_class, self.index, self.settings = context, shard_class, index, settings
        self.specs = specs
        self.lock = threading.Lock()  # drains and reloads send from different threads
        self.process = self.connection = None
        self.spawn()

    def spawn(self) -> None:
        self.connection, theirs = self.context.Pipe()
        self.process = self.context.Process(target=serve_shard, name=f"streamgenre-worker-{self.index}",
                                            args=(self.shard_class, self.index, self.settings, self.specs, theirs),
                                            daemon=True)
        self.process.start()
        theirs.close()

    def send(self, request: tuple) -> None:
        with self.lock:
            self.connection.send(request)

    def respawn(self) -> str:
        """The worker is dead: start it again with its streams; returns how it ended."""
        self.process.join(timeout=1)
        code = self.process.exitcode
        how = f"killed by signal {-code}" if code and code < 0 else f"exited with status {code}"
        with self.lock:
            self.connection.close()
            self.spawn()
        return how


class ProcessDrain:
    """A drain in flight; `result()` raises WorkerDied where the worker died (it is started again)."""

    def __init__(self, worker: Worker, error: Exception | None = None):
        self.worker, self.error = worker, error

    def ready(self, timeout: float) -> bool:
        if self.error is None and self.worker.process.is_alive():
            return self.worker.connection.poll(timeout)
        return True  # dead: result() says so

    def result(self) -> dict:
        try:
            if self.error is None and (self.worker.process.is_alive() or self.worker.connection.poll(0)):
                return self.worker.connection.recv()
        except (EOFError, OSError):
            pass
        raise WorkerDied(f"worker process {self.worker.process.pid} {self.worker.respawn()}, started again")


class ProcessShards:
    """Shards as processes of `shard_class` (Shard; a benchmark feeds its own) started with `spawn`: a forked child
    would inherit the coordinator's threads' locks."""

    def __init__(self, shard_class=Shard):
        self.context = multiprocessing.get_context("spawn")
        self.shard_class = shard_class

    def fit(self, settings: dict, shards: int) -> dict:
        """Each worker's share of the cores: ONNX Runtime's threads in each."""
        threads = max(1, (os.cpu_count() or 1) // max(1, shards))
        return settings | {"cpus": threads, "threads": threads}

    def describe(self, settings: dict) -> str:
        return f"worker processes of {settings['threads']} engine thread{'s' * (settings['threads'] > 1)} each"

    def start(self, index: int, settings: dict, specs: list[str]) -> Worker:
        return Worker(self.context, self.shard_class, index, settings, specs)

    def configure(self, worker: Worker, specs: list[str]) -> None:
        worker.specs = specs  # what a restarted worker begins with
        try:
            worker.send(("configure", specs))
        except OSError:  # dead: the next drain starts it again, with these specs
            pass

    def drain(self, worker: Worker, states: bool) -> ProcessDrain:
        try:
            worker.send(("drain", states))
        except OSError as e:
            return ProcessDrain(worker, e)
        return ProcessDrain(worker)

    def kill(self, worker: Worker) -> None:
        try:
            worker.send(("stop", None))
        except OSError:
            pass
        worker.process.join(timeout=STOP_SECONDS)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()

    def stop_leftovers(self, needed: set[int]) -> None:
        pass  # workers end with their coordinator

    def unplaced(self, settings: dict) -> str | None:
        return None

    def shutdown(self) -> None:
        pass
