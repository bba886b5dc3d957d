"""Applying a declaration file (``splice.toml``) to the cluster: read, plan, write, tell every server.

The thin I/O around ``declare``: the cluster's current channels, security definitions and jobs come from the
ODB. Channels and security are changed in one ODB transaction, and one configuration change is recorded so
that every server reloads; then jobs are written through ``runtime.jobs`` (the scheduler sees them within its
poll interval), one at a time: should one fail, applying the file again finishes the work. A file that
changes nothing records nothing and says so.

Secrets: the file names environment variables (``password_env``, ``key_env``); the caller passes the
environment they are read from. ``splice apply`` reads its own environment and sends only the variables
the file names; a server applying a file from a pickup directory reads the environment it was started
with. Secrets are hashed before they are stored and never logged or answered.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from ..channels.security import hash_secret, verify_secret
from ..core.errors import NotFound
from . import reader as declare
from .reader import Declaration, DeclarationError, DeclarationProblem, Plan

if TYPE_CHECKING:
    from ..core.store import ServiceStore
    from ..jobs.manager import Jobs

logger = logging.getLogger(__name__)


class DeclaredStore(Protocol):
    """Where the cluster's channels and security definitions are kept (``splice.server.odb.OdbRepository``)."""

    async def list_channels(self) -> list[dict[str, Any]]: ...

    async def list_security(self) -> list[dict[str, Any]]: ...

    async def apply_declared(self, declaration: Declaration, plan: Plan, secret_hashes: dict[str, str]) -> None: ...


class Target(Protocol):
    """The cluster a declaration is applied to, as one of its servers sees it (``splice.server.runtime.Runtime``)."""

    @property
    def repository(self) -> DeclaredStore: ...

    @property
    def jobs(self) -> Jobs | None: ...

    @property
    def store(self) -> ServiceStore: ...

    async def config_changed(self, what: str, by: str = ...) -> list[dict[str, Any]]: ...


async def apply_file(
    runtime: Target, path: Path, environ: Mapping[str, str], where: str, *, by: str, prune: bool = False
) -> dict[str, Any]:
    """Apply the declaration file at ``path``, its secrets from ``environ`` (``where`` names that environment)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DeclarationError([DeclarationProblem(str(path), f"not valid UTF-8 at byte {exc.start}")]) from None
    except OSError as exc:
        raise DeclarationError([DeclarationProblem(str(path), f"cannot read it: {exc.strerror}")]) from None
    declaration = declare.parse(text, str(path))
    secrets = declare.resolve_secrets(declaration, environ, where)
    return await apply_declaration(runtime, declaration, secrets, by=by, prune=prune)


async def apply_declaration(
    runtime: Target,
    declaration: Declaration,
    secrets: Mapping[str, str],
    *,
    by: str,
    prune: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make the cluster hold ``declaration``; ``secrets`` by security definition name. Answers the plan carried out
    (or, with ``dry_run``, the plan that would be), and each server's outcome."""
    channels = await runtime.repository.list_channels()
    security = await runtime.repository.list_security()
    if declaration.jobs and runtime.jobs is None:
        problem = declaration.problem(declaration.jobs[0], "name", "this server keeps no jobs (it has no job store)")
        raise DeclarationError([problem])
    jobs = await runtime.jobs.all() if runtime.jobs is not None else []
    matches = await anyio.to_thread.run_sync(_secret_matches, declaration, security, secrets)
    services = set(runtime.store.snapshot())
    plan = declare.plan(declaration, channels, security, matches, prune, services, jobs)
    answer: dict[str, Any] = {**plan.as_dict(), "prune": prune, "dry_run": dry_run, "servers": []}
    if dry_run or not plan.changed:
        answer["status"] = "unchanged" if not plan.changed else "dry_run"
        return answer
    servers: list[dict[str, object]] = []
    if any(c.action != "unchanged" for c in plan.changes if c.kind != "job"):
        changed = [c.name for c in plan.of("security", "create", "update")]
        hashes = await anyio.to_thread.run_sync(lambda: {name: hash_secret(secrets[name]) for name in changed})
        await runtime.repository.apply_declared(declaration, plan, hashes)
        servers = await runtime.config_changed("apply", by[:200])
    await _apply_jobs(runtime, declaration, plan)
    logger.info("applied %s: %s", declaration.file, ", ".join(str(c) for c in plan.changes if c.action != "unchanged"))
    ok = all(s.get("status") == "deployed" for s in servers)
    answer.update(status="applied" if ok else "partial", servers=servers)
    return answer


async def _apply_jobs(runtime: Target, declaration: Declaration, plan: Plan) -> None:
    """Write the plan's jobs; servers need not reload for them (the scheduler watches the jobs)."""
    jobs = runtime.jobs
    if jobs is None:
        return
    bodies = {job.name: job.body for job in declaration.jobs}
    for change in plan.of("job", "create", "update"):
        await jobs.create(dict(bodies[change.name]), f"declared:{declaration.file}", replace=True)
    for change in plan.of("job", "delete"):
        with contextlib.suppress(NotFound):  # deleted meanwhile: what the plan wanted
            await jobs.delete(change.name)


def _secret_matches(
    declaration: Declaration, security: list[dict[str, Any]], secrets: Mapping[str, str]
) -> dict[str, bool]:
    """Whether each declared secret is the one already stored (scrypt: slow on purpose, so not on the loop)."""
    stored = {row["name"]: row["secret_hash"] for row in security}
    return {
        spec.name: verify_secret(secrets[spec.name], stored[spec.name])
        for spec in declaration.security
        if spec.name in stored
    }
