"""The internal token: derived from the cluster key, the same for every process holding that key, another for
another key or another cluster; and the paths it opens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from splice.server.cluster.credentials import internal_token
from splice.server.config import load_settings, render_config
from splice.server.connections.secrets import KEY_FILE, KEY_VARIABLE, SecretsError
from splice.server.environment import settings_from_environment
from splice.server.http.admin import internal_path


def cluster_dir(path: Path, name: str = "shop") -> Path:
    path.mkdir(parents=True)
    (path / "cluster.toml").write_text(render_config(name, "sqlite+aiosqlite:///odb.sqlite", [("s1", "127.0.0.1", 1)]))
    return path


def test_it_is_derived_from_the_key_file_made_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    one = cluster_dir(tmp_path / "one")
    token = internal_token(load_settings(one))
    assert len(token) == 64
    assert set(token) <= set("0123456789abcdef")
    assert stat.S_IMODE((one / KEY_FILE).stat().st_mode) == 0o600
    assert token not in (one / KEY_FILE).read_text()
    assert internal_token(load_settings(one)) == token  # the key is kept, not remade

    copy = cluster_dir(tmp_path / "copy")  # another host's directory with a copy of the key
    (copy / KEY_FILE).write_bytes((one / KEY_FILE).read_bytes())
    assert internal_token(load_settings(copy)) == token

    assert internal_token(load_settings(cluster_dir(tmp_path / "own"))) != token  # a key of its own
    other = cluster_dir(tmp_path / "other", name="warehouse")  # the same key, another cluster
    (other / KEY_FILE).write_bytes((one / KEY_FILE).read_bytes())
    assert internal_token(load_settings(other)) != token


def test_the_variable_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_VARIABLE, key)
    first = internal_token(load_settings(cluster_dir(tmp_path / "a")))
    assert internal_token(load_settings(cluster_dir(tmp_path / "b"))) == first
    assert not (tmp_path / "a" / KEY_FILE).exists()


def test_a_server_configured_by_the_environment_alone_needs_the_key(tmp_path: Path) -> None:
    """Each container making a key of its own would give each its own token: its peers would refuse it."""
    environ = {
        "SPLICE_ODB": "postgresql+asyncpg://splice@db/splice",
        "SPLICE_SERVER_NAME": "s1",
        "SPLICE_HOST": "127.0.0.1",
    }
    settings = settings_from_environment(tmp_path, environ)
    assert KEY_VARIABLE not in os.environ
    with pytest.raises(SecretsError, match=KEY_VARIABLE):
        internal_token(settings)
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize(
    ("path", "opens"),
    [
        ("/splice/admin/cluster/sync", True),
        ("/splice/admin/cluster/events", True),
        ("/splice/admin/scheduler/dispatch", True),
        ("/splice/admin/pickup", True),
        ("/splice/admin/outgoing/billing/ping", True),
        ("/splice/admin/deploy", False),
        ("/splice/admin/cluster", False),
        ("/splice/admin/cluster/sync/", False),
        ("/splice/admin/pickup/x", False),
        ("/splice/admin/outgoing/billing", False),
        ("/splice/admin/outgoing/a/b/ping", False),
        ("/splice/admin/outgoing//ping", False),
        ("/splice/admin/debug", False),
        ("/splice/metrics", False),
        ("/splice/openapi.json", False),
        ("/splice/admin/apply", False),
    ],
)
def test_the_paths_it_opens(path: str, opens: bool) -> None:
    assert internal_path(path) is opens
