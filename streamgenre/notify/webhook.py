"""A webhook: each event a JSON POST to a URL (Slack-style receivers, Node-RED, n8n, a script of the station's)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from . import Delivery, NotifyError, NotifyMetrics, public_name

TIMEOUT_SECONDS = 10.0  # a receiver that hangs is a failed try after this


class Webhook(Delivery):
    def __init__(self, url: str, metrics: NotifyMetrics):
        if not urllib.parse.urlsplit(url).hostname:
            raise NotifyError(f"{public_name(url)}: a webhook needs a host")
        super().__init__(public_name(url), metrics)
        self.url = url

    def send(self, event: dict) -> None:
        request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "streamgenre"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read(65_536)
        except urllib.error.HTTPError as e:
            raise NotifyError(f"HTTP {e.code}") from None
