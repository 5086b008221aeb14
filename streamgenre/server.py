"""The daemon's port: the WebSocket broadcast (protocol in docs/protocol.md) and a few plain HTTP routes.

Every prediction and status message goes to every subscribed client. HTTP: `/` and `/overlay` (the OBS overlay
page, a packaged asset), `/api/now` (latest prediction per stream), `/api/history` (the genre log's segments),
`/metrics` (Prometheus), `/healthz`; nothing else, and no files from disk.

A slow client never delays the others: every client walks one shared backlog of the latest BACKLOG messages at its
own pace; one that falls further behind skips the oldest, and what it skips is counted. Whatever a client sends
besides a subscription is ignored and counted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from importlib.resources import files

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websocket_serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .access import Access

PROTOCOL_VERSION = 1
BACKLOG = 4096  # messages kept for clients that are behind; one further behind skips the oldest (counted)
BODY_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding)[ \t]*:[^\r\n]*", re.IGNORECASE)
OPEN_TIMEOUT = 5.0  # seconds a connection has to send its request and take the answer

log = logging.getLogger("streamgenre.server")


class Client:
    def __init__(self, connection: ServerConnection, cursor: int):
        self.connection = connection
        self.cursor = cursor  # the index of the next message it is due
        self.subscription: set[str] | None = None  # None: every stream
        self.skipped = 0  # messages it fell too far behind to get, counted when it moved past them

    def wants(self, stream: str | None) -> bool:
        return self.subscription is None or stream is None or stream in self.subscription


class Broadcaster:
    """Holds the connected clients and one backlog of the latest BACKLOG messages; `publish` may be called from any
    thread. Publishing is one append, whatever the number of clients: each client's sender walks the backlog at its
    own pace and sleeps when it is caught up, so clients that never read cost nothing per message and cannot starve
    the ones that do."""

    def __init__(self, hello: Callable[[], dict]):
        self.hello = hello  # the first message to each client, made when it connects
        self.clients: set[Client] = set()
        self.ignored_messages = 0
        self.dropped_total = 0  # drops of clients that have left; connected ones: dropped(client)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.published = 0  # messages so far; message k is _backlog[k % BACKLOG] while k >= published - BACKLOG
        self._backlog: list[tuple[str | None, str] | None] = [None] * BACKLOG
        self._arrived = asyncio.Event()  # set, and replaced, at each message: wakes the senders that wait

    def publish(self, message: dict) -> None:
        """Thread-safe: hand a message to the event loop, which appends it to the backlog."""
        if self.loop:
            text = json.dumps(message, allow_nan=False)  # what JSON.parse takes: no NaN, no Infinity
            self.loop.call_soon_threadsafe(self._append, message.get("stream"), text)

    def _append(self, stream: str | None, text: str) -> None:
        self._backlog[self.published % BACKLOG] = (stream, text)
        self.published += 1
        self._arrived.set()
        self._arrived = asyncio.Event()

    def dropped(self, client: Client) -> int:
        """Messages a client has lost: skipped already, or overwritten before it got to them."""
        return client.skipped + max(0, self.published - BACKLOG - client.cursor)

    async def handler(self, connection: ServerConnection) -> None:
        await connection.send(json.dumps(self.hello()))
        client = Client(connection, self.published)
        self.clients.add(client)
        sender = asyncio.create_task(self._send(client))
        try:
            async for raw in connection:
                self._receive(client, raw)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            self.dropped_total += self.dropped(client)
            sender.cancel()

    def _receive(self, client: Client, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            names = message["subscribe"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError
        except (ValueError, TypeError, KeyError, IndexError):
            self.ignored_messages += 1
            log.debug("ignored a client message: %.80r", raw)
            return
        client.subscription = set(names)

    async def _send(self, client: Client) -> None:
        try:
            while True:
                if client.cursor == self.published:
                    await self._arrived.wait()
                    continue
                oldest = self.published - BACKLOG
                if client.cursor < oldest:
                    client.skipped += oldest - client.cursor
                    client.cursor = oldest
                stream, text = self._backlog[client.cursor % BACKLOG]
                client.cursor += 1
                if client.wants(stream):
                    await client.connection.send(text)
        except ConnectionClosed:
            pass


class Handshakes:
    """Connections that have not finished their opening handshake, at most `limit` at once (as many as the clients,
    so that all of them may reconnect at once): each holds a descriptor until it asks for something, so a crowd
    that connects and waits could take the descriptors kept for sources. When one more arrives, the one that has
    waited longest is closed (and counted): a health check, which asks at once, gets through such a crowd."""

    def __init__(self, limit: int):
        self.limit = limit
        self.pending: dict[HandshakeFirst, None] = {}  # oldest first
        self.evicted = 0

    def arrived(self, connection: HandshakeFirst) -> None:
        if len(self.pending) >= self.limit:
            oldest = next(iter(self.pending))
            self.left(oldest)
            self.evicted += 1
            oldest.transport.abort()
        self.pending[connection] = None

    def left(self, connection: HandshakeFirst) -> None:
        self.pending.pop(connection, None)


class HandshakeFirst(ServerConnection):
    """A connection that holds a descriptor only while it needs one: `Handshakes` bounds those that wait for their
    handshake, and an answer that is not a WebSocket (a refusal, a plain HTTP route) is flushed and the socket
    closed at once, where websockets would wait up to its close timeout for the client to hang up (a crowd of refused
    clients that never read kept 10 s of descriptors each, and exhausted them).

    And websockets reads whatever follows a request's headers as WebSocket frames, even before it has answered the
    request: a second HTTP request pipelined behind the first fails that read, and answering the first then raises
    (an AssertionError in the log, no answer). Here the bytes after the headers wait until the answer is sent: they
    are frames if the connection became a WebSocket, and are dropped with the connection if it was plain HTTP.
    A request body is never read: websockets closes a request that announces one without an answer, so its
    Content-Length and Transfer-Encoding headers are taken out and the request is answered (POST: 405)."""

    HELD_AT_MOST = 65536

    def __init__(self, *args, handshakes: Handshakes, **kwargs):
        super().__init__(*args, **kwargs)
        self._handshakes = handshakes
        self._head = b""  # the request's headers, until their end has arrived
        self._held: bytes | None = None  # what came after the headers, until the answer is sent

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._handshakes.arrived(self)

    def connection_lost(self, exc) -> None:
        self._handshakes.left(self)
        super().connection_lost(exc)

    def send_data(self) -> None:
        super().send_data()
        if self.protocol.state is not State.OPEN and self.response is not None:
            self.transport.close()  # after what is buffered is written: no waiting for the client to hang up

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            if self.protocol.state is State.CONNECTING:
                self._held = (self._held + data)[: self.HELD_AT_MOST]
                return None
            return super().data_received(data)
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) <= self.HELD_AT_MOST:
            return None
        head, rest = (self._head[: end + 4], self._head[end + 4 :]) if end >= 0 else (self._head, b"")
        self._head, self._held = b"", rest[: self.HELD_AT_MOST]
        return super().data_received(BODY_HEADERS.sub(b"", head))

    async def handshake(self, *args, **kwargs) -> None:
        try:
            await super().handshake(*args, **kwargs)
        finally:
            self._handshakes.left(self)
        held, self._held = self._held or b"", b""
        if held and self.protocol.state is State.OPEN:
            super().data_received(held)


def http_routes(pipeline, broadcaster: Broadcaster, access: Access, handshakes: Handshakes, history=None):
    """`process_request` for the WebSocket server: refuse what `access` refuses, answer plain HTTP GETs, let
    WebSocket upgrades through. `history` is the genre log's recorder, or None where it is off."""
    overlay = files("streamgenre.assets").joinpath("overlay.html").read_text()
    dashboard = files("streamgenre.assets").joinpath("dashboard.html").read_text()
    pipeline.metrics.watch(pipeline.streams, broadcaster, handshakes)

    def respond(connection, status, body: str, content_type: str):
        response = connection.respond(status, body)
        del response.headers["Content-Type"]  # headers are a multi-dict: replace, not add
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-store"
        return response

    async def process_request(connection, request):
        if request.method != "GET":
            response = respond(connection, HTTPStatus.METHOD_NOT_ALLOWED, "only GET\n", "text/plain")
            response.headers["Allow"] = "GET"
            return response
        refused = access.refusal(request, len(broadcaster.clients))
        if refused:
            status, reason = refused
            log.warning("refused a request from %s: %s", connection.remote_address[0], reason)
            return respond(connection, status, reason + "\n", "text/plain")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        if path in ("/", "/overlay"):
            return respond(connection, HTTPStatus.OK, overlay, "text/html; charset=utf-8")
        if path == "/dashboard":
            return respond(connection, HTTPStatus.OK, dashboard, "text/html; charset=utf-8")
        if path == "/api/now":
            now = {s.name: s.last for s in pipeline.streams}
            return respond(connection, HTTPStatus.OK, json.dumps(now), "application/json")
        if path == "/metrics":
            return respond(connection, HTTPStatus.OK, pipeline.metrics.text().decode(), CONTENT_TYPE_LATEST)
        if path == "/api/history":
            return await history_response(connection, request, history, respond)
        if path == "/healthz":
            problems = [problem] if (problem := pipeline.problem()) else []
            problems += [problem] if history and (problem := history.problem()) else []
            problems += [f"{s.name}: {problem}" for s in pipeline.streams if (problem := s.problem())]
            if problems:
                return respond(connection, HTTPStatus.SERVICE_UNAVAILABLE, "; ".join(problems) + "\n", "text/plain")
            return respond(connection, HTTPStatus.OK, "ok\n", "text/plain")
        return respond(connection, HTTPStatus.NOT_FOUND, "not found\n", "text/plain")

    return process_request


