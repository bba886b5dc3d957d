"""What the property tests of the parsers found, seen through the admin API: a refusal naming the field, not a 500.

- ``POST /jobs`` with a cron field of over 4,300 digits: ``int()`` raised a bare ``ValueError``.
- ``POST /apply`` with deeply nested arrays in the file: ``tomllib`` raised ``RecursionError``.
"""

from __future__ import annotations

from tests.conftest import InProcess


async def test_a_cron_field_of_thousands_of_digits_is_refused_naming_the_field(sqlite_server: InProcess) -> None:
    body = {"name": "huge", "service": "tools.record", "cron": "1" * 5000 + " * * * *"}
    answer = await sqlite_server.admin.post("/splice/admin/jobs", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert "cron field 'minute'" in error["message"]
    assert "(5000 digits) is out of range 0-59" in error["message"]


async def test_a_declaration_nested_too_deeply_is_refused_naming_the_file(sqlite_server: InProcess) -> None:
    body = {"file": "deep.toml", "text": "a = " + "[" * 100_000, "dry_run": True}
    answer = await sqlite_server.admin.post("/splice/admin/apply", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "deep.toml" in error["message"]
    assert "nested too deeply" in error["message"]
