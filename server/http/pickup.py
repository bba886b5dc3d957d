"""``GET /splice/admin/pickup``: the pickup directories, which server acts on each, and its last batch.

Only the server holding a directory's lease knows its last batch; any other server asks the holder
(``?local=1`` stops that from going further) and answers with what it said.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..cluster import _pickup_rules as rules

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
_ASK_TIMEOUT = 2.0


async def pickup_status(runtime: Runtime, request: Request, body: None) -> Any:
    mine = {d["path"]: d for d in runtime.pickup.status()}
    leases = await runtime.repository.leases("pickup:")
    now = datetime.now(UTC)
    dirs = []
    for root in dict.fromkeys(runtime.settings.pickup_dirs):
        lease = leases.get(rules.tag(str(root)))
        held = lease is not None and lease["expires_at"] is not None and lease["expires_at"] > now
        local = mine.get(str(root), {})
        dirs.append(
            {
                "path": str(root),
                "holder": lease["holder"] if lease is not None and held else None,
                "lease_expires_at": lease["expires_at"].isoformat() if lease is not None and held else None,
                "acting": bool(local.get("acting")),
                "last_batch": local.get("last_batch"),
            }
        )
    if request.query_params.get("local") is None:
        await _ask_holders(runtime, dirs)
    return {
        "server": runtime.server.name,
        "config_files": "supported",
        "dirs": dirs,
    }


async def _ask_holders(runtime: Runtime, dirs: list[dict[str, Any]]) -> None:
    """Fill in the last batch of directories another server acts on, as that server reports it."""
    others = {d["holder"] for d in dirs if d["holder"] not in (None, runtime.server.member)}
    if not others:
        return
    import httpx  # here, not at the top: it costs start-up time and only this rare path needs it

    urls = {s["name"]: s["url"] for s in await runtime.repository.servers()}
    headers = {"Authorization": f"Bearer {runtime.repository.internal_token}"}
    async with httpx.AsyncClient(headers=headers, timeout=_ASK_TIMEOUT) as client:
        for holder in sorted(others):
            if holder not in urls:
                continue
            try:
                answer = await client.get(f"{urls[holder]}/splice/admin/pickup", params={"local": "1"})
                theirs = {d["path"]: d for d in answer.raise_for_status().json()["dirs"]}
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                logger.warning("cannot ask %s for its pickup batches: %s", holder, exc)
                continue
            for directory in dirs:
                if directory["holder"] == holder and directory["path"] in theirs:
                    directory["last_batch"] = theirs[directory["path"]].get("last_batch")
