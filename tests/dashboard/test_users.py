"""The dashboard's users file: create, refuse, delete, new passwords, verify; mode 0600, no password in it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from splice.dashboard import User, UserError, Users

PASSWORD = "correct horse battery"


def test_create_then_verify(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    users.create("vic", PASSWORD, "viewer")
    assert users.names() == ["ada", "vic"]
    assert users.verify("ada", PASSWORD) == User("ada", "admin")
    assert users.verify("vic", PASSWORD) == User("vic", "viewer")
    assert users.get("vic") is not None
    assert not users.get("vic").may_change  # type: ignore[union-attr]
    # another process's view of the same file
    assert Users(tmp_path / "users.json").verify("ada", PASSWORD) == User("ada", "admin")


def test_the_file_is_0600_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    Users(path).create("ada", PASSWORD, "admin")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    assert json.loads(text)["users"]["ada"]["hash"].startswith("scrypt$")


def test_verify_with_a_wrong_password_or_an_unknown_name(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    assert users.verify("ada", PASSWORD + "x") is None
    assert users.verify("ada", "") is None
    assert users.verify("nobody", PASSWORD) is None
    assert users.verify("ada", "x" * 5000) is None


def test_a_second_user_of_the_same_name_is_refused(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    with pytest.raises(UserError, match="there is a user named 'ada' already"):
        users.create("ada", "another password", "viewer")
    assert users.verify("ada", PASSWORD) == User("ada", "admin")


def test_bad_role_short_password_bad_name(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    with pytest.raises(UserError, match="role must be one of admin, viewer, got 'root'"):
        users.create("ada", PASSWORD, "root")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="too short: at least 8"):
        users.create("ada", "short", "admin")
    with pytest.raises(UserError, match="1 to 64 letters"):
        users.create("a b", PASSWORD, "admin")
    with pytest.raises(UserError, match="1 to 64 letters"):
        users.create("<script>", PASSWORD, "admin")
    assert users.names() == []
    assert not (tmp_path / "users.json").exists()


def test_delete(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    users.delete("ada")
    assert users.verify("ada", PASSWORD) is None
    assert Users(tmp_path / "users.json").names() == []
    with pytest.raises(UserError, match="no dashboard user named 'ada' \\(users: none\\)"):
        users.delete("ada")


def test_set_password(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    before = users.stamp("ada")
    users.set_password("ada", "a new password")
    assert users.verify("ada", PASSWORD) is None
    assert users.verify("ada", "a new password") == User("ada", "admin")
    assert users.stamp("ada") != before  # what ends the sessions opened with the old password
    with pytest.raises(UserError, match="too short"):
        users.set_password("ada", "short")
    with pytest.raises(UserError, match="no dashboard user named 'bob' \\(users: ada\\)"):
        users.set_password("bob", "a new password")


def test_changes_by_another_process_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    running = Users(path)
    assert running.reload_if_changed() is False
    generation = running.generation
    Users(path).create("ada", PASSWORD, "admin")
    assert running.reload_if_changed() is True
    assert running.generation > generation
    assert running.reload_if_changed() is False  # one stat, nothing read again
    Users(path).delete("ada")
    assert running.reload_if_changed() is True
    assert running.stamp("ada") is None


def test_a_broken_file_keeps_the_users_read_before(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "users.json"
    running = Users(path)
    Users(path).create("ada", PASSWORD, "admin")
    running.reload_if_changed()
    path.write_text('{"users": {')
    assert running.reload_if_changed() is False
    assert running.names() == ["ada"]
    assert f"{path}: not a users file (line 1" in caplog.text


def test_an_entry_without_a_known_role_cannot_log_in(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    Users(path).create("ada", PASSWORD, "admin")
    data = json.loads(path.read_text())
    data["users"]["ada"]["role"] = "root"
    path.write_text(json.dumps(data))
    assert Users(path).verify("ada", PASSWORD) is None