HISTORY_LIMIT = 10_000  # segments in one /api/history answer at most (limit=); the next page from its cursor
HISTORY_PAGE = 1_000  # segments in one answer when the request gives no limit
HISTORY_READ_SECONDS = 3.0  # a history read that takes longer answers 503


async def history_response(connection, request, history, respond):
    """GET /api/history?stream=&since=&until=&limit=&cursor= (times as `streamgenre report` takes them): a page of
    segments, JSON, with the cursor of the next page. The database is read and the answer built in a thread, never
    on the event loop: a slow or hung database answers 503 after HISTORY_READ_SECONDS, and /healthz, the WebSocket
    and everything else are served meanwhile."""
    from .history import HistoryError

    if history is None:
        return respond(connection, HTTPStatus.NOT_FOUND, "the history is off (--history off)\n", "text/plain")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
    try:
        body = await asyncio.wait_for(asyncio.to_thread(history_page, history.location, query),
                                      HISTORY_READ_SECONDS)
    except TimeoutError:
        return respond(connection, HTTPStatus.SERVICE_UNAVAILABLE, f"the history database did not answer within "
                       f"{HISTORY_READ_SECONDS:g} s\n", "text/plain")
    except ValueError as e:
        return respond(connection, HTTPStatus.BAD_REQUEST, f"{e}\n", "text/plain")
    except HistoryError as e:
        return respond(connection, HTTPStatus.SERVICE_UNAVAILABLE, f"{e}\n", "text/plain")
    except Exception as e:  # whatever else the database says of a request: one line, never a traceback
        log.error("history: a read failed: %s: %s", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return respond(connection, HTTPStatus.SERVICE_UNAVAILABLE, "the history database failed to answer\n",
                       "text/plain")
    return respond(connection, HTTPStatus.OK, body, "application/json")


def history_page(location: str, query: dict) -> str:
    """One /api/history answer as JSON text; ValueError for parameters it does not take."""
    from .history.report import parse_time
    from .history.store import read_segments, segment_json

    if any(any(ord(c) < 32 for c in value) for values in query.values() for value in values):
        raise ValueError("control characters in the query")
    since, until = (parse_time(query[k][0]) if k in query else None for k in ("since", "until"))
    limit = query.get("limit", [str(HISTORY_PAGE)])[0]
    if not limit.isdigit() or not 1 <= int(limit) <= HISTORY_LIMIT:
        raise ValueError(f"limit {limit!r}: a whole number from 1 to {HISTORY_LIMIT}")
    after = None
    if "cursor" in query:
        time_text, _, segment_id = query["cursor"][0].partition(",")
        try:
            after = (float(time_text), segment_id)
        except ValueError:
            raise ValueError(f"cursor {query['cursor'][0]!r}: give back the cursor of an earlier answer") from None
    rows = read_segments(location, query.get("stream", [None])[0], since, until, int(limit) + 1, after)
    page, more = rows[: int(limit)], len(rows) > int(limit)
    cursor = f"{page[-1]['start_time']!r},{page[-1]['id']}" if more else None
    return json.dumps({"segments": [segment_json(r) for r in page], "complete": not more, "cursor": cursor})


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about READY=1, WATCHDOG=1 or STOPPING=1; nothing when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), address)


async def serve(pipeline, broadcaster: Broadcaster, access: Access, port: int, stop: asyncio.Event,
                history=None) -> None:
    """Run the WebSocket server and the pipeline until `stop` is set; ping systemd's watchdog meanwhile."""
    broadcaster.loop = asyncio.get_running_loop()
    watchdog = int(os.environ.get("WATCHDOG_USEC", 0)) / 2e6
    handshakes = Handshakes(access.max_clients)
    async with websocket_serve(broadcaster.handler, access.listen, port, max_size=2**16, ping_interval=20,
                               open_timeout=OPEN_TIMEOUT,
                               process_request=http_routes(pipeline, broadcaster, access, handshakes, history),
                               create_connection=functools.partial(HandshakeFirst, handshakes=handshakes)):
        pipeline.start()
        log.info("serving ws://%s:%d (at most %d clients)", access.listen, port, access.max_clients)
        sd_notify("READY=1")
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=watchdog or 5.0)
            except asyncio.TimeoutError:
                if watchdog and pipeline.alive:
                    sd_notify("WATCHDOG=1")
        sd_notify("STOPPING=1")
        pipeline.stop()
