"""Where audio comes from: a sound card, a file, or a network stream. Each source writes into its own ring buffer.

A source runs on its own thread (PortAudio's callback thread for sound cards) and never touches the model; it
reports what happens to it (errors, reconnects, the end of a file) through `events`, which the pipeline drains.
"""

from __future__ import annotations

import base64
import collections
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from .access import redact
from .audio import SAMPLE_RATE, AudioError, check_file, decode_chunks, open_container, sanitize
from .ring import RingBuffer

RING_SECONDS = 10.0  # audio a source may hold before the oldest is overwritten
WRITE_SECONDS = 0.25  # files and network streams write their audio in blocks this long
CONNECT_TIMEOUT = 10.0
MAX_BACKOFF = 30.0


class Source:
    """Common state: the ring buffer, the sample rate written into it, counters, and an event queue."""

    kind = "source"

    def __init__(self, name: str, rate: int = SAMPLE_RATE):
        self.name = name
        self.rate = rate
        self.ring = RingBuffer(int(RING_SECONDS * rate))
        self.events: collections.deque[dict] = collections.deque(maxlen=100)
        self.title: str | None = None
        self.error: str | None = None  # the current problem, None while audio flows
        self.finished = False  # no more audio will come (end of file, fatal error)
        self.overflows = 0  # sound-card overflows reported by PortAudio
        self.reconnects = 0
        self.replaced_samples = 0  # NaN or infinite samples, written as silence
        self.skipped_packets = 0  # compressed packets that did not decode, skipped
        self.paced = True  # it delivers at real time (a file read as fast as possible does not)
        self._stop = threading.Event()

    def report(self, event: str, message: str) -> None:
        self.events.append({"event": event, "message": message})

    def fail(self, message: str) -> None:
        self.error = message
        self.report("error", message)

    def write(self, audio) -> None:
        """Into the ring, sanitized: a non-finite sample becomes silence, and the first such chunk is reported."""
        audio, replaced = sanitize(audio)
        if replaced:
            if not self.replaced_samples:
                self.report("replaced", f"{self.name}: NaN or infinite samples in the audio, replaced by silence")
            self.replaced_samples += replaced
        self.ring.write(audio)

    def skip(self, reason: str) -> None:
        """A packet that did not decode: counted, the first one reported; the audio around it plays on."""
        if not self.skipped_packets:
            self.report("skipped", f"{self.name}: undecodable audio skipped ({reason})")
        self.skipped_packets += 1

    def start(self) -> None:
        threading.Thread(target=self._run_safely, name=f"source-{self.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run_safely(self) -> None:
        try:
            self.run()
        except AudioError as e:
            self.fail(str(e))
        except Exception as e:  # a source must never take the daemon down
            self.fail(f"{self.name}: {type(e).__name__}: {e}")
        finally:
            self.finished = True

    def run(self) -> None:
        raise NotImplementedError

    def write_paced(self, chunks, realtime: bool) -> None:
        """Write decoded chunks; at real time, as a live feed would deliver them; else as fast as the reader takes.
        Chunks are written in blocks of at least WRITE_SECONDS: a decoder's frames are short (2048 samples), and
        hundreds of threads waking for each of them fight over the GIL until the pipeline starves."""
        started, sent = time.monotonic(), 0
        for chunk in _blocks(chunks, int(WRITE_SECONDS * self.rate)):
            if self._stop.is_set():
                return
            if realtime:
                ahead = started + sent / self.rate - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)
                elif ahead < -1.0:  # a stalled feed: do not burst to catch up
                    started, sent = time.monotonic(), 0
            else:
                while self.ring.free < len(chunk) and not self._stop.is_set():
                    self._stop.wait(0.01)
            self.write(chunk)
            sent += len(chunk)


    def write_as_it_comes(self, chunks) -> None:
        """Write decoded chunks in blocks as they arrive: a network stream is paced by its server, and the burst a
        server sends at connect (Icecast: several seconds) makes the first window at once instead of 3 s later."""
        for chunk in _blocks(chunks, int(WRITE_SECONDS * self.rate)):
            if self._stop.is_set():
                return
            self.write(chunk)


def _blocks(chunks, size: int):
    """The chunks joined into blocks of at least `size` samples (the last one shorter)."""
    held, count = [], 0
    for chunk in chunks:
        held.append(chunk)
        count += len(chunk)
        if count >= size:
            yield np.concatenate(held) if len(held) > 1 else held[0]
            held, count = [], 0
    if held:
        yield np.concatenate(held)


