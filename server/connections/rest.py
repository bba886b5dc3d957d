"""REST connections (httpx): base URL, auth, timeouts, pooled keep-alive connections, retries with backoff.

``self.out.rest[name]`` is an ``httpx.AsyncClient`` in ``async def handle`` and an ``httpx.Client`` in
``def handle``: one of each per connection and server, made on first use and shared by every call, so
connections stay pooled and kept alive. Services use it and never close it (``async with`` and ``with``
close it too); if one does, the next call gets a new client. Cookies an upstream sets are not kept: the
client is shared by every service, so one caller's session must not travel with another's requests.

httpx is imported when a connection is first used, not when this module is (a server pays only for the
kinds it uses); what the clients send through is in ``_rest_transport``.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..core.naming import HEADER_PATTERN
from ..core.validation import Whole
from .registry import Connection, Kind, OutgoingSpec, register

if TYPE_CHECKING:
    import httpx

_TOKEN = re.compile(HEADER_PATTERN)
"""An HTTP header name (RFC 9110 token)."""
_VALUE = re.compile(r"[\t\x20-\x7e]*")
"""What a header value may hold here: visible ASCII, space and tab (no CR/LF that would end the header)."""


class RestSpec(OutgoingSpec):
    """``self.out.rest[name]``: an httpx client with ``address`` as its base URL.

    Auth follows the secret given: ``token`` -> ``Authorization: Bearer``, ``key`` -> the ``header`` (default
    ``X-API-Key``), ``password`` (with ``username``) -> HTTP Basic.
    """

    SECRETS: ClassVar[tuple[str, ...]] = ("password", "key", "token")

    SCHEMES: ClassVar[tuple[str, ...]] = ("http", "https")

    kind: Literal["rest"]
    header: str = Field(
        default="X-API-Key",
        min_length=1,
        max_length=200,
        description="where an API key goes",
        json_schema_extra={"pattern": HEADER_PATTERN},
    )
    timeout: float = Field(
        default=10.0, gt=0, le=3600, description="seconds to wait for each read, write or free pooled connection"
    )
    connect_timeout: float = Field(default=5.0, gt=0, le=600)
    retries: Whole = Field(default=2, ge=0, le=10, description="retries of idempotent methods (GET, HEAD, PUT, ...)")
    backoff: float = Field(default=0.2, ge=0, le=60, description="seconds before the first retry, doubled each time")
    verify: bool = Field(default=True, description="check the server's TLS certificate")
    ca_file: str | None = Field(default=None, max_length=1000, description="a PEM file of CAs to trust")
    max_connections: Whole = Field(default=20, ge=1, le=1000, description="pooled connections per server")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every request",
        json_schema_extra={
            "propertyNames": {"pattern": HEADER_PATTERN},
            "additionalProperties": {"type": "string", "pattern": f"^{_VALUE.pattern}$"},
        },
    )

    @classmethod
    def secret_problems(cls, username: str | None, secrets: Collection[str]) -> list[tuple[str, str]]:
        found = []
        if "password" in secrets and not username:
            found.append(("password", "a password (HTTP Basic) needs 'username' too"))
        if len(secrets) > 1:
            given = sorted(secrets)
            found.append(
                (given[-1], f"give one of password (Basic), key (API key), token (Bearer), not {' and '.join(given)}")
            )
        return found

    @field_validator("address")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"a REST connection's address is an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"not a valid HTTP header name: {value!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _header_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"not a valid HTTP header name: {name!r}")
            if not _VALUE.fullmatch(text):
                raise ValueError(f"header {name!r}: a value holds visible ASCII characters, spaces and tabs only")
        return value


class RestConnection:
    """One REST connection on one server: its two httpx clients, made on first use, and its ping."""

    def __init__(
        self,
        spec: RestSpec,
        headers: dict[str, str],
        password: str | None,
        server: str,
        network: httpx.MockTransport | None = None,
    ) -> None:
        self.spec = spec
        self.server = server
        self._headers = headers
        self._password = password
        self._network = network
        """What requests go through instead of the network: ``splice.testing``'s stubbed answers."""
        self._lock = threading.Lock()
        self._verify: ssl.SSLContext | bool | None = None
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._closed = False

    def client(self, blocking: bool) -> Any:
        made: httpx.Client | httpx.AsyncClient | None = self._sync if blocking else self._async
        if made is not None and not made.is_closed:
            return made
        return self._make(blocking)

    def _make(self, blocking: bool) -> httpx.Client | httpx.AsyncClient:
        import httpx

        from . import _rest_transport

        with self._lock:
            if self._closed:
                raise RuntimeError(f"outgoing connection '{self.spec.name}' was closed (it was replaced or removed)")
            made: httpx.Client | httpx.AsyncClient | None = self._sync if blocking else self._async
            if made is not None and not made.is_closed:
                return made
            spec = self.spec
            limits = httpx.Limits(max_connections=spec.max_connections, max_keepalive_connections=spec.max_connections)
            options: dict[str, Any] = {
                "base_url": spec.address,
                "auth": httpx.BasicAuth(spec.username or "", self._password) if self._password is not None else None,
                "headers": self._headers,
                "timeout": httpx.Timeout(spec.timeout, connect=spec.connect_timeout),
                "follow_redirects": False,
                "cookies": _no_cookies(),
                "trust_env": False,
            }
            policy = _rest_transport.retries(spec.retries, spec.backoff)
            verify = self._tls() if self._network is None else False
            transport = _rest_transport.transport(spec.name, verify, limits, policy, blocking, self._network)
            if isinstance(transport, _rest_transport.CallLog):
                self._sync = made = httpx.Client(transport=transport, **options)
            else:
                self._async = made = httpx.AsyncClient(transport=transport, **options)
            return made

    def _tls(self) -> ssl.SSLContext | bool:
        """What both clients verify the server's certificate with: made once (reading CA files takes a while)."""
        if self._verify is None:
            if not self.spec.verify:
                self._verify = False
            elif self.spec.ca_file is None:
                import httpx

                self._verify = httpx.create_ssl_context()
            else:
                try:
                    self._verify = ssl.create_default_context(cafile=self.spec.ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise OSError(
                        f"outgoing connection '{self.spec.name}': cannot load ca_file {self.spec.ca_file!r}: {exc}"
                    ) from exc
        return self._verify

    async def ping(self) -> str:
        """A HEAD of the address (a GET if HEAD is refused with 405), not retried: any HTTP answer counts."""
        from ._rest_transport import NO_RETRY, loggable

        client = self.client(False)
        started = time.perf_counter()
        address = self.spec.address
        response = await client.head(address, extensions={"retry": NO_RETRY})
        if response.status_code == 405:
            async with client.stream("GET", address, extensions={"retry": NO_RETRY}) as response:
                pass
        ms = (time.perf_counter() - started) * 1000
        return f"HTTP {response.status_code} in {ms:.1f} ms from {loggable(response.request.url)}"

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            blocking, self._sync = self._sync, None
            asynchronous, self._async = self._async, None
        if asynchronous is not None:
            await asynchronous.aclose()
        if blocking is not None:
            blocking.close()


def _no_cookies() -> Any:
    """A cookie jar that keeps none (see the module's docstring)."""
    from http.cookiejar import CookieJar, DefaultCookiePolicy

    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def _secret_header(spec: RestSpec, secret: str, value: str) -> None:
    if not _VALUE.fullmatch(value):
        # The value stays out of the message: it is a secret.
        raise ValueError(
            f"the {secret} of REST connection '{spec.name}' holds a character a header cannot carry"
            " (visible ASCII, spaces and tabs only)"
        )


def open_rest(
    spec: RestSpec, secrets: Mapping[str, str], server: str, network: httpx.MockTransport | None = None
) -> Connection:
    """A REST connection from its checked spec; no I/O (the clients are made on first use). With ``network``
    its requests go there, through the same headers, auth, cid, log line and retries (unit tests' stubs)."""
    headers = dict(spec.headers)
    token, key, password = secrets.get("token"), secrets.get("key"), secrets.get("password")
    if token is not None and password is not None:
        raise ValueError(
            f"REST connection '{spec.name}' has both a token and a password: both would be its Authorization header"
        )
    if password is not None and not spec.username:
        raise ValueError(f"REST connection '{spec.name}' has a password but no username (HTTP Basic needs both)")
    if token is not None:
        _secret_header(spec, "token", token)
        headers["Authorization"] = f"Bearer {token}"
    if key is not None:
        _secret_header(spec, "key", key)
        headers[spec.header] = key
    return RestConnection(spec, headers, password, server, network)


register(Kind("rest", RestSpec, open_rest))
