"""The cluster key: made once with mode 0600, or taken from the environment; secrets round-trip; a wrong key says so."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from splice.server.connections import KEY_FILE, KEY_VARIABLE, ClusterKey, SecretsError


def test_the_key_file_is_made_once_owner_only(tmp_path: Path) -> None:
    first = ClusterKey.load(tmp_path, environ={})
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ClusterKey.load(tmp_path, environ={})
    assert again.id == first.id
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_secrets_round_trip_and_are_not_in_clear(tmp_path: Path) -> None:
    key = ClusterKey.load(tmp_path, environ={})
    token = key.encrypt({"password": "Zq8-distinctive"})
    assert "Zq8-distinctive" not in token
    assert key.decrypt(token, key.id, "outgoing connection 'crm'") == {"password": "Zq8-distinctive"}


def test_the_environment_variable_wins_over_the_file(tmp_path: Path) -> None:
    value = Fernet.generate_key().decode()
    key = ClusterKey.load(tmp_path, environ={KEY_VARIABLE: value})
    assert key.where == f"${KEY_VARIABLE}"
    assert not (tmp_path / KEY_FILE).exists()


def test_another_key_cannot_decrypt_and_says_which_keys(tmp_path: Path) -> None:
    mine = ClusterKey.load(tmp_path, environ={})
    other = ClusterKey(Fernet.generate_key(), "elsewhere")
    token = other.encrypt({"token": "t"})
    with pytest.raises(SecretsError) as caught:
        mine.decrypt(token, other.id, "outgoing connection 'billing'")
    message = str(caught.value)
    assert other.id in message
    assert mine.id in message
    assert "outgoing connection 'billing'" in message
    assert KEY_FILE in message
    assert KEY_VARIABLE in message


def test_a_malformed_key_is_refused_with_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match=KEY_VARIABLE):
        ClusterKey.load(tmp_path, environ={KEY_VARIABLE: "not-a-key"})
    (tmp_path / KEY_FILE).write_text("short\n")
    with pytest.raises(SecretsError, match=KEY_FILE):
        ClusterKey.load(tmp_path, environ={})


def test_without_create_a_missing_key_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match=f"set \\${KEY_VARIABLE} or copy {KEY_FILE}"):
        ClusterKey.load(tmp_path, environ={}, create=False)