class FileSource(Source):
    """A file decoded as it plays, paced at real time (as if live) or as fast as the pipeline takes it; with `loop`,
    from the start again at its end (a jingle or a loop among live streams), as long as it gives audio."""

    kind = "file"

    def __init__(self, name: str, path: str | Path, realtime: bool = True, rate: int = SAMPLE_RATE,
                 loop: bool = False):
        super().__init__(name, rate)
        self.path = str(path)
        self.realtime, self.loop = realtime, loop
        self.paced = realtime
        check_file(path)

    def run(self) -> None:
        while True:
            before = self.ring.written
            with open_container(self.path) as container:
                self.write_paced(decode_chunks(container, self.path, self.skip, self.rate), self.realtime)
            if self._stop.is_set():
                return
            if not (self.loop and self.ring.written > before):
                self.report("ended", f"{self.path}: end of file")
                return
            self.report("looped", f"{self.path}: end of file, playing it from the start again")


class UrlSource(Source):
    """An HTTP(S) or Icecast stream (MP3, AAC, Ogg), reconnecting with exponential backoff when it drops.

    Asks for ICY metadata and strips it from the audio, keeping the "now playing" title. Credentials in the URL
    (`http://user:secret@host:8000/live.mp3`, how relays and protected mounts are reached) go as HTTP Basic auth;
    a server that refuses them is asked again only every MAX_BACKOFF seconds.
    """

    kind = "url"

    def __init__(self, name: str, url: str, rate: int = SAMPLE_RATE):
        super().__init__(name, rate)
        self.shown = redact(url)  # what messages and the log say: no password, no query values
        self.url, self.authorization = without_credentials(url)
        self._refused = False  # the server answered 401 or 403 last time

    def run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            delivered = self._listen_once()
            if self._stop.is_set():
                return
            backoff = 1.0 if delivered else MAX_BACKOFF if self._refused else backoff
            self.reconnects += 1
            self.report("reconnecting", f"{self.shown}: reconnecting in {backoff:.0f} s")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)  # 1 s, then doubling while it does not deliver

    def _listen_once(self) -> bool:
        """One connection; True if it delivered audio before it ended."""
        before, self._refused = self.ring.written, False
        headers = {"Icy-MetaData": "1", "User-Agent": "streamgenre"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        try:
            request = urllib.request.Request(self.url, headers=headers)
            with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT) as response:
                reader = IcyReader(response, int(response.headers.get("icy-metaint") or 0), self._set_title)
                with open_container(reader, CONNECT_TIMEOUT, self.shown) as container:
                    if self.error:
                        self.report("recovered", f"{self.shown}: connected again, audio flows")
                    self.error = None
                    self.write_as_it_comes(decode_chunks(container, self.shown, self.skip, self.rate))
            if not self._stop.is_set():  # stopped by the daemon is not the stream's end
                self.fail(f"{self.shown}: the stream ended")
        except AudioError as e:
            self.fail(str(e).replace(self.url, self.shown))
        except urllib.error.HTTPError as e:
            self._refused = e.code in (401, 403)
            why = {401: "the server wants credentials (user:password@ in the URL)" if not self.authorization
                   else "the server refused the credentials", 403: "access forbidden"}.get(e.code, e.reason)
            self.fail(f"{self.shown}: HTTP {e.code}: {why}")
        except OSError as e:  # refused, unreachable, timed out
            self.fail(f"{self.shown}: {getattr(e, 'reason', None) or e}")
        except Exception as e:  # whatever else a hostile stream causes: a reconnect, never the source's end
            self.fail(f"{self.shown}: {type(e).__name__}: {e}")
        return self.ring.written > before

    def _set_title(self, title: str) -> None:
        if title != self.title:
            self.title = title
            self.report("title", title)


