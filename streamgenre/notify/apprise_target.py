"""Chat, e-mail and the rest through Apprise (https://github.com/caronc/apprise): one URL per service, as
BirdNET-Pi takes them (discord://, tgram://, mailto://, ntfy://, ...)."""

from __future__ import annotations

import logging
import urllib.parse

from . import Delivery, NotifyError, NotifyMetrics


class AppriseTarget(Delivery):
    def __init__(self, url: str, metrics: NotifyMetrics):
        try:
            import apprise
        except ImportError:
            raise NotifyError(f"{urllib.parse.urlsplit(url).scheme}:// is an Apprise URL: "
                              f"pip install \"streamgenre[notify]\"") from None
        scheme = urllib.parse.urlsplit(url).scheme.lower() or url.split(":", 1)[0]
        self.apprise = apprise.Apprise()
        quiet = logging.getLogger("apprise")
        level, quiet.level = quiet.level, logging.CRITICAL  # a URL it does not take is our one-line error, not its
        try:
            taken = self.apprise.add(url)
        finally:
            quiet.setLevel(level)
        if not taken:
            raise NotifyError(f"{scheme}://: not a URL Apprise takes (https://github.com/caronc/apprise/wiki)")
        super().__init__(f"apprise {scheme}://", metrics)

    def send(self, event: dict) -> None:
        title = f"streamgenre: {event['event'].replace('_', ' ')}" + (f" ({event['stream']})" if event["stream"] else "")
        if not self.apprise.notify(title=title, body=event["message"]):
            raise NotifyError("Apprise could not deliver it (its log says why)")
