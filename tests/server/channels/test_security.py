"""Salted secret hashes and checking HTTP Basic and API key credentials."""

from __future__ import annotations

import base64
import re

import pytest

from splice.server.channels.security import SecurityDefinition, Verifier, hash_secret, verify_secret

# scrypt is slow on purpose: hash each secret once for the whole module.
PASSWORD_HASH = hash_secret("s3cret:with colon")
KEY_HASH = hash_secret("key-123")
BASIC = SecurityDefinition("web", "basic", PASSWORD_HASH, username="alice")
APIKEY = SecurityDefinition("api", "apikey", KEY_HASH)
CUSTOM = SecurityDefinition("custom", "apikey", KEY_HASH, header="X-Splice-Key")


def basic(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    return {"authorization": f"{scheme} {base64.b64encode(f'{user}:{password}'.encode()).decode()}"}


def test_hash_secret_is_salted() -> None:
    again = hash_secret("s3cret:with colon")
    assert re.fullmatch(r"scrypt\$[0-9a-f]{32}\$[0-9a-f]{64}", PASSWORD_HASH)
    assert again != PASSWORD_HASH
    assert verify_secret("s3cret:with colon", again)


@pytest.mark.parametrize(
    ("secret", "stored", "expected"),
    [
        ("s3cret:with colon", PASSWORD_HASH, True),
        ("s3cret:with colo", PASSWORD_HASH, False),
        ("", PASSWORD_HASH, False),
        ("key-123", KEY_HASH, True),
        ("key-123", PASSWORD_HASH, False),
        ("key-123", "", False),
        ("key-123", "scrypt$00", False),
        ("key-123", KEY_HASH.replace("scrypt", "bcrypt"), False),
        ("key-123", "scrypt$not-hex$00", False),
        ("key-123", KEY_HASH[:-1] + "é", False),
        ("key-123", KEY_HASH + "$extra", False),
    ],
)
def test_verify_secret(secret: str, stored: str, expected: bool) -> None:
    assert verify_secret(secret, stored) is expected


@pytest.mark.parametrize(
    ("definition", "headers", "expected"),
    [
        (BASIC, basic("alice", "s3cret:with colon"), True),
        (BASIC, basic("alice", "s3cret:with colon", scheme="basic"), True),
        (BASIC, basic("bob", "s3cret:with colon"), False),
        (BASIC, basic("Alice", "s3cret:with colon"), False),
        (BASIC, basic("alicé", "s3cret:with colon"), False),
        (BASIC, basic("alice", "wrong"), False),
        (BASIC, basic("alice", ""), False),
        (BASIC, basic("alice", "s3cret:with colon", scheme="Bearer"), False),
        (BASIC, {}, False),
        (BASIC, {"authorization": ""}, False),
        (BASIC, {"authorization": "Basic"}, False),
        (BASIC, {"authorization": "Basic !!!not-base64"}, False),
        (BASIC, {"authorization": "Basic YWxpY2U"}, False),  # bad padding
        (BASIC, {"authorization": "Basic " + base64.b64encode(b"alice").decode()}, False),  # no colon
        (BASIC, {"authorization": "Basic " + base64.b64encode(b"\xffalice:x").decode()}, False),  # not UTF-8
        (BASIC, {"x-api-key": "s3cret:with colon"}, False),
        (APIKEY, {"x-api-key": "key-123"}, True),
        (APIKEY, {"x-api-key": "key-12"}, False),
        (APIKEY, {"x-api-key": ""}, False),
        (APIKEY, {}, False),
        (APIKEY, basic("alice", "key-123"), False),
        (CUSTOM, {"x-splice-key": "key-123"}, True),
        (CUSTOM, {"x-api-key": "key-123"}, False),
        (CUSTOM, {"x-splice-key": "nope"}, False),
    ],
)
def test_verifier(definition: SecurityDefinition, headers: dict[str, str], expected: bool) -> None:
    assert Verifier().check(definition, headers) is expected


def test_verifier_remembers_only_what_it_verified() -> None:
    verifier = Verifier()
    good = {"x-api-key": "key-123"}
    assert verifier.check(APIKEY, good)
    assert verifier.check(APIKEY, good)  # from memory
    assert not verifier.check(APIKEY, {"x-api-key": "key-124"})
    # The same definition name with a new secret: the remembered key must not open it.
    rotated = SecurityDefinition("api", "apikey", PASSWORD_HASH)
    assert not verifier.check(rotated, good)
    assert verifier.check(rotated, {"x-api-key": "s3cret:with colon"})
