"""What an AMQP channel reads from a message and what it writes on the copies it sends (pure, no I/O).

A delivered message becomes a service's payload, headers and cid here; a failed one becomes the properties of
its retry copy or of its dead letter. ``AmqpChannels`` (``amqp.py``) does the broker work around these.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

ATTEMPT = "x-splice-attempt"
"""Which delivery of a message this is (1 when absent): the retry copies carry it, counted up."""
CID = "x-splice-cid"
MAX_ERROR = 2000
"""The longest ``x-splice-error`` a dead letter carries (the broker caps a message's headers)."""
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
"""Headers RabbitMQ writes when it dead-letters a message (from the retry queue): not copied to a new message."""
_CID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,100}$")


class Undecodable(ValueError):
    """A message body its content type says is JSON (or text) but that is not: it goes to the dead letters."""


def payload_of(body: bytes, content_type: str | None) -> Any:
    """The service's payload: JSON for ``application/json`` (``+json`` too, or a body that parses as JSON when
    there is no content type), ``str`` for ``text/*`` (in its ``charset``, UTF-8 by default), else the bytes.
    An empty body is ``None``, as on a REST channel."""
    if not body:
        return None
    kind, _, parameters = (content_type or "").partition(";")
    kind = kind.strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise Undecodable(f"the body is not valid JSON ({kind}): {exc}") from None
    if not kind:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return body
    if kind.startswith("text/"):
        charset = _charset(parameters)
        try:
            return body.decode(charset)
        except LookupError:
            raise Undecodable(f"the content type names an unknown charset {charset!r}") from None
        except UnicodeDecodeError as exc:
            raise Undecodable(f"the text body is not valid {charset}: {exc}") from None
    return body


def _charset(parameters: str) -> str:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                return codecs.lookup(charset).name
            except LookupError:
                return charset
    return "utf-8"


def text_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A message's headers as a service sees them (``self.request.headers``): lower-case names, text values.

    Bytes are read as UTF-8, booleans as ``true``/``false``, times as ISO-8601, arrays and tables as JSON."""
    return {name.lower(): _text(value) for name, value in (headers or {}).items()}


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode(errors="replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=_text, separators=(",", ":"))
    return str(value)


def cid_of(headers: Mapping[str, Any] | None, correlation_id: str | None) -> str | None:
    """The call's cid: the ``x-splice-cid`` header, else the correlation id, if either looks like an id."""
    for value in ((headers or {}).get(CID), correlation_id):
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and _CID.fullmatch(value):
            return value
    return None


def attempt_of(headers: Mapping[str, Any] | None) -> int:
    """Which attempt this delivery is: ``x-splice-attempt`` (1 when absent or not a positive number)."""
    value = (headers or {}).get(ATTEMPT)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def retry_delay(backoff: float, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` after attempt ``attempt`` failed: ``backoff``, doubled each time."""
    return float(backoff * 2 ** (attempt - 1))


def copied_headers(
    headers: Mapping[str, Any] | None, extra: Mapping[str, Any], drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The headers of a new copy of a message: its own but ``drop`` and RabbitMQ's dead-lettering record (the
    broker writes that anew), with ``extra``."""
    gone = (*_BROKER_HEADERS, *drop)
    kept = {k: v for k, v in (headers or {}).items() if not k.lower().startswith(gone)}
    kept.update(extra)
    return kept


def error_text(error: BaseException) -> str:
    """What ``x-splice-error`` says: the error's message, cut to ``MAX_ERROR`` characters."""
    text = str(error) or type(error).__name__
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


__all__ = [
    "ATTEMPT",
    "CID",
    "MAX_ERROR",
    "Undecodable",
    "attempt_of",
    "cid_of",
    "copied_headers",
    "error_text",
    "payload_of",
    "retry_delay",
    "text_headers",
]
