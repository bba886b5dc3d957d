"""Slowing down password guessing at the login form.

Failed logins are counted, within ``WINDOW`` seconds, three ways; each count has free failures, then every
further try waits twice as long as the one before, never more than ``MAX_WAIT`` seconds after the last failure:

- one name from one address (``FREE_PER_PAIR``): someone mistyping, or guessing one user's password;
- one address, whatever the names (``FREE_PER_ADDRESS``): guessing while rotating user names;
- one name, whatever the addresses (``FREE_PER_NAME``): guessing one user's password from many addresses.

The last one is the only count someone else can drive up for a user: a browser that logged in as that user
before (it holds a signed device cookie, see ``device_token``) is exempt from it, so a stranger cannot keep a user
out; everyone else waits at most ``MAX_WAIT``. A try counts from the moment it starts (``attempt``), so many tries
sent at once are slowed like tries one after another; a successful login takes its own try back.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

WINDOW = 15 * 60
MAX_WAIT = 60.0
FREE_PER_PAIR = 3
FREE_PER_ADDRESS = 10
FREE_PER_NAME = 10
MAX_KEYS = 10_000
"""Counts kept at most (attackers choose names and may have many addresses): the oldest go first beyond it."""


@dataclass(frozen=True)
class Attempt:
    name: str
    address: str
    at: float


class Throttle:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._failures: dict[str, list[float]] = {}

    def wait(self, name: str, address: str, device: str | None = None, now: float | None = None) -> float:
        """Seconds until ``name`` from ``address`` may try again (0: now); ``device`` is the device cookie."""
        now = time.monotonic() if now is None else now
        limits = [(_pair(name, address), FREE_PER_PAIR), (_address(address), FREE_PER_ADDRESS)]
        if not self.known_device(name, device):
            limits.append((_name(name), FREE_PER_NAME))
        longest = 0.0
        for key, free in limits:
            failures = self._recent(key, now)
            if len(failures) >= free:
                delay = min(MAX_WAIT, 2.0 ** (len(failures) - free))
                longest = max(longest, failures[-1] + delay - now)
        return max(0.0, longest)

    def attempt(self, name: str, address: str, now: float | None = None) -> Attempt:
        """Count a try as failed from now on (``succeeded`` takes it back)."""
        attempt = Attempt(name, address, time.monotonic() if now is None else now)
        for key in (_pair(name, address), _address(address), _name(name)):
            self._failures.setdefault(key, []).append(attempt.at)
        if len(self._failures) > MAX_KEYS:
            self._prune(attempt.at)
        return attempt

    def failures(self, attempt: Attempt) -> int:
        """Failed tries of the attempt's name from its address within the window (this one included)."""
        return len(self._failures.get(_pair(attempt.name, attempt.address), []))

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: the name's counts start again; the address keeps its other failures."""
        self._failures.pop(_pair(attempt.name, attempt.address), None)
        self._failures.pop(_name(attempt.name), None)
        failures = self._failures.get(_address(attempt.address), [])
        if attempt.at in failures:
            failures.remove(attempt.at)
        if not failures:
            self._failures.pop(_address(attempt.address), None)

    def device_token(self, name: str) -> str:
        """The device cookie's value for a browser that logged in as ``name``."""
        mac = hmac.new(self._key, f"device:{name}".encode(), hashlib.sha256).hexdigest()
        return f"{name}:{mac}"

    def known_device(self, name: str, device: str | None) -> bool:
        return bool(device) and hmac.compare_digest(str(device).encode(), self.device_token(name).encode())

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < WINDOW]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        excess = len(self._failures) - MAX_KEYS
        for key in list(self._failures)[: max(0, excess)]:
            del self._failures[key]


def _pair(name: str, address: str) -> str:
    return f"pair:{address}:{name}"


def _address(address: str) -> str:
    return f"address:{address}"


def _name(name: str) -> str:
    return f"name:{name}"


__all__ = ["FREE_PER_ADDRESS", "FREE_PER_NAME", "FREE_PER_PAIR", "MAX_WAIT", "WINDOW", "Attempt", "Throttle"]
