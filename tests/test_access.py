"""Who may read the daemon: foreign web pages and rebound host names are refused, a token where one is set, a cap on
clients; secrets in source URLs are never shown. Real daemon, real clients, on 127.0.0.1."""

import asyncio
import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from daemon import running_daemon
from streamgenre.access import redact


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read().decode()


async def ws_status(port: int, path: str = "/", **kwargs) -> int:
    """101 where the WebSocket opens (and says hello), else the HTTP status it was refused with."""
    try:
        async with connect(f"ws://127.0.0.1:{port}{path}", **kwargs) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def test_redact_takes_out_passwords_and_query_values():
    assert redact("http://dj:hunter2@radio.example:8000/live.mp3?token=abc&x=1") == \
        "http://dj:***@radio.example:8000/live.mp3?token=***&x=***"
    assert redact("https://radio.example/live.mp3") == "https://radio.example/live.mp3"


def test_foreign_origins_and_rebound_host_names_are_refused(music_file):
    with running_daemon(f"song={music_file}", "--allow-origin", "https://studio.example") as (port, _):
        async def origins():
            return [await ws_status(port),  # a program, not a browser: no Origin
                    await ws_status(port, origin=f"http://127.0.0.1:{port}"),  # the overlay page, served here
                    await ws_status(port, origin="https://studio.example"),  # allowed
                    await ws_status(port, origin="https://evil.example")]
        assert asyncio.run(origins()) == [101, 101, 101, 403]
        assert get(port, "/api/now")[0] == 200
        assert get(port, "/api/now", {"Host": f"localhost:{port}"})[0] == 200
        status, body = get(port, "/api/now", {"Host": f"evil.example:{port}"})  # DNS rebinding
        assert status == 403 and "evil.example" in body and "song" not in body
        assert get(port, "/healthz", {"Host": "evil.example"})[0] == 403


