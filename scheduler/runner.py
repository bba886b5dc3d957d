"""The scheduler's loop: hold the lease, keep the due jobs in memory, claim their slots, send them to servers.

One scheduler of a cluster is active: the one holding the ``scheduler`` lease in the ODB (renewed every
third of ``lease_ttl``); the others stand by and take the lease once it ran out. Whoever is active:

1. keeps every job that has something to run in memory, read again whenever ``clusters.jobs_changed``
   moved (checked every ``poll_interval``), so a change made on any server arrives within that;
2. sleeps until the earliest slot, decides what each due job runs (``policy.decide``: one slot, missed
   ones folded, never a burst), and claims the slots in one ODB transaction: a run's identity is
   ``(job, slot)``, unique in ``job_runs``, so no slot runs twice whoever claims it;
3. sends the claimed runs in one request per server to ``POST /splice/admin/scheduler/dispatch`` of live
   servers, round robin, skipping one that just refused a connection, and records each outcome as it
   streams back; failed runs are retried with backoff when the job asks for it.

Runs are only ever sent once a claim holds, and only re-sent to another server when the first one
could not be connected to at all, so a dead server costs a retry, never a duplicate. A claimed run is marked
sent in the ODB just before its request goes out: a scheduler that takes over sends the runs its predecessor
claimed and never sent (saying so in the run's record), and marks ``interrupted`` only those it had sent (they
may have run: never sent twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from splice.server.jobs import SCHEDULER_LEASE, Claim, Job, JobSpec, RunOutcome, from_us, now_us, to_us
from splice.server.odb import JobRepository, seen_within

from .policy import decide, retry_delay

if TYPE_CHECKING:
    from splice.server.config import SchedulerSettings
    from splice.server.odb import OdbRepository

logger = logging.getLogger(__name__)

LIVE_WITHIN = 4.0
"""A server seen in the ODB within this many seconds is live (servers say so every second)."""
DEAD_FOR = 5.0
"""A server that refused a connection is not tried again for this long (unless no other is left)."""
PRUNE_EVERY = 60.0
LOOKAHEAD_US = 250_000
"""Slots are claimed this long before they are due (microseconds), and sent to a server at the slot: claiming
a thousand slots at once costs tens of milliseconds, which would otherwise make every one of them late."""
ODB_ERRORS = (SQLAlchemyError, OSError)
"""What a call to the ODB raises when the database is away, busy or refuses (``OSError``: a connection that
could not be made or broke, timeouts included): the loop logs it and tries again later."""


@dataclass
class Run:
    """One run on its way to a server: what the dispatch endpoint takes, and its attempt."""

    claim: Claim
    spec: JobSpec
    """The job as it was when the run was claimed: its payload, retries and backoff."""
    attempt: int = 1
    tried: list[str] = field(default_factory=list)
    note: str | None = None
    """Said in the run's record whatever its outcome (a run taken over from a scheduler that stopped)."""

    @property
    def key(self) -> tuple[int, int]:
        return (self.claim.job_id, self.claim.slot_us)

    def body(self) -> dict[str, Any]:
        c = self.claim
        return {
            "job_id": c.job_id,
            "slot_us": c.slot_us,
            "job": c.job_name,
            "service": c.service,
            "cid": c.cid,
            "payload": self.spec.payload,
            "slot": from_us(c.slot_us).isoformat(),
            "kind": c.kind,
            "attempt": self.attempt,
            "missed": c.missed,
        }


