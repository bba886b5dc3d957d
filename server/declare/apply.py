"""Applying a declaration file (``splice.toml``) to the cluster: read, plan, write, tell every server.

The thin I/O around ``declare``: the cluster's current channels, security definitions, outgoing connections,
topics, subscriptions, topic permissions, caches and jobs come from the ODB. All but jobs are changed in one
ODB transaction (a failure leaves none of them changed), and one configuration change is recorded so that every
server reloads (its broker and caches with it); then jobs are written through ``runtime.jobs`` (the scheduler
sees them within its poll interval), one at a time: should one fail, applying the file again finishes the work.
A file that changes nothing records nothing and says so.

Secrets: the file names environment variables (``password_env``, ``key_env``, ``token_env``); the caller passes
the environment they are read from. ``splice apply`` reads its own environment and sends only the variables
the file names; a server applying a file from a pickup directory reads the environment it was started
with. A security definition's secret is hashed before it is stored, an outgoing connection's encrypted with
the cluster key (a server must send it); neither is logged or answered.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread

from ..channels.security import hash_secret, verify_secret
from ..connections import SecretsError
from ..core.errors import NotFound
from . import reader as declare
from ._outgoing import SECRETS
from .reader import Declaration, DeclarationError, DeclarationProblem, Plan, SealedSecrets, Secrets

if TYPE_CHECKING:
    from ..connections import ClusterKey
    from ..core.store import ServiceStore
    from ..jobs.manager import Jobs

logger = logging.getLogger(__name__)


class DeclaredStore(Protocol):
    """Where the cluster's channels, security, outgoing connections, topics, subscriptions, topic permissions and
    caches are (``splice.server.odb.OdbRepository``)."""

    async def list_channels(self) -> list[dict[str, Any]]: ...

    async def list_security(self) -> list[dict[str, Any]]: ...

    async def list_outgoing(self) -> list[dict[str, Any]]: ...

    async def list_topics(self) -> list[dict[str, Any]]: ...

    async def list_subscriptions(self) -> list[dict[str, Any]]: ...

    async def list_permissions(self) -> list[dict[str, Any]]: ...

    async def list_caches(self) -> list[dict[str, Any]]: ...

    async def apply_declared(
        self,
        declaration: Declaration,
        plan: Plan,
        secret_hashes: dict[str, str],
        sealed: dict[str, SealedSecrets | None],
    ) -> None: ...


class Keyholder(Protocol):
    def key(self) -> ClusterKey:
        """The cluster key (``SecretsError`` if it cannot be read)."""
        ...


class Live(Protocol):
    @property
    def connections(self) -> Keyholder: ...


class Target(Protocol):
    """The cluster a declaration is applied to, as one of its servers sees it (``splice.server.runtime.Runtime``)."""

    @property
    def repository(self) -> DeclaredStore: ...

    @property
    def jobs(self) -> Jobs | None: ...

    @property
    def store(self) -> ServiceStore: ...

    @property
    def live(self) -> Live: ...

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
    secrets: Secrets,
    *,
    by: str,
    prune: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make the cluster hold ``declaration`` with ``secrets`` (``resolve_secrets``). Answers the plan carried out
    (or, with ``dry_run``, the plan that would be), and each server's outcome.

    An outgoing connection's secrets cannot be compared with a hash, as a security definition's are: they are
    stored encrypted, and this server holds the key. So the stored ones are decrypted and compared with the
    declared ones, and only a connection whose secrets (or fields) differ is written: applying the same file
    twice changes nothing the second time, and no server reopens a connection for nothing. (Writing every
    declared secret anew at each apply would be simpler, but each apply would then report changes, record a
    configuration change and make every server reopen its connections.) Stored secrets this server cannot
    decrypt (another cluster key) count as different, so the apply writes them again with this server's key.
    """
    channels = await runtime.repository.list_channels()
    security = await runtime.repository.list_security()
    outgoing = await runtime.repository.list_outgoing()
    if declaration.jobs and runtime.jobs is None:
        problem = declaration.problem(declaration.jobs[0], "name", "this server keeps no jobs (it has no job store)")
        raise DeclarationError([problem])
    jobs = await runtime.jobs.all() if runtime.jobs is not None else []
    matches = await anyio.to_thread.run_sync(_secret_matches, declaration, security, secrets.security)
    stale = _stale_secrets(runtime, declaration, outgoing, secrets)
    services = set(runtime.store.snapshot())
    defined = await _definitions(runtime.repository)
    plan = declare.plan(declaration, channels, security, matches, prune, services, jobs, outgoing, stale, defined)
    answer: dict[str, Any] = {**plan.as_dict(), "prune": prune, "dry_run": dry_run, "servers": []}
    if dry_run or not plan.changed:
        answer["status"] = "unchanged" if not plan.changed else "dry_run"
        return answer
    servers: list[dict[str, object]] = []
    if any(c.action != "unchanged" for c in plan.changes if c.kind != "job"):
        changed = [c.name for c in plan.of("security", "create", "update")]
        hashes = await anyio.to_thread.run_sync(lambda: {name: hash_secret(secrets.security[name]) for name in changed})
        sealed = _sealed(runtime, plan, secrets)
        await runtime.repository.apply_declared(declaration, plan, hashes, sealed)
        servers = await runtime.config_changed("apply", by[:200])
    await _apply_jobs(runtime, declaration, plan)
    logger.info("applied %s: %s", declaration.file, ", ".join(str(c) for c in plan.changes if c.action != "unchanged"))
    ok = all(s.get("status") == "deployed" for s in servers)
    answer.update(status="applied" if ok else "partial", servers=servers)
    return answer