def without_credentials(url: str) -> tuple[str, str | None]:
    """The URL with any user:password@ taken out, and the HTTP Basic Authorization header they make (or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    user, password = urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


class IcyReader:
    """A file-like view of an HTTP response with the ICY metadata blocks taken out. A read returns what has
    arrived (`read1`) rather than waiting for all it asked for: FFmpeg asks for 32 KiB, two seconds of a 128-kbit/s
    stream, and a feed that stalls would otherwise keep its last seconds from ever being classified."""

    TITLE = re.compile(rb"StreamTitle='(.*?)';", re.S)

    def __init__(self, response, metaint: int, on_title):
        self.response, self.metaint, self.on_title = response, metaint, on_title
        self._until_meta = metaint

    def read(self, size: int = -1) -> bytes:
        if not self.metaint:
            return self.response.read1(size)
        if self._until_meta == 0:
            length = self.response.read(1)
            if not length:
                return b""
            meta = self.response.read(length[0] * 16)
            match = self.TITLE.search(meta)
            if match:
                self.on_title(match.group(1).decode("utf-8", "replace"))
            self._until_meta = self.metaint
        size = self._until_meta if size < 0 else min(size, self._until_meta)
        data = self.response.read1(size)
        self._until_meta -= len(data)
        return data


class DeviceSource(Source):
    """A sound card through PortAudio. The callback only copies into the ring buffer (downmixing in place) and
    counts overflows; resampling to the model's rate happens on the consumer side."""

    kind = "device"

    def __init__(self, name: str, device: str):
        index = find_device(device)
        sounddevice = _portaudio()
        info = sounddevice.query_devices(index)
        super().__init__(name, int(info["default_samplerate"]))
        self.device = index
        self.device_name = info["name"]
        self.channels = min(2, int(info["max_input_channels"]))
        try:
            self._stream = sounddevice.InputStream(
                device=index, channels=self.channels, samplerate=self.rate, dtype="float32", callback=self._callback
            )
        except sounddevice.PortAudioError as e:
            raise AudioError(f"{self.device_name}: cannot open: {e}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.write(indata)

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.close()


class BrokenSource(Source):
    """A source that could not be opened: kept so that its error shows in status messages and health checks."""

    kind = "broken"

    def __init__(self, name: str, error: str):
        super().__init__(name)
        self.fail(error)
        self.finished = True

    def start(self) -> None:
        pass


def _portaudio():
    """sounddevice, or a clear error where the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError as e:
        raise AudioError(f"no sound-card support: {e} (install PortAudio: apt-get install libportaudio2)") from None
    return sounddevice


def input_devices() -> list[dict]:
    sounddevice = _portaudio()
    apis = sounddevice.query_hostapis()
    return [
        {"index": i, "name": d["name"], "channels": d["max_input_channels"], "rate": d["default_samplerate"],
         "api": apis[d["hostapi"]]["name"]}
        for i, d in enumerate(sounddevice.query_devices()) if d["max_input_channels"] > 0
    ]


def find_device(spec: str | int | None) -> int:
    """An input device by index or by part of its name (None: the default input); a clear error otherwise."""
    sounddevice = _portaudio()
    devices = input_devices()
    listing = "; ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
    if spec is None or spec == "" or spec == "default":
        default = sounddevice.default.device[0]
        if default is None or default < 0:
            if not devices:
                raise AudioError(f"no input device (available: {listing})")
            return devices[0]["index"]
        return int(default)
    spec = str(spec)
    if spec.isdigit():
        if any(d["index"] == int(spec) for d in devices):
            return int(spec)
        raise AudioError(f"no input device with index {spec} (available: {listing})")
    matches = [d for d in devices if spec.lower() in d["name"].lower()]
    if not matches:
        raise AudioError(f"no input device named like '{spec}' (available: {listing})")
    return matches[0]["index"]


def split_spec(spec: str) -> tuple[str, str, str]:
    """`[name=]device:ID`, `[name=]PATH` or `[name=]URL` -> (name, kind, target): kind is `device`, `url` or
    `file`, and the name defaults to "device", the host or the file stem."""
    name, target = spec.split("=", 1) if re.match(r"^[\w.-]+=", spec) else ("", spec)
    if target.startswith("device:") or target == "device":
        return name or "device", "device", target
    if re.match(r"^(https?|icy)://", target):
        return name or urllib.parse.urlsplit(target).hostname or "stream", "url", target
    return name or Path(target).stem, "file", target


def parse_source(spec: str, realtime: bool = True, rate: int = SAMPLE_RATE, loop: bool = False) -> Source:
    """The source of a spec (split_spec). Files and streams are decoded at `rate` (the model's); a sound card
    delivers its own. Files play once, or again and again with `loop`."""
    name, kind, target = split_spec(spec)
    if kind == "device":
        return DeviceSource(name, target.partition(":")[2] or None)
    if kind == "url":
        return UrlSource(name, target.replace("icy://", "http://", 1), rate)
    return FileSource(name, target, realtime, rate, loop)
