"""owner_only: group and other permissions go, the owner's stay."""

from __future__ import annotations

import stat
from pathlib import Path

from splice.server.files import is_owner_only, owner_only


def test_directories_become_0700_and_files_keep_only_their_owners_bits(tmp_path: Path) -> None:
    directory, plain, script = tmp_path / "d", tmp_path / "f", tmp_path / "x"
    directory.mkdir(mode=0o755)
    plain.write_text("")
    plain.chmod(0o644)
    script.write_text("")
    script.chmod(0o755)
    for path in (directory, plain, script, tmp_path / "missing"):
        owner_only(path)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (directory, plain, script)] == [0o700, 0o600, 0o700]
    assert all(is_owner_only(p) for p in (directory, plain, script))
