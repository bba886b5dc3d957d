"""``splice job create|list|show|pause|resume|run-now|delete|history``: scheduled jobs, through the admin API.

``splice job create --cluster DIR --name NAME --service NAME (--interval SECONDS | --cron "EXPR" | --at
ISO-8601 | --in SECONDS) [--payload JSON]`` is the form scripts rely on; a refused job names its field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import commands
from .cluster import CliError

ACTIONS = ("create", "list", "show", "pause", "resume", "run-now", "delete", "history")


def register(sub: Any, cluster_arg: Any) -> None:
    job = sub.add_parser("job", help="scheduled jobs: each invokes a service").add_subparsers(
        dest="action", required=True
    )
    create = job.add_parser("create", help="a new job (interval, cron or one-time)")
    cluster_arg(create)
    create.add_argument("--name", required=True)
    create.add_argument("--service", required=True, help="the service each run invokes")
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS")
    when.add_argument("--cron", metavar="EXPR", help='five fields, e.g. "*/5 * * * *"')
    when.add_argument("--at", metavar="ISO-8601", help="run once at this moment, e.g. 2026-12-01T10:00:00Z")
    when.add_argument("--in", dest="in_", type=float, metavar="SECONDS", help="run once, SECONDS from now")
    create.add_argument("--payload", metavar="JSON", help="the service's request payload")
    create.add_argument("--timezone", help="cron: the timezone its fields are read in (default UTC)")
    create.add_argument("--start", metavar="ISO-8601", help="interval: the first run (default: one interval on)")
    create.add_argument("--repeats", type=int, help="interval: the number of runs in all (default: forever)")
    create.add_argument("--misfire", choices=["run_once", "skip"], help="a missed slot: run once late, or skip")
    create.add_argument("--retries", type=int, help="retries of a failed run (default 0)")
    create.add_argument("--backoff", type=float, metavar="SECONDS", help="before the first retry; doubles")
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--replace", action="store_true", help="change the job of that name if there is one")
    listing = job.add_parser("list", help="every job, its schedule and next run")
    cluster_arg(listing)
    listing.add_argument("--json", action="store_true")
    for action, text in (
        ("show", "one job in full"),
        ("pause", "stop running a job"),
        ("resume", "run a paused job again, from now on"),
        ("run-now", "run a job once now, besides its schedule"),
        ("delete", "delete a job and its history"),
        ("history", "a job's runs, newest first"),
    ):
        command = job.add_parser(action, help=text)
        command.add_argument("name")
        cluster_arg(command)
        if action in ("show", "history"):
            command.add_argument("--json", action="store_true")
        if action == "history":
            command.add_argument("--limit", type=int, default=20)


def run(args: argparse.Namespace) -> int | None:
    if args.command != "job":
        return None
    directory: Path = args.cluster
    if args.action == "create":
        return _create(args, directory)
    if args.action == "list":
        return _list(args, directory)
    path = f"/splice/admin/jobs/{quote(args.name, safe='')}"
    if args.action == "show":
        answer = commands.call(directory, "GET", path)
        print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else _describe(answer))
    elif args.action == "history":
        return _history(args, directory, path)
    elif args.action == "delete":
        commands.call(directory, "DELETE", path)
        print(f"deleted job {args.name}")
    else:
        answer = commands.call(directory, "POST", f"{path}/{args.action}")
        said = {"pause": "paused", "resume": "resumed", "run-now": "will run now"}[args.action]
        print(f"job {args.name} {said}; next run: {answer.get('next_run') or '-'}")
    return 0


def _create(args: argparse.Namespace, directory: Path) -> int:
    body: dict[str, Any] = {"name": args.name, "service": args.service}
    for key in ("interval", "cron", "at", "timezone", "start", "repeats", "misfire", "retries", "backoff"):
        value = getattr(args, key)
        if value is not None:
            body[key] = value
    if args.in_ is not None:
        body["in"] = args.in_
    if args.payload is not None:
        try:
            body["payload"] = json.loads(args.payload)
        except ValueError as exc:
            raise CliError(f"--payload is not valid JSON: {exc}", 2) from None
    if args.paused:
        body["paused"] = True
    if args.replace:
        body["replace"] = True
    answer = commands.call(directory, "POST", "/splice/admin/jobs", body)
    print(f"job {answer['name']}: {answer['service']}, {answer['schedule']}; next run: {answer['next_run'] or '-'}")
    if answer.get("warning"):
        print(f"warning: {answer['warning']}", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace, directory: Path) -> int:
    answer = commands.call(directory, "GET", "/splice/admin/jobs")
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    scheduler = answer.get("scheduler")
    if scheduler is None:
        print("no scheduler is active: jobs do not run (start one with 'splice start')", file=sys.stderr)
    for job in answer["jobs"]:
        state = "paused" if job["paused"] else f"next {job['next_run'] or '-'}"
        print(f"{job['name']}  {job['service']}  {job['schedule']}  {state}")
    return 0


def _describe(job: dict[str, Any]) -> str:
    lines = [
        f"job {job['name']}",
        f"  service   {job['service']}",
        f"  schedule  {job['schedule']}",
        f"  payload   {json.dumps(job['payload'], ensure_ascii=False)}",
        f"  next run  {job['next_run'] or '-'}{'  (paused)' if job['paused'] else ''}",
        f"  last slot {job['last_slot'] or '-'}",
        f"  misfire   {job['misfire']}; retries {job['retries']} (backoff {job['backoff']:g} s)",
        f"  created by {job['origin']}",
    ]
    return "\n".join(lines)


def _history(args: argparse.Namespace, directory: Path, path: str) -> int:
    answer = commands.call(directory, "GET", f"{path}/history?limit={args.limit}")
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    for run in answer["runs"]:
        late = "-" if run["late_ms"] is None else f"{run['late_ms']:.1f} ms late"
        took = "" if run["took_ms"] is None else f", took {run['took_ms']:.1f} ms"
        where = run["server"] or "-"
        extra = f"  {run['error']}" if run["error"] else ""
        missed = f" ({run['missed']} missed before)" if run["missed"] else ""
        missed += f" (attempt {run['attempts']})" if run["attempts"] > 1 else ""
        print(f"{run['slot']}  {run['status']}  {where}  {late}{took}  cid {run['cid']}{missed}{extra}")
    if not answer["runs"]:
        print(f"job {args.name} has not run yet")
    return 0


__all__ = ["ACTIONS", "register", "run"]