def test_a_token_guards_websocket_and_http(music_file):
    with running_daemon(f"song={music_file}", "--token", "s3cret") as (port, _):
        assert get(port, "/api/now")[0] == 401
        assert get(port, "/api/now", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(port, "/api/now", {"Authorization": "Bearer s3cret"})[0] == 200
        assert get(port, "/metrics?token=s3cret")[0] == 200
        async def tries():
            return [await ws_status(port), await ws_status(port, "/?token=s3cret"),
                    await ws_status(port, additional_headers={"Authorization": "Bearer s3cret"})]
        assert asyncio.run(tries()) == [401, 101, 101]


def test_listening_beyond_loopback_needs_a_token(music_file):
    run = subprocess.run([sys.executable, "-m", "streamgenre", "serve", str(music_file), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=30)  # refused before it binds anything
    assert run.returncode == 2
    assert run.stderr.strip() == ("streamgenre: error: listening on 0.0.0.0 (beyond loopback) needs a token: "
                                  '--token or token = "..."')


def test_clients_are_capped_and_http_still_answers(music_file):
    with running_daemon(f"song={music_file}", "--max-clients", "3") as (port, _):
        async def crowd():
            held = [await connect(f"ws://127.0.0.1:{port}") for _ in range(3)]
            refused = await ws_status(port)
            health = await asyncio.to_thread(get, port, "/api/now")  # plain HTTP is not capped
            await held.pop().close()
            await asyncio.sleep(0.2)
            admitted = await ws_status(port)
            for ws in held:
                await ws.close()
            return refused, health[0], admitted
        assert asyncio.run(crowd()) == (503, 200, 101)


@pytest.mark.parametrize("spec", ["http://dj:hunter2@127.0.0.1:9/live.mp3?token=abc123"])
def test_secrets_in_source_urls_are_never_shown(spec, music_file):
    with running_daemon(f"radio={spec}", f"song={music_file}") as (port, proc):
        async def listen():
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                texts = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
            return texts
        texts = asyncio.run(listen())
        texts.append(get(port, "/healthz")[1])
        texts.append(get(port, "/api/now")[1])
    log = proc.stdout.read()
    shown = "\n".join(texts) + log
    assert "127.0.0.1:9" in shown and "***" in shown  # the source is reported...
    assert "hunter2" not in shown and "abc123" not in shown  # ...without its secrets


def test_descriptors_are_kept_for_sources_under_a_low_limit():
    """Under a hard limit of 100 descriptors, 256 clients (and as many connections before their handshake) do not
    fit beside 3 sources: the cap is lowered."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100));"
            "from streamgenre.access import Access; a = Access('127.0.0.1'); print(a.fit_descriptors(3)); "
            "print(a.max_clients); b = Access('127.0.0.1', max_clients=5); print(b.fit_descriptors(3))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert out == ["max clients lowered to 6: 100 file descriptors, 88 kept for sources", "6", "None"]


def test_methods_other_than_get_are_refused(music_file):
    with running_daemon(f"song={music_file}") as (port, _):
        for method in ("POST", "DELETE", "PUT"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request(method, "/api/now")
            response = conn.getresponse()
            assert (response.status, response.getheader("Allow")) == (405, "GET")
        assert get(port, "/api/now")[0] == 200


def test_pipelined_requests_get_an_answer_and_no_traceback(music_file):
    with running_daemon(f"song={music_file}") as (port, proc):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/now HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"}")  # the first, then closed
        assert b'"song"' in answer and b"streamgenre_" not in answer
        assert asyncio.run(ws_status(port)) == 101  # WebSocket handshakes are untouched
    log = proc.stdout.read()
    assert "Traceback" not in log and "AssertionError" not in log


def raw_request(port: int, text: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(text.encode())
        return s.recv(4096).decode(errors="replace")


def test_duplicate_headers_are_a_400_not_a_traceback(music_file):
    with running_daemon(f"song={music_file}") as (port, proc):
        host = raw_request(port, "GET /api/now HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n")
        origin = raw_request(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                   "Origin: http://127.0.0.1\r\nOrigin: https://evil.example\r\n\r\n")
        fine = get(port, "/api/now")
    output = proc.stdout.read()
    assert host.startswith("HTTP/1.1 400") and "more than one Host header" in host
    assert origin.startswith("HTTP/1.1 400") and "more than one Origin header" in origin
    assert fine[0] == 200 and "Traceback" not in output


def test_a_token_on_the_command_line_is_warned_about(music_file):
    with running_daemon(f"song={music_file}", "--token", "s3cret") as (port, proc):
        status = get(port, "/api/now", {"Authorization": "Bearer s3cret"})[0]
    output = proc.stdout.read()
    assert status == 200 and "--token on the command line can be read by every user" in output
    assert "s3cret" not in output


@pytest.mark.parametrize("config, says", [
    ("source = 5\n", "source must be [[source]] tables"),
    ('[[source]]\nname = "my radio"\nfile = "x.wav"\n', "source name 'my radio': letters, digits"),
])
def test_bad_sources_in_the_config_are_one_line(tmp_path, config, says):
    path = tmp_path / "streamgenre.toml"
    path.write_text(config)
    run = subprocess.run([sys.executable, "-m", "streamgenre", "serve", "--config", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and says in run.stderr and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_crowd_beyond_the_cap_cannot_take_the_descriptors(music_file):
    """Under a real `ulimit -n 1024`: 1,100 WebSocket upgrades that never read, then 400 connections that never ask
    for anything. Refused clients are closed at once, waiting ones are bounded, and /healthz answers throughout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # this side holds 1,300 sockets
    crowd = []
    try:
        with running_daemon(f"song={music_file}", descriptors=1024) as (port, proc):
            for _ in range(1100):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(UPGRADE)
                crowd.append(s)
            time.sleep(1)
            assert get(port, "/healthz") == (200, "ok\n")
            assert open_descriptors(proc.pid) < 2 * 256 + 64 + 8  # clients, handshakes, the reserve, a source's
            for _ in range(400):
                crowd.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            assert get(port, "/healthz") == (200, "ok\n")
            assert open_descriptors(proc.pid) < 2 * 256 + 64 + 8
            status, metrics = get(port, "/metrics")
            assert 0 < float(re.search(r"^streamgenre_clients (\S+)", metrics, re.M).group(1)) <= 256
            assert float(re.search(r"^streamgenre_connections_evicted_total (\S+)", metrics, re.M).group(1)) > 0
    finally:
        for s in crowd:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_with_a_token_the_host_is_still_checked(music_file):
    with running_daemon(f"song={music_file}", "--allow-host", "Studio.Example", env=dict(os.environ,
                        STREAMGENRE_TOKEN="s3cret")) as (port, _):
        bearer = {"Authorization": "Bearer s3cret"}
        assert get(port, "/api/now", bearer)[0] == 200
        assert get(port, "/api/now", bearer | {"Host": f"studio.example:{port}"})[0] == 200  # a name it was given
        evil = bearer | {"Host": f"evil.com:{port}", "Origin": f"http://evil.com:{port}"}
        status, body = get(port, "/api/now", evil)
        assert status == 403 and "evil.com" in body


def test_a_request_with_a_body_is_answered(music_file):
    with running_daemon(f"song={music_file}") as (port, _):
        for method, body, headers in (("POST", b'{"x": 1}', {}), ("PUT", b"x" * 100_000, {}),
                                      ("POST", iter([b"chunk"]), {"Transfer-Encoding": "chunked"})):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request(method, "/api/now", body=body, headers=headers)
            response = conn.getresponse()
            assert (response.status, response.getheader("Allow")) == (405, "GET")
        assert get(port, "/api/now")[0] == 200
