"""Who may read the daemon, and what it never shows.

A web page the operator visits can reach `127.0.0.1` too: a WebSocket from a foreign origin is refused (the overlay
page, served here, and OBS's browser source are same-origin), and every request must name this machine by address or
as `localhost` (a page that rebinds its own domain name to 127.0.0.1 is refused). The names beyond those that requests may
use are listed (`--allow-host`), token or not. Listening beyond loopback needs a
token, which clients send as `Authorization: Bearer TOKEN` or `?token=TOKEN`. Client count is capped, so that idle
clients cannot take the descriptors that sources need.

Source URLs may carry secrets (`user:pass@`, `?token=...`): `redact` takes them out of everything shown.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus

LOOPBACK_NAMES = ("localhost",)
MAX_CLIENTS = 256
RESERVED_DESCRIPTORS = 64  # for the model, logs, database; plus DESCRIPTORS_PER_SOURCE for each source
DESCRIPTORS_PER_SOURCE = 8  # a connection, a decoder's files, a reconnect overlapping the old socket


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    address = _address(host)
    return host in LOOPBACK_NAMES or (address is not None and address.is_loopback)


def redact(url: str) -> str:
    """A URL fit to show: the password and every query value replaced by `***`."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = re.sub(r"=[^&]*", "=***", parts.query)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _host_name(host_header: str) -> str:
    """`[::1]:8765` -> `::1`, `localhost:8765` -> `localhost`."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclass
class Access:
    listen: str  # the address the daemon listens on
    token: str | None = None
    allow_origins: tuple[str, ...] = ()
    max_clients: int = MAX_CLIENTS
    allow_hosts: tuple[str, ...] = ()  # names of this machine that requests may use besides addresses and localhost

    def check_settings(self) -> str | None:
        """Why these settings are unsafe, or None."""
        if not is_loopback(self.listen) and not self.token:
            return f"listening on {self.listen} (beyond loopback) needs a token: --token or token = \"...\""
        if self.max_clients < 1:
            return "--max-clients must be at least 1"
        return None

    def refusal(self, request, clients: int) -> tuple[HTTPStatus, str] | None:
        """(status, reason) to refuse a request with, or None to serve it. `clients`: WebSocket clients now."""
        headers = request.headers
        for name in ("Host", "Origin", "Authorization", "Upgrade"):
            if len(headers.get_all(name)) > 1:  # which one would count? a proxy and the daemon might disagree
                return HTTPStatus.BAD_REQUEST, f"more than one {name} header"
        name = _host_name(headers.get("Host", "")).lower()
        if not (name in LOOPBACK_NAMES or _address(name) is not None or name in (self.listen, *self.allow_hosts)):
            return HTTPStatus.FORBIDDEN, f"Host {name!r} is not this machine's address (--allow-host for its names)"
        if self.token and not hmac.compare_digest(self._presented_token(request).encode(), self.token.encode()):
            return HTTPStatus.UNAUTHORIZED, "a token is needed: Authorization: Bearer TOKEN or ?token=TOKEN"
        if headers.get("Upgrade", "").lower() == "websocket":
            origin = headers.get("Origin")
            same_origin = origin == f"http://{headers.get('Host', '')}"
            if origin is not None and not same_origin and origin not in self.allow_origins:
                return HTTPStatus.FORBIDDEN, f"origin {origin!r} is not allowed (--allow-origin)"
            if clients >= self.max_clients:
                return HTTPStatus.SERVICE_UNAVAILABLE, f"too many clients ({self.max_clients}); try again later"
        return None

    def fit_descriptors(self, sources: int) -> str | None:
        """Make room for max_clients, and as many connections again before their handshake (server.Handshakes),
        beside the sources' descriptors: raise the soft limit where the hard one allows, else lower max_clients.
        Returns what was lowered, or None."""
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        reserve = RESERVED_DESCRIPTORS + DESCRIPTORS_PER_SOURCE * sources
        need = 2 * self.max_clients + reserve
        if need > soft:
            soft = need if hard == resource.RLIM_INFINITY else min(hard, need)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if need <= soft:
            return None
        self.max_clients = max(1, (soft - reserve) // 2)
        return f"max clients lowered to {self.max_clients}: {soft} file descriptors, {reserve} kept for sources"

    @staticmethod
    def _presented_token(request) -> str:
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return bearer[len("Bearer ") :]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        return query.get("token", [""])[0]