async def _definitions(repository: DeclaredStore) -> dict[str, list[dict[str, Any]]]:
    """The cluster's topics, subscriptions, topic permissions and caches, by section of a declaration file."""
    return {
        "topics": await repository.list_topics(),
        "subscriptions": await repository.list_subscriptions(),
        "topic_permissions": await repository.list_permissions(),
        "caches": await repository.list_caches(),
    }


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


def _stale_secrets(
    runtime: Target, declaration: Declaration, rows: list[dict[str, Any]], secrets: Secrets
) -> dict[str, list[str]]:
    """For each declared connection the cluster has, the secrets whose stored value is not the declared one."""
    stored_rows = {row["name"]: row for row in rows}
    stale: dict[str, list[str]] = {}
    for spec in declaration.outgoing:
        row = stored_rows.get(spec.name)
        if row is None:
            continue
        wanted = dict(secrets.outgoing.get(spec.name, {}))
        if not wanted:  # nothing to decrypt: every stored secret goes
            stale[spec.name] = sorted(row.get("secret_names") or ())
            continue
        stored: dict[str, str] = {}
        if row.get("secrets"):
            try:
                stored = runtime.live.connections.key().decrypt(
                    row["secrets"], row.get("key_id"), f"outgoing connection '{spec.name}'"
                )
            except SecretsError:
                stored = {}  # another key's: written again with this one
        names = set(wanted) | set(row.get("secret_names") or ())
        stale[spec.name] = sorted(name for name in names if wanted.get(name) != stored.get(name))
    return stale


def _sealed(runtime: Target, plan: Plan, secrets: Secrets) -> dict[str, SealedSecrets | None]:
    """The secrets to store for each outgoing connection the plan writes: ``None`` keeps the stored ones (an
    update of other fields), ``SealedSecrets.NONE`` removes them (the file declares none)."""
    sealed: dict[str, SealedSecrets | None] = {}
    for change in plan.of("outgoing", "create", "update"):
        values = secrets.outgoing.get(change.name, {})
        if change.action == "update" and not set(change.fields) & set(SECRETS):
            sealed[change.name] = None
        elif not values:
            sealed[change.name] = SealedSecrets.NONE
        else:
            key = runtime.live.connections.key()
            sealed[change.name] = SealedSecrets(key.encrypt(values), tuple(sorted(values)), key.id)
    return sealed


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
