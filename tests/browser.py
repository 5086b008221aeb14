"""Headless Chromium driven over the DevTools protocol (through the project's own WebSocket library): a page of
the daemon, its state read by a JavaScript expression once ready, and a screenshot."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request

from websockets.asyncio.client import connect

from daemon import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def cdp(url: str):
    """A minimal Chrome DevTools Protocol client."""
    ws = await connect(url, max_size=2**26)
    counter = 0

    async def call(method, **params):
        nonlocal counter
        counter += 1
        await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("id") == counter:
                return reply.get("result", {})

    return ws, call


def read_page(url: str, expression: str, ready, attempts: int = 100, size: str = "1920,1080",
              settle: float = 0.8) -> tuple[dict, bytes]:
    """`url` in headless Chromium: the JSON that `expression` returns once ready(state) (looked at every 0.2 s,
    `attempts` times at most), and a screenshot `settle` seconds later."""
    devtools = free_port()
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--remote-debugging-port={devtools}", f"--window-size={size}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=2) as r:
                    page = next(t for t in json.load(r) if t["type"] == "page")
                break
            except (OSError, StopIteration):
                time.sleep(0.2)
        assert page, "Chromium did not start"

        async def read():
            ws, call = await cdp(page["webSocketDebuggerUrl"])
            state = {}
            for _ in range(attempts):
                result = await call("Runtime.evaluate", returnByValue=True,
                                    expression=f"(() => {{ try {{ return JSON.stringify({expression}) }} "
                                               f"catch (e) {{ return '{{}}' }} }})()")
                state = json.loads(result["result"].get("value", "{}"))
                if state and ready(state):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(settle)
            shot = await call("Page.captureScreenshot", format="png")
            await ws.close()
            return state, base64.b64decode(shot["data"])

        return asyncio.run(read())
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
