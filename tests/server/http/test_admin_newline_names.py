"""Admin paths whose last part may hold any text (a cache entry's key, a subscription's name) take a newline too.

Starlette's ``path`` converter is ``.*``, and '.' stops at a newline, so a key with a newline (``%0A``) matched no
route (404 for an entry that exists), and ``POST /subscriptions/%0A/replay`` fell to the route of a subscription
itself, whose converter ended its look-ahead at the newline: 405, a status the document does not list. Found by
the admin fuzz (``test_admin_fuzz``) in a random run.
"""

from __future__ import annotations

from tests.conftest import InProcess


async def test_a_cache_entry_whose_key_holds_a_newline_is_reachable(sqlite_server: InProcess) -> None:
    made = await sqlite_server.admin.post("/splice/admin/caches", json={"name": "lines"})
    assert made.status_code in (200, 201), made.text
    entry = "/splice/admin/caches/lines/entries/a%0Ab"
    put = await sqlite_server.admin.put(entry, json={"value": 1})
    assert put.status_code == 200, put.text
    got = await sqlite_server.admin.get(entry)
    assert got.status_code == 200, got.text
    assert got.json()["key"] == "a\nb"
    assert (await sqlite_server.admin.delete(entry)).status_code == 200


async def test_a_subscription_path_with_a_newline_gets_a_documented_answer(sqlite_server: InProcess) -> None:
    answer = await sqlite_server.admin.post("/splice/admin/subscriptions/%0A/replay", json={})
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
