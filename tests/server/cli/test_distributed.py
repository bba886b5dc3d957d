"""``splice create server DIR --odb URL --cluster NAME``: an owner-only directory, and the word that it needs the
cluster's key (the internal token and outgoing secrets derive from it: a key of its own would lock it out)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from splice.server.cli.distributed import create_cluster, create_odb, create_server_directory
from splice.server.connections.secrets import KEY_FILE, KEY_VARIABLE


def test_a_new_server_directory_is_owner_only_and_says_to_copy_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    odb = f"sqlite+aiosqlite:///{tmp_path / 'odb.sqlite'}"
    create_odb(odb)
    create_cluster(odb, "shop", tmp_path / "admin-token")
    (tmp_path / "host-b").mkdir(mode=0o755)
    create_server_directory(tmp_path / "host-b", odb=odb, cluster="shop", name="web2", host="h", port=1, redis=None)
    said = capsys.readouterr().out
    assert f"Copy {KEY_FILE}" in said
    assert str(tmp_path / "host-b" / KEY_FILE) in said
    assert KEY_VARIABLE in said
    assert stat.S_IMODE((tmp_path / "host-b").stat().st_mode) == 0o700

    monkeypatch.setenv(KEY_VARIABLE, "set")
    create_server_directory(tmp_path / "host-c", odb=odb, cluster="shop", name="web3", host="h", port=2, redis=None)
    assert f"cluster key: ${KEY_VARIABLE}" in capsys.readouterr().out