class Scheduler:
    """One scheduler process's state; ``run`` until ``stop`` is set."""

    def __init__(self, name: str, repository: OdbRepository, settings: SchedulerSettings) -> None:
        self.name = name
        self.holder = f"{name}:{os.getpid()}"
        """Who holds the lease and claims runs: the name and the pid, so a restarted scheduler is a new holder."""
        self.repository = repository
        self.jobs = JobRepository(repository)
        self.settings = settings
        self.active = False
        self._lease_until = 0.0  # monotonic: the lease is surely ours until then
        self._seen_change = -1
        self._loaded: dict[int, Job] = {}
        self._servers: list[dict[str, Any]] = []
        self._servers_read = 0.0
        self._turn = 0
        self._dead: dict[str, float] = {}  # server name -> monotonic time it refused a connection
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsent: set[tuple[int, int]] = set()
        """Runs this scheduler claimed and will send (at their slot): not to be taken over from itself."""
        self._outcomes: list[RunOutcome] = []
        self._outcome_ready = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self._last_prune = 0.0
        self.on_state: Callable[[str], None] | None = None
        """Called with ``"active"`` or ``"standby"`` whenever that changes (the process writes its state file)."""

    # -- the loop --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        timeout = httpx.Timeout(connect=2.0, read=None, write=30.0, pool=None)
        headers = {"Authorization": f"Bearer {self.repository.internal_token}"}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        async with httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits) as client:
            self._client = client
            writer = asyncio.create_task(self._write_outcomes())
            try:
                await self._loop(stop)
                await self.drain(self.settings.lease_ttl)
            finally:
                await self._step_down(release=True)
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                await self._flush()

    async def _loop(self, stop: asyncio.Event) -> None:
        renew_every = self.settings.lease_ttl / 3
        next_renew = 0.0
        next_poll = 0.0
        while not stop.is_set():
            clock = time.monotonic()
            if clock >= next_renew:
                first = next_renew == 0.0
                await self._renew()
                next_renew = clock + renew_every
                if first and not self.active and self.on_state:
                    self.on_state("standby")  # said once the lease was tried: the active one says "active"
            if self.active and time.monotonic() >= self._lease_until:
                logger.warning("scheduler %s: the lease could not be renewed in time; standing by", self.name)
                await self._step_down(release=False)
            if self.active:
                if clock >= next_poll:
                    await self._reload_if_changed()
                    next_poll = clock + self.settings.poll_interval
                await self._fire()
                await self._prune_now_and_then()
            wake = min(next_renew, next_poll if self.active else next_renew)
            due = self._earliest_due_us() if self.active else None
            delay = wake - time.monotonic()
            if due is not None:
                delay = min(delay, (due - LOOKAHEAD_US - now_us()) / 1e6)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _renew(self) -> None:
        try:
            held = await self.repository.acquire_lease(SCHEDULER_LEASE, self.holder, self.settings.lease_ttl)
        except ODB_ERRORS as exc:  # the ODB is away: not sure of the lease, so keep the deadline we had
            logger.warning("scheduler %s: cannot reach the ODB for the lease (%s)", self.name, exc)
            return
        if held:
            # A little under the TTL: the clock that counts for others is the ODB row's, written just now.
            self._lease_until = time.monotonic() + self.settings.lease_ttl * 0.9
            if not self.active:
                await self._become_active()
        elif self.active:
            logger.warning("scheduler %s: another scheduler holds the lease now; standing by", self.name)
            await self._step_down(release=False)

    async def _become_active(self) -> None:
        try:
            interrupted = await self.jobs.interrupt(self.holder)
            adopted = await self.jobs.take_over(self.holder)
        except ODB_ERRORS as exc:  # the ODB is busy: stay standing by, the next renewal tries again
            logger.warning("scheduler %s: cannot take over the runs under way (%s); trying again", self.name, exc)
            return
        self.active = True
        self._seen_change = -1
        logger.info(
            "scheduler %s is active (holder %s)%s",
            self.name,
            self.holder,
            f"; {interrupted} runs of an earlier scheduler were sent and had no outcome: marked interrupted"
            if interrupted
            else "",
        )
        if self.on_state:
            self.on_state("active")
        self._send_taken_over([a for a in adopted if (a[0].job_id, a[0].slot_us) not in self._unsent])

    def _send_taken_over(self, adopted: Sequence[tuple[Claim, Job, str]]) -> None:
        """Send the runs an earlier scheduler claimed and never sent, as it would have (late, so the job's misfire
        policy decides whether a run later than the grace still runs); the record says they were taken over."""
        runs: list[Run] = []
        current = now_us()
        for claim, job, previous in adopted:
            note = f"taken over: claimed by {previous}, which stopped before sending it; sent by {self.holder}"
            late = (current - claim.slot_us) / 1e6
            if late > self.settings.misfire_grace and job.spec.misfire == "skip":
                reason = f"{note.split(';')[0]}; {late:.1f} s late: skipped (misfire policy skip)"
                self._outcomes.append(RunOutcome(claim.job_id, claim.slot_us, "skipped", 0, None, reason))
                self._outcome_ready.set()
                continue
            runs.append(Run(claim, job.spec, note=note))
        if runs:
            logger.info(
                "scheduler %s: %s runs claimed by an earlier scheduler and never sent are sent now",
                self.name,
                len(runs),
            )
            self._schedule(runs, current)

    def _schedule(self, runs: Sequence[Run], current: int) -> None:
        """Send each run at its slot (those due already, now), one batch per moment."""
        by_time: dict[int, list[Run]] = {}
        for run in runs:
            self._unsent.add(run.key)
            by_time.setdefault(max(run.claim.slot_us, current), []).append(run)
        for at, batch in sorted(by_time.items()):
            self._spawn(self._dispatch(batch) if at <= current else self._dispatch_at(batch, at))

    async def _step_down(self, release: bool) -> None:
        was = self.active
        self.active = False
        self._loaded.clear()
        if release and was:
            with contextlib.suppress(*ODB_ERRORS):  # not given back: it runs out after lease_ttl
                await self.repository.release_lease(SCHEDULER_LEASE, self.holder)
        if was and self.on_state:
            self.on_state("standby")

    # -- jobs in memory ----------------------------------------------------------------------------------------

    async def _reload_if_changed(self) -> None:
        try:
            counter = await self.jobs.changed()
            if counter == self._seen_change:
                return
            counter, jobs = await self.jobs.schedulable()
        except ODB_ERRORS as exc:
            logger.warning("scheduler %s: cannot read the jobs (%s); trying again", self.name, exc)
            return
        loaded = {job.id: job for job in jobs}
        self._loaded = loaded
        self._seen_change = counter
        logger.debug("scheduler %s: %s jobs to run (change %s)", self.name, len(loaded), counter)

    def _earliest_due_us(self) -> int | None:
        times = [t for job in self._loaded.values() for t in (job.next_due_us, job.run_now_us) if t is not None]
        return min(times, default=None)

    # -- claiming and dispatching ------------------------------------------------------------------------------

    def _claims(self, current_us: int) -> list[Claim]:
        """Claims of every slot due up to ``LOOKAHEAD_US`` from now: a slot ahead is decided as it will be then."""
        claims: list[Claim] = []
        for job in list(self._loaded.values()):
            if job.run_now_us is not None:
                claims.append(Claim.manual(job))
            if job.next_due_us is None or job.next_due_us > current_us + LOOKAHEAD_US:
                continue
            when = from_us(max(current_us, job.next_due_us))
            spec = job.spec
            decision = decide(spec.trigger, from_us(job.next_due_us), when, spec.misfire, self.settings.misfire_grace)
            next_us = None if decision.next_due is None else to_us(decision.next_due)
            if decision.slot is None:
                self._loaded[job.id] = dataclasses.replace(job, next_due_us=next_us)
                continue
            slot_us = to_us(decision.slot)
            claims.append(
                Claim.scheduled(job, slot_us, next_us, run=decision.run, missed=decision.missed, reason=decision.reason)
            )
        return claims

    async def _fire(self) -> None:
        current = now_us()
        earliest = self._earliest_due_us()
        if earliest is None or earliest > current + LOOKAHEAD_US:
            return
        jobs = self._loaded  # the jobs these claims came from, whatever a reload does meanwhile
        claims = self._claims(current)
        if not claims:
            return
        try:
            taken = await self.jobs.claim(claims, self.holder)
        except ODB_ERRORS as exc:
            logger.warning("scheduler %s: cannot claim %s runs (%s); trying again", self.name, len(claims), exc)
            await asyncio.sleep(0.1)
            return
        if len(taken) < len(claims):
            self._seen_change = -1  # a job changed under us: read them all again before the next claim
        for claim in taken:
            job = jobs[claim.job_id]
            if claim.kind == "scheduled":
                jobs[claim.job_id] = dataclasses.replace(job, next_due_us=claim.next_due_us)
            else:
                jobs[claim.job_id] = dataclasses.replace(job, run_now_us=None)
        kept = {(claim.job_id, claim.slot_us) for claim in taken}
        for claim in claims:
            if (claim.job_id, claim.slot_us) not in kept and claim.job_id in jobs:
                # Wait for the reload rather than claim again.
                jobs[claim.job_id] = dataclasses.replace(jobs[claim.job_id], next_due_us=None, run_now_us=None)
        runs = [Run(c, jobs[c.job_id].spec) for c in taken if c.status == "claimed"]
        for claim in taken:
            if claim.status == "skipped":
                logger.info("job %s: slot %s %s", claim.job_name, from_us(claim.slot_us).isoformat(), claim.error)
        self._schedule(runs, current)

    async def _dispatch_at(self, runs: Sequence[Run], at_us: int) -> None:
        """Send runs claimed ahead of their slot at the slot, over connections opened while waiting."""
        if at_us - now_us() > 30_000:
            await self._warm()
        delay = (at_us - now_us()) / 1e6
        if delay > 0:
            await asyncio.sleep(delay)
        await self._dispatch(runs)

    async def _warm(self) -> None:
        """Open (or keep open) a connection to each live server, so a run's request does not wait for one."""
        assert self._client is not None
        client = self._client
        urls = [s["url"].rstrip("/") + "/splice/ping" for s in await self._live_servers()]
        # A server that does not answer is only not warmed: its errors are returned here, never raised.
        await asyncio.gather(*(client.get(url, timeout=0.5) for url in urls), return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _live_servers(self) -> list[dict[str, Any]]:
        clock = time.monotonic()
        if clock - self._servers_read > 1.0 or not self._servers:
            try:
                servers = await self.repository.servers()
            except ODB_ERRORS as exc:
                logger.warning("scheduler %s: cannot read the servers (%s)", self.name, exc)
                servers = self._servers
            self._servers = [s for s in servers if seen_within(s, LIVE_WITHIN)]
            self._servers_read = clock
        return self._servers

    async def _pick(self, refused: Iterable[str], rather_not: str | None) -> dict[str, Any] | None:
        """The next live server in turn, never one in ``refused`` (it refused this very batch). Servers that refused
        a connection lately, and ``rather_not`` (where a retried run failed last), only when no other is left."""
        servers = [s for s in await self._live_servers() if s["name"] not in set(refused)]
        clock = time.monotonic()
        healthy = [s for s in servers if clock - self._dead.get(s["name"], -1e9) > DEAD_FOR]
        preferred = [s for s in healthy if s["name"] != rather_not]
        candidates = preferred or healthy or servers
        if not candidates:
            return None
        self._turn += 1
        return candidates[self._turn % len(candidates)]

    async def _dispatch(self, runs: Sequence[Run]) -> None:
        """Mark ``runs`` sent, then send them out, split over the live servers, one request each."""
        keys = [run.key for run in runs]
        try:
            runs = await self._mark_sent(runs)
        finally:
            self._unsent.difference_update(keys)
        if not runs:
            return
        servers = await self._live_servers()
        groups = max(1, min(len(servers), len(runs)))
        await asyncio.gather(*(self._send(list(runs[index::groups])) for index in range(groups)))

    async def _mark_sent(self, runs: Sequence[Run]) -> list[Run]:
        """The runs of ``runs`` marked sent in the ODB (before they go out, so a scheduler taking over knows they may
        have run). A run another scheduler took over meanwhile is left out: it sends it. While the ODB cannot be
        reached the runs wait (never sent unmarked); once this scheduler is not active, another takes them over."""
        delay = 0.05
        while True:
            try:
                marked = await self.jobs.mark_sent([run.key for run in runs], self.holder)
                break
            except ODB_ERRORS as exc:
                if not self.active:
                    logger.warning(
                        "scheduler %s: %s runs not marked sent (%s): left to the next", self.name, len(runs), exc
                    )
                    return []
                logger.warning("scheduler %s: cannot mark %s runs sent (%s); trying again", self.name, len(runs), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if len(marked) < len(runs):
            logger.warning(
                "scheduler %s: %s runs were taken over by another scheduler", self.name, len(runs) - len(marked)
            )
        return [run for run in runs if run.key in marked]

    async def _send(self, runs: list[Run]) -> None:
        """Send ``runs`` in one request; to the next server only when one refused the connection (nothing ran)."""
        tried: list[str] = []
        while True:
            server = await self._pick(tried, runs[0].tried[-1] if runs[0].tried else None)
            if server is None:
                error = "no live server could be reached" + (f" (tried {', '.join(tried)})" if tried else "")
                self._settle(runs, "failed", error, None)
                return
            name = server["name"]
            tried.append(name)
            for run in runs:
                run.tried.append(name)
            pending = {(r.claim.job_id, r.claim.slot_us): r for r in runs}
            try:
                await self._stream(server, runs, pending)
            except httpx.ConnectError as exc:
                self._dead[name] = time.monotonic()
                logger.warning("scheduler: %s refused the connection (%s); trying another server", name, exc)
                continue
            except _Refused as exc:  # the server answered before starting any of them
                self._settle(pending.values(), "failed", str(exc), name)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                error = f"{name} went away before the outcome came back ({exc}): it may or may not have run"
                self._settle(pending.values(), "interrupted", error, name)
            else:
                self._settle(pending.values(), "interrupted", "no outcome came back", name)
            return

    async def _stream(self, server: dict[str, Any], runs: list[Run], pending: dict[tuple[int, int], Run]) -> None:
        """POST the runs to ``server``'s dispatch endpoint; record each outcome as its line arrives."""
        assert self._client is not None
        url = server["url"].rstrip("/") + "/splice/admin/scheduler/dispatch"
        body = {"scheduler": self.holder, "runs": [r.body() for r in runs]}
        async with self._client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:500]
                raise _Refused(f"{server['name']} answered {response.status_code}: {text}")
            async for line in response.aiter_lines():
                if line.strip():
                    outcome = json.loads(line)
                    key = (outcome["job_id"], outcome["slot_us"])
                    if key in pending:
                        self._outcome(
                            pending.pop(key),
                            outcome.get("status", "failed"),
                            outcome.get("error"),
                            outcome.get("server"),
                            outcome.get("started_us"),
                            outcome.get("finished_us"),
                        )

    def _settle(self, runs: Iterable[Run], status: str, error: str, server: str | None) -> None:
        for run in list(runs):
            self._outcome(run, status, error, server)

    def _outcome(
        self,
        run: Run,
        status: str,
        error: str | None,
        server: str | None,
        started_us: int | None = None,
        finished_us: int | None = None,
    ) -> None:
        """Record what became of ``run``'s attempt; a failed one is retried when its job asks for it."""
        c = run.claim
        if run.note:
            error = run.note if error is None else f"{run.note}; {error}"
        outcome = RunOutcome(
            c.job_id, c.slot_us, status, run.attempt, server, error, started_us, finished_us or now_us()
        )
        if status == "failed" and run.attempt <= run.spec.retries and self.active:
            delay = retry_delay(run.attempt, run.spec.backoff)
            outcome = dataclasses.replace(outcome, status="retrying")
            logger.info("job %s: attempt %s failed (%s); retrying in %.1f s", c.job_name, run.attempt, error, delay)
            self._spawn(self._retry(run, delay))
        elif status != "ok":
            logger.warning("job %s [cid %s]: %s: %s", c.job_name, c.cid, status, error)
        self._outcomes.append(outcome)
        self._outcome_ready.set()

    async def _retry(self, run: Run, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.active:
            return  # the next active scheduler marks it interrupted
        run.attempt += 1
        await self._send([run])

    # -- writing outcomes ---------------------------------------------------------------------------------------

    async def _write_outcomes(self) -> None:
        while True:
            await self._outcome_ready.wait()
            await asyncio.sleep(0.02)  # let outcomes that finish together share one transaction
            await self._flush()

    async def _flush(self) -> None:
        self._outcome_ready.clear()
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        for attempt in range(20):
            try:
                await self.jobs.finish(batch)
                return
            except ODB_ERRORS as exc:
                logger.warning("scheduler: cannot record %s outcomes (%s); attempt %s", len(batch), exc, attempt + 1)
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
        logger.error("scheduler: %s outcomes could not be recorded: %s", len(batch), batch)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for runs under way to come back, then record their outcomes."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await self._flush()

    async def _prune_now_and_then(self) -> None:
        clock = time.monotonic()
        if clock - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = clock
        cutoff = to_us(datetime.now(UTC)) - int(self.settings.history_days * 86_400 * 1_000_000)
        try:
            pruned = await self.jobs.prune(cutoff)
        except ODB_ERRORS as exc:
            logger.warning("scheduler %s: cannot prune the run history (%s)", self.name, exc)
            return
        if pruned:
            logger.info(
                "scheduler %s: pruned %s runs older than %g days", self.name, pruned, self.settings.history_days
            )


class _Refused(Exception):
    pass
