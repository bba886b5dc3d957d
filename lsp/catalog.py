"""The live cluster's catalog (deployed services, channels, servers, outgoing connections, topics), from the admin API.

Where the cluster is comes from ``ClusterSettings``: a URL and token, or a cluster directory whose
``cluster.toml`` and ``admin-token`` give them. ``Catalog.refresh`` does the blocking HTTP calls in a
worker thread (the server's event loop never waits on the network) and keeps the last answer; it
reports a change of reachability once (down, or back up), so a cluster that is down costs one
message, never one per keystroke. A cluster that does not list outgoing connections (a server from before
``GET /splice/admin/outgoing``, answering 404) leaves them unknown, ``None``: nothing is flagged then, and the
rest of the catalog stands; so does one that does not list topics (``GET /splice/admin/topics``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splice.server.client import AdminClient, ClientError
from splice.server.config import load_settings
from splice.server.core import SpliceError

from .index import Field
from .outgoing import Connection
from .topics import Topic, fetch_topics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSettings:
    url: str | None = None
    token: str | None = None
    directory: str | None = None
    refresh_seconds: float = 30.0

    @classmethod
    def from_options(cls, options: object) -> ClusterSettings:
        """From LSP ``initializationOptions`` or settings: ``{"splice": {...}}`` or the inner mapping itself."""
        if not isinstance(options, Mapping):
            return cls()
        inner = options.get("splice", options)
        if not isinstance(inner, Mapping):
            return cls()

        def text(key: str) -> str | None:
            value = inner.get(key)
            return value if isinstance(value, str) and value else None

        refresh = inner.get("refreshSeconds")
        return cls(
            text("clusterUrl"),
            text("token"),
            text("clusterDir"),
            float(refresh) if isinstance(refresh, int | float) and refresh > 0 else 30.0,
        )

    @property
    def configured(self) -> bool:
        return bool(self.url or self.directory)

    def endpoints(self) -> tuple[list[str], str]:
        """The admin API URLs to try and the token; raises ``SpliceError`` when the directory cannot give them."""
        urls = [self.url] if self.url else []
        token = self.token or ""
        if self.directory:
            settings = load_settings(Path(self.directory).expanduser(), {})
            urls += [server.url for server in settings.servers]
            if not token:
                try:
                    token = settings.token_file.read_text().strip()
                except OSError as exc:
                    raise SpliceError(f"cannot read the admin token {settings.token_file}: {exc}") from None
        return urls, token


@dataclass(frozen=True)
class DeployedService:
    name: str
    module: str
    path: str
    version: int
    doc: str
    is_async: bool
    input: tuple[Field, ...]
    output: tuple[Field, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeployedService:
        return cls(
            str(raw["name"]),
            str(raw.get("module", "")),
            str(raw.get("path", "")),
            int(raw.get("version", 0)),
            str(raw.get("doc", "")),
            bool(raw.get("async", False)),
            _fields(raw.get("input")),
            _fields(raw.get("output")),
        )


def _fields(raw: object) -> tuple[Field, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for item in raw:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            default = repr(item["default"]) if "default" in item else None
            out.append(Field(item["name"], str(item.get("type", "Any")), bool(item.get("required", False)), default))
    return tuple(out)


_Fetched = tuple[
    str,
    dict[str, DeployedService],
    list[dict[str, Any]],
    list[dict[str, Any]],
    tuple[Connection, ...] | None,
    tuple[Topic, ...] | None,
]
"""The URL asked, services, channels, servers, outgoing connections and topics."""


@dataclass
class Catalog:
    """The last answer of the cluster, and whether it answers."""

    settings: ClusterSettings = field(default_factory=ClusterSettings)
    services: dict[str, DeployedService] = field(default_factory=dict)
    channels: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    outgoing: tuple[Connection, ...] | None = None
    """The cluster's outgoing connections; ``None`` while the cluster has not listed them."""
    topics: tuple[Topic, ...] | None = None
    """The cluster's topics; ``None`` while the cluster has not listed them."""
    state: str = "unknown"
    """``unknown`` (never asked), ``up``, ``down``, or ``off`` (no cluster configured)."""
    error: str = ""
    url: str | None = None

    def inputs(self) -> dict[str, tuple[Field, ...] | None]:
        return {name: info.input for name, info in self.services.items()}

    def connections(self) -> tuple[Connection, ...] | None:
        """The outgoing connections to check names against: only while the cluster answers (no false alarms)."""
        return self.outgoing if self.state == "up" else None

    def known_topics(self) -> tuple[Topic, ...] | None:
        """The topics to check names against: only while the cluster answers."""
        return self.topics if self.state == "up" else None

    async def refresh(self) -> str | None:
        """Fetch everything again; returns a message when the cluster went down or came back, else ``None``."""
        if not self.settings.configured:
            self.state = "off"
            return None
        before = self.state
        try:
            url, services, channels, servers, outgoing, topics = await asyncio.to_thread(self._fetch)
        except SpliceError as exc:
            self.state, self.error = "down", str(exc)
            logger.info("cluster catalog unavailable: %s", exc)
            if before != "down":
                return f"Splice: the cluster is not reachable ({exc}); completion and checks use the workspace only."
            return None
        self.url, self.services, self.channels, self.servers = url, services, channels, servers
        self.outgoing, self.topics = outgoing, topics
        self.state, self.error = "up", ""
        if before == "down":
            return f"Splice: the cluster at {url} is reachable again ({len(services)} services)."
        return None

    def _fetch(self) -> _Fetched:
        client = self.client()
        raw = client.call("GET", "/splice/admin/services").get("services", [])
        services = {item["name"]: DeployedService.from_json(item) for item in raw if isinstance(item, Mapping)}
        channels = list(client.call("GET", "/splice/admin/channels").get("channels", []))
        try:
            servers = list(client.call("GET", "/splice/admin/cluster").get("servers", []))
        except ClientError:
            servers = []
        return client.base_url, services, channels, servers, _outgoing(client), fetch_topics(client)

    def client(self, timeout: float = 3.0) -> AdminClient:
        """A client of the first configured server that answers; raises ``SpliceError`` when none does."""
        from splice.server.client import ping

        urls, token = self.settings.endpoints()
        if not urls:
            raise SpliceError("no cluster URL is configured")
        for url in urls:
            if url == self.url or ping(url, 1.0) is not None:
                return AdminClient(url, token, timeout)
        raise SpliceError(f"no server answers at {', '.join(urls)}")

    def deploy(self, path: str, source: str) -> dict[str, Any]:
        """Deploy one module (blocking: call it in a thread); raises ``ClientError`` with the server's answer."""
        body = {"modules": [{"path": path, "source": source}], "deployed_by": "splice-lsp"}
        return self.client(timeout=60.0).call("POST", "/splice/admin/deploy", body)

    def where(self, name: str) -> str:
        """Where a service runs, for completion details and hovers: e.g. ``v3 on server1, server2``."""
        info = self.services.get(name)
        if info is None:
            return ""
        live = [str(s.get("name")) for s in self.servers if s.get("live", True)]
        return f"v{info.version}" + (f" on {', '.join(live)}" if live else "")


def _outgoing(client: AdminClient) -> tuple[Connection, ...] | None:
    try:
        raw = client.call("GET", "/splice/admin/outgoing").get("outgoing", [])
    except ClientError as exc:
        # 404: a server from before the endpoint. Any refusal leaves connections unknown, never the catalog lost.
        logger.info("outgoing connections not listed (%s): their names are not checked", exc)
        return None
    if not isinstance(raw, list):
        return None
    return tuple(Connection.from_json(item) for item in raw if isinstance(item, Mapping) and "name" in item)


__all__ = ["Catalog", "ClusterSettings", "DeployedService"]
