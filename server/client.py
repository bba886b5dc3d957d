"""A small client of the admin API (standard library only), used by the CLI and other tools."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .core.errors import SpliceError


class ClientError(SpliceError):
    """The admin API refused a call, or could not be reached."""

    def __init__(self, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class Unreachable(ClientError):
    pass


class AdminClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0, actor: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.actor = actor
        """Sent as ``X-Splice-Actor``: who the servers' logs and the deployment history say did it."""

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The JSON answer of ``method path``; raises ``ClientError`` with the server's message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if self.actor:
            request.add_header("X-Splice-Actor", self.actor)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.loads(response.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"error": {"message": raw.decode(errors="replace")[:500]}}
            message = parsed.get("error", {}).get("message") or f"HTTP {exc.code}"
            raise ClientError(message, exc.code, parsed) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach {self.base_url}: {reason}") from None


def ping(base_url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The ping answer of a server, or ``None`` if it does not answer."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/splice/ping", timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except (urllib.error.URLError, OSError, ValueError):
        return None


__all__ = ["AdminClient", "ClientError", "Unreachable", "ping"]
