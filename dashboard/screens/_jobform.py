"""Pure helpers of the Jobs screen: the job form as the admin API's JSON body (what the user typed, numbers as
numbers, not judged: the admin API refuses naming the field), a stored job as the form's values, and the fields
an edit changed (for ``PATCH``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("interval", "cron", "once")
UNITS = ("seconds", "minutes", "hours", "days", "weeks")
TRIGGER_FIELDS = ("kind", "every", "unit", "start", "repeats", "cron", "timezone", "at", "in")
MISFIRES = ("run_once", "skip")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def typed(text: str) -> Any:
    """``"12"`` -> 12, ``"1.5"`` -> 1.5, anything else as typed."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


@dataclass(frozen=True)
class Mistake:
    """A field the dashboard cannot even send (a payload that is not JSON): where, and why."""

    field: str
    message: str


def _text(form: Mapping[str, str], key: str) -> str:
    return str(form.get(key, "")).strip()


def trigger(form: Mapping[str, str]) -> dict[str, Any]:
    """The trigger fields of the kind chosen (the others' fields are ignored: they are hidden in the form)."""
    kind = _text(form, "kind")
    body: dict[str, Any] = {}
    if kind == "interval":
        every = _text(form, "every")
        if every:
            value = typed(every)
            unit = _text(form, "unit") or "seconds"
            body["interval"] = {unit: value} if isinstance(value, int | float) else every
        if _text(form, "start"):
            body["start"] = _text(form, "start")
        if _text(form, "repeats"):
            body["repeats"] = typed(_text(form, "repeats"))
    elif kind == "cron":
        body["cron"] = _text(form, "cron")
        if _text(form, "timezone"):
            body["timezone"] = _text(form, "timezone")
    elif kind == "once":
        if _text(form, "at"):
            body["at"] = _text(form, "at")
        if _text(form, "in"):
            body["in"] = typed(_text(form, "in"))
    return body


def payload(form: Mapping[str, str]) -> tuple[Any, Mistake | None]:
    text = str(form.get("payload", "")).strip()
    if not text:
        return None, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, Mistake("payload", f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}")


def body(form: Mapping[str, str]) -> tuple[dict[str, Any], Mistake | None]:
    """A create body: name, service, the trigger, and the options given."""
    value, mistake = payload(form)
    found: dict[str, Any] = {"name": _text(form, "name"), "service": _text(form, "service"), **trigger(form)}
    if value is not None:
        found["payload"] = value
    for key in ("retries", "backoff"):
        if _text(form, key):
            found[key] = typed(_text(form, key))
    if _text(form, "misfire"):
        found["misfire"] = _text(form, "misfire")
    if form.get("paused"):
        found["paused"] = True
    return found, mistake


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def form_values(job: Mapping[str, Any]) -> dict[str, str]:
    """A stored job as the edit form shows it (and as ``changes`` compares it)."""
    stored = job.get("trigger") or {}
    kind = stored.get("kind", "interval")
    values = {key: "" for key in TRIGGER_FIELDS}
    values["kind"] = kind
    values["unit"] = "seconds"
    if kind == "interval":
        parts = {unit: float(stored.get(unit) or 0) for unit in UNITS}
        given = [unit for unit, amount in parts.items() if amount]
        if len(given) == 1:
            values["every"], values["unit"] = _number(parts[given[0]]), given[0]
        else:
            factor = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
            values["every"] = _number(sum(parts[u] * factor[u] for u in UNITS))
        values["start"] = str(stored.get("start") or "")
        values["repeats"] = "" if stored.get("repeats") is None else str(stored["repeats"])
    elif kind == "cron":
        values["cron"] = str(stored.get("expression") or "")
        values["timezone"] = str(stored.get("timezone") or "")
    else:
        values["at"] = str(stored.get("at") or "")
    shown = job.get("payload")
    values.update(
        service=str(job.get("service", "")),
        payload="" if shown is None else json.dumps(shown, indent=2),
        misfire=str(job.get("misfire", "run_once")),
        retries=str(job.get("retries", "")),
        backoff=_number(job["backoff"]) if isinstance(job.get("backoff"), int | float) else "",
        paused="on" if job.get("paused") else "",
    )
    return values


def changes(form: Mapping[str, str], job: Mapping[str, Any]) -> tuple[dict[str, Any], Mistake | None]:
    """The fields of ``form`` that differ from ``job`` (the whole trigger if any of its fields changed)."""
    before = form_values(job)
    changed: dict[str, Any] = {}
    if any(_text(form, key) != before[key] for key in TRIGGER_FIELDS):
        changed.update(trigger(form))
    value, mistake = payload(form)
    if mistake is None and value != job.get("payload"):
        changed["payload"] = value
    if _text(form, "service") != before["service"]:
        changed["service"] = _text(form, "service")
    if _text(form, "misfire") != before["misfire"]:
        changed["misfire"] = _text(form, "misfire")
    for key in ("retries", "backoff"):
        if _text(form, key) != before[key] and typed(_text(form, key)) != job.get(key):
            changed[key] = typed(_text(form, key))
    if bool(form.get("paused")) != bool(job.get("paused")):
        changed["paused"] = bool(form.get("paused"))
    return changed, mistake


__all__ = ["KINDS", "MISFIRES", "UNITS", "Mistake", "body", "changes", "form_values", "payload", "trigger", "typed"]
