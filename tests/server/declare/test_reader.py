"""Declaration files (configuration as code): parsing, located problems, secrets, and plans. Pure, table-driven."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from splice.server.declare.reader import (
    Change,
    ChannelSpec,
    Declaration,
    DeclarationError,
    SecuritySpec,
    parse,
    plan,
    resolve_secrets,
)
from splice.server.http.responses import http_status
from splice.server.jobs.triggers import Interval

FULL = textwrap.dedent(
    """\
    # the partners' API
    [[security]]
    name = "partners"
    kind = "basic"
    username = "acme"
    password_env = "PARTNERS_PASSWORD"

    [[security]]
    name = "internal"
    kind = "apikey"
    key_env = "INTERNAL_KEY"

    [[channels]]
    name = "get-order"
    path = "/orders/{id}"
    service = "orders.get"
    methods = ["get", "HEAD"]
    security = "partners"

    [[channels]]
    name = "ping"
    path = "/ping"
    service = "tools.ping"
    """
)


def test_a_full_file_parses_with_defaults() -> None:
    declaration = parse(FULL, "splice.toml")
    assert declaration == Declaration(
        "splice.toml",
        (
            SecuritySpec("partners", "basic", "acme", None, "PARTNERS_PASSWORD"),
            SecuritySpec("internal", "apikey", None, "X-API-Key", "INTERNAL_KEY"),
        ),
        (
            ChannelSpec("get-order", "/orders/{id}", ("GET", "HEAD"), "orders.get", "partners"),
            ChannelSpec("ping", "/ping", ("GET",), "tools.ping", None),
        ),
    )
    assert declaration.secret_names() == ["INTERNAL_KEY", "PARTNERS_PASSWORD"]
    assert declaration.channels[0].lines == {
        "": 13,
        "name": 14,
        "path": 15,
        "service": 16,
        "methods": 17,
        "security": 18,
    }


def test_an_empty_file_declares_nothing() -> None:
    assert parse("# nothing yet\n", "splice.toml") == Declaration("splice.toml")


def channel(**fields: object) -> str:
    base: dict[str, object] = {"name": "get-order", "path": "/orders/{id}", "service": "orders.get"}
    base.update(fields)
    lines = [f"{k} = {_toml(v)}" for k, v in base.items() if v is not None]
    return "[[channels]]\n" + "\n".join(lines) + "\n"


def security(**fields: object) -> str:
    base: dict[str, object] = {"name": "partners", "kind": "basic", "username": "acme", "password_env": "PW"}
    base.update(fields)
    lines = [f"{k} = {_toml(v)}" for k, v in base.items() if v is not None]
    return "[[security]]\n" + "\n".join(lines) + "\n"


def job(**fields: object) -> str:
    base: dict[str, object] = {"name": "nightly", "service": "reports.build", "cron": "0 2 * * *"}
    base.update(fields)
    lines = [f"{k} = {_toml(v)}" for k, v in base.items() if v is not None]
    return "[[jobs]]\n" + "\n".join(lines) + "\n"


class Raw(str):
    """TOML written as is: a date and time, an inline table, nan."""


def _toml(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # syntax: line and column from tomllib
        ('[[channels]\nname = "x"\n', "splice.toml:1:11: not valid TOML: Expected ']]'"),
        ('name = "x"\nname = "y"\n', "splice.toml:2:"),
        # sections
        ('[[channel]]\nname = "x"\n', "splice.toml:1: channel: unknown section; did you mean [[channels]]?"),
        ('[channels]\nname = "x"\n', "splice.toml:1: channels: must be an array of tables"),
        ('channels = ["x"]\n', "splice.toml:1: channels[0]: must be a table, got str"),
        (
            "routes = 1\n",
            "splice.toml:1: routes: unknown section"
            " (a file declares [[security]], [[outgoing]], [[channels]], [[jobs]], [[topics]], [[subscriptions]],"
            " [[topic_permissions]] and [[caches]])",
        ),
        ('[[job]]\nname = "x"\n', "splice.toml:1: job: unknown section; did you mean [[jobs]]?"),
        ("jobs = 1\n", "splice.toml:1: jobs: must be an array of tables"),
        # channel fields, each with its line
        (channel(path="orders"), "splice.toml:3: channels[0].path: a channel path must start with '/'"),
        (channel(path="/splice/x"), "splice.toml:3: channels[0].path: paths under /splice/ are Splice's own"),
        (channel(path="/o/{id:float}"), "channels[0].path: bad parameter"),
        (channel(path=None), "splice.toml:1: channels[0].path: is required"),
        (channel(path=5), "splice.toml:3: channels[0].path: must be a string, got an integer"),
        (channel(service=None), "channels[0].service: is required"),
        (channel(service="bad name"), "splice.toml:4: channels[0].service: name 'bad name' may only hold"),
        (channel(name=""), "splice.toml:2: channels[0].name: a name must not be empty"),
        (channel(methods=["FETCH"]), "splice.toml:5: channels[0].methods: unknown HTTP method FETCH"),
        (channel(methods=[]), "channels[0].methods: must name at least one HTTP method"),
        (channel(methods="GET"), "channels[0].methods: must be an array of strings"),
        (channel(servce="x"), "splice.toml:5: channels[0].servce: unknown field for channels; did you mean 'service'?"),
        (channel() + channel(), "splice.toml:6: channels[1].name: 'get-order' is declared twice (also at channels[0])"),
        # security fields
        (security(kind="oauth"), "splice.toml:3: security[0].kind: must be one of 'basic', 'apikey', got 'oauth'"),
        (security(password_env=None), "splice.toml:1: security[0].password_env: is required"),
        (security(password_env="not a name"), "security[0].password_env: must name an environment variable"),
        (security(password="hunter2"), "security[0].password: secrets never come from the file"),
        (security(username=None), "security[0].username: is required"),
        (security(username="a:b"), "security[0].username: must not contain ':'"),
        (security(header="X-Key"), "security[0].header: unknown field for kind 'basic'"),
        (
            security(kind="apikey", username=None, password_env=None, key_env="K", header="Bad Header"),
            "security[0].header: is not a valid HTTP header name",
        ),
        (
            security(kind="apikey", username=None, password_env=None, key="abc"),
            "security[0].key: secrets never come from the file: name an environment variable with key_env",
        ),
        (security() + security(), "security[1].name: 'partners' is declared twice"),
    ],
)
def test_problems_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    assert any(str(p).startswith(expected) or expected in str(p) for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]
    assert http_status(caught.value) == 422


def test_every_problem_is_named_at_once_in_line_order() -> None:
    text = channel(path="orders", servce="x") + security(kind="oauth")
    with pytest.raises(DeclarationError) as caught:
        parse(text, "conf/splice.toml")
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    fields = {p.field for p in caught.value.problems}
    assert {"channels[0].path", "channels[0].servce", "security[0].kind"} <= fields
    assert str(caught.value).startswith("conf/splice.toml:3: channels[0].path")


def test_an_inline_table_item_has_problems_without_a_line() -> None:
    with pytest.raises(DeclarationError) as caught:
        parse('channels = [{name = "a", path = "x", service = "s"}]\n', "splice.toml")
    (problem,) = caught.value.problems
    assert (problem.field, problem.line) == ("channels[0].path", None)


# -- secrets -------------------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_given() -> None:
    declaration = parse(FULL, "splice.toml")
    secrets = resolve_secrets(declaration, {"PARTNERS_PASSWORD": "s3cret", "INTERNAL_KEY": "k", "OTHER": "x"}, "env")
    assert secrets.security == {"partners": "s3cret", "internal": "k"}
    assert "s3cret" not in repr(secrets)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INTERNAL_KEY": "k"}, ["splice.toml:6: security[0].password_env: PARTNERS_PASSWORD is not set in the CLI"]),
        (
            {"PARTNERS_PASSWORD": "", "INTERNAL_KEY": ""},
            [
                "splice.toml:6: security[0].password_env: PARTNERS_PASSWORD is empty in the CLI",
                "splice.toml:11: security[1].key_env: INTERNAL_KEY is empty in the CLI",
            ],
        ),
    ],
)
def test_missing_secrets_are_named_never_shown(environ: dict[str, str], expected: list[str]) -> None:
    with pytest.raises(DeclarationError) as caught:
        resolve_secrets(parse(FULL, "splice.toml"), environ, "the CLI")
    assert [str(p) for p in caught.value.problems] == expected


# -- plans ---------------------------------------------------------------------------------------------------

CURRENT_SECURITY = [
    {"name": "partners", "kind": "basic", "username": "acme", "header": None, "secret_hash": "h1"},
    {"name": "internal", "kind": "apikey", "username": None, "header": "X-API-Key", "secret_hash": "h2"},
]
CURRENT_CHANNELS = [
    {
        "name": "get-order",
        "path": "/orders/{id}",
        "methods": ["GET", "HEAD"],
        "service": "orders.get",
        "security": "partners",
    },
    {"name": "ping", "path": "/ping", "methods": ["GET"], "service": "tools.ping", "security": None},
]
SAME = {"partners": True, "internal": True}


def actions(result: Any) -> list[str]:
    return [str(c) for c in result.changes]


def test_a_new_cluster_gets_everything_created_security_first() -> None:
    result = plan(parse(FULL, "splice.toml"), [], [], {})
    assert actions(result) == [
        "create security definition partners",
        "create security definition internal",
        "create channel get-order",
        "create channel ping",
    ]
    assert result.changed
    assert result.counts() == {"create": 4, "update": 0, "delete": 0, "unchanged": 0}


def test_the_same_file_again_changes_nothing() -> None:
    result = plan(parse(FULL, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, SAME)
    assert not result.changed
    assert {c.action for c in result.changes} == {"unchanged"}
    assert result.as_dict()["changed"] is False


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("/orders/{id}", "/orders/{id:int}"), "update channel get-order (path)"),
        (('methods = ["get", "HEAD"]', 'methods = ["GET", "POST"]'), "update channel get-order (methods)"),
        (('service = "orders.get"', 'service = "orders.fetch"'), "update channel get-order (service)"),
        (('security = "partners"\n', ""), "update channel get-order (security)"),
        (('username = "acme"', 'username = "globex"'), "update security definition partners (username)"),
        (
            ('key_env = "INTERNAL_KEY"', 'key_env = "INTERNAL_KEY"\nheader = "X-Key"'),
            "update security definition internal (header)",
        ),
    ],
)
def test_a_changed_field_is_an_update_of_that_field(edit: tuple[str, str], expected: str) -> None:
    text = FULL.replace(*edit)
    assert text != FULL
    result = plan(parse(text, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, SAME)
    assert [str(c) for c in result.changes if c.action != "unchanged"] == [expected]


def test_a_changed_secret_is_an_update_named_by_its_field() -> None:
    result = plan(parse(FULL, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, {"partners": False, "internal": True})
    assert result.of("security", "update") == [Change("security", "partners", "update", ("password",))]
    result = plan(parse(FULL, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, {"partners": True})
    assert result.of("security", "update") == [Change("security", "internal", "update", ("key",))]


def test_a_changed_kind_updates_every_field_that_differs() -> None:
    text = FULL.replace('kind = "basic"\nusername = "acme"\npassword_env', 'kind = "apikey"\nkey_env')
    result = plan(parse(text, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, {"partners": False})
    assert result.of("security", "update")[0] == Change(
        "security", "partners", "update", ("kind", "username", "header", "key")
    )


EXTRA_CHANNEL = {"name": "old", "path": "/old", "methods": ["GET"], "service": "x", "security": "legacy"}
EXTRA_SECURITY = {"name": "legacy", "kind": "basic", "username": "u", "header": None, "secret_hash": "h"}


@pytest.mark.parametrize(
    ("prune", "expected"),
    [
        (False, []),
        (True, ["delete channel old", "delete security definition legacy"]),
    ],
)
def test_objects_absent_from_the_file_are_deleted_only_with_prune(prune: bool, expected: list[str]) -> None:
    result = plan(
        parse(FULL, "splice.toml"),
        [*CURRENT_CHANNELS, EXTRA_CHANNEL],
        [*CURRENT_SECURITY, EXTRA_SECURITY],
        SAME,
        prune=prune,
    )
    assert [str(c) for c in result.changes if c.action != "unchanged"] == expected
    assert result.changed is prune


def test_a_channel_may_use_a_security_definition_the_cluster_has_unless_pruning() -> None:
    text = channel(security="legacy")
    result = plan(parse(text, "splice.toml"), [], [EXTRA_SECURITY], {})
    assert actions(result) == ["create channel get-order"]
    with pytest.raises(DeclarationError, match=r"splice.toml:5: channels\[0\].security: .*pruning would delete it"):
        plan(parse(text, "splice.toml"), [], [EXTRA_SECURITY], {}, prune=True)


def test_a_channel_naming_no_security_definition_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"channels\[0\].security: no security definition named 'nope'"):
        plan(parse(channel(security="nope"), "splice.toml"), [], [], {})


def test_warnings_name_channels_whose_service_is_not_deployed() -> None:
    result = plan(parse(FULL, "splice.toml"), [], [], {}, services={"orders.get"})
    assert result.warnings == ("channel ping: no service named 'tools.ping' is deployed yet",)


def test_the_readme_example_is_a_valid_declaration() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration as code", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    declaration = parse(example, "README.md")
    assert [(c.name, c.kind) for c in declaration.channels] == [("get-order", "rest"), ("orders-in", "amqp")]
    assert [(o.name, o.kind) for o in declaration.outgoing] == [("billing", "rest"), ("broker", "amqp")]
    assert declaration.secret_names() == ["BILLING_TOKEN", "BROKER_PASSWORD", "PARTNERS_PASSWORD"]
    assert "create channel orders-in" in actions(plan(declaration, [], [], {}))  # its connection is declared


# -- jobs ----------------------------------------------------------------------------------------------------

JOBS = textwrap.dedent(
    """\
    [[jobs]]
    name = "nightly-report"
    service = "reports.build"
    cron = "0 2 * * *"
    timezone = "Europe/Berlin"
    payload = { kind = "full" }
    misfire = "run_once"

    [[jobs]]
    name = "tick"
    service = "tools.tick"
    interval = { minutes = 5 }
    retries = 2
    backoff = 0.5

    [[jobs]]
    name = "launch"
    service = "tools.launch"
    at = 2026-12-01T11:00:00+01:00
    paused = true

    [[jobs]]
    name = "poll"
    service = "tools.poll"
    interval = 30
    start = "2026-01-01T00:00:00Z"
    repeats = 10
    """
)


def test_jobs_parse_with_their_lines_and_toml_moments_as_text() -> None:
    declaration = parse(JOBS, "splice.toml")
    assert [(j.name, j.service, j.where) for j in declaration.jobs] == [
        ("nightly-report", "reports.build", "jobs[0]"),
        ("tick", "tools.tick", "jobs[1]"),
        ("launch", "tools.launch", "jobs[2]"),
        ("poll", "tools.poll", "jobs[3]"),
    ]
    assert declaration.jobs[0].body == {
        "name": "nightly-report",
        "service": "reports.build",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "payload": {"kind": "full"},
        "misfire": "run_once",
    }
    assert declaration.jobs[2].body["at"] == "2026-12-01T11:00:00+01:00"
    assert declaration.jobs[0].lines == {
        "": 1,
        "name": 2,
        "service": 3,
        "cron": 4,
        "timezone": 5,
        "payload": 6,
        "misfire": 7,
    }
    tick = declaration.jobs[1].spec().trigger
    assert isinstance(tick, Interval)
    assert (tick.minutes, tick.period.total_seconds()) == (5, 300)
    assert declaration.secret_names() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the schedule, checked as parse_job checks it, on the line of its key
        (job(cron="0 25 * * *"), "splice.toml:4: jobs[0].cron.hour: cron field 'hour' (2nd): 25 is out of range 0-23"),
        (job(cron=5), "splice.toml:4: jobs[0].cron: must be a string such as '*/5 * * * *', got 5"),
        (job(timezone="Mars/Olympus"), "splice.toml:5: jobs[0].timezone: unknown timezone 'Mars/Olympus'"),
        (job(cron=None, interval=0), "splice.toml:4: jobs[0].interval: must be more than 0 seconds"),
        (
            job(cron=None, interval=Raw("{ minutes = -1 }")),
            "splice.toml:4: jobs[0].interval.minutes: must be 0 or more",
        ),
        (job(cron=None, interval=Raw("{ hour = 1 }")), "splice.toml:4: jobs[0].interval.hour: unknown unit"),
        (job(cron=None, interval=10**30), "splice.toml:4: jobs[0].interval: is too long"),
        (job(cron=None, interval=30, timezone="UTC"), "jobs[0].timezone: applies to cron jobs only"),
        (job(repeats=3), "splice.toml:5: jobs[0].repeats: applies to interval jobs only"),
        (job(interval=30), "splice.toml:4: jobs[0].cron: a job has one trigger: 'interval' or 'cron', not both"),
        (job(cron=None, at="tomorrow"), "splice.toml:4: jobs[0].at: is not an ISO-8601 date and time: 'tomorrow'"),
        (job(cron=None, at=Raw("2026-12-01T10:00:00")), "jobs[0].at: needs a timezone (Z or +01:00, say)"),
        (job(cron=None, at=Raw("2026-12-01")), "jobs[0].at: needs a timezone"),
        (job(cron=None), "splice.toml:1: jobs[0]: needs a schedule: 'interval', 'cron' or 'at'"),
        (job(cron=None, **{"in": 1800}), "splice.toml:4: jobs[0].in: a file is applied again and again"),
        (job(cron=None, trigger=Raw('{ kind = "once", at = "2026-12-01T10:00:00Z" }')), "jobs[0].trigger: is the"),
        # the other fields
        (job(misfire="later"), "splice.toml:5: jobs[0].misfire: must be one of run_once, skip, got 'later'"),
        (job(retries=-1), "splice.toml:5: jobs[0].retries: must be a whole number from 0 to 100, got -1"),
        (job(backoff=0), "jobs[0].backoff: must be more than 0"),
        (job(paused="yes"), "splice.toml:5: jobs[0].paused: must be true or false, got 'yes'"),
        (job(name=None), "splice.toml:1: jobs[0].name: is required"),
        (job(service="bad name"), "splice.toml:3: jobs[0].service: name 'bad name' may only hold"),
        (job(servce="x"), "splice.toml:5: jobs[0].servce: unknown field for jobs; did you mean 'service'?"),
        (
            job(payload=Raw("{ when = 2026-01-01 }")),
            'jobs[0].payload.when: JSON has no dates or times: write it as a string, "2026-01-01"',
        ),
        (job(payload=Raw("[1, nan]")), "splice.toml:5: jobs[0].payload[1]: JSON has no nan: write a finite number"),
        (job() + job(), "splice.toml:6: jobs[1].name: 'nightly' is declared twice (also at jobs[0])"),
    ],
)
def test_job_problems_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_every_job_problem_is_named_at_once() -> None:
    text = job(cron="nope", payload=Raw("{ at = 10:00:00 }")) + job(name="other", misfire="never")
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    assert [p.field for p in caught.value.problems] == ["jobs[0].cron", "jobs[0].payload.at", "jobs[1].misfire"]


STORED_JOBS: list[dict[str, Any]] = [
    {
        "name": "nightly-report",
        "service": "reports.build",
        "payload": {"kind": "full"},
        "trigger": {"kind": "cron", "expression": "0 2 * * *", "timezone": "Europe/Berlin"},
        "misfire": "run_once",
        "retries": 0,
        "backoff": 1.0,
        "paused": False,
        "origin": "declared:splice.toml",
    },
    {
        "name": "tick",
        "service": "tools.tick",
        "payload": None,
        "trigger": {
            "kind": "interval",
            "weeks": 0,
            "days": 0,
            "hours": 0,
            "minutes": 5,
            "seconds": 0.0,
            "start": "2025-06-01T08:13:20.123456+00:00",  # one period after it was written: never the file's
            "repeats": None,
        },
        "misfire": "run_once",
        "retries": 2,
        "backoff": 0.5,
        "paused": False,
        "origin": "declared:splice.toml",
    },
    {
        "name": "launch",
        "service": "tools.launch",
        "payload": None,
        "trigger": {"kind": "once", "at": "2026-12-01T10:00:00+00:00"},
        "misfire": "run_once",
        "retries": 0,
        "backoff": 1.0,
        "paused": True,
        "origin": "declared:splice.toml",
    },
    {
        "name": "poll",
        "service": "tools.poll",
        "payload": None,
        "trigger": {
            "kind": "interval",
            "weeks": 0,
            "days": 0,
            "hours": 0,
            "minutes": 0,
            "seconds": 30.0,
            "start": "2026-01-01T00:00:00+00:00",
            "repeats": 10,
        },
        "misfire": "run_once",
        "retries": 0,
        "backoff": 1.0,
        "paused": False,
        "origin": "admin-api",
    },
]


def job_plan(text: str, stored: list[dict[str, Any]], **options: Any) -> Any:
    return plan(parse(text, "splice.toml"), [], [], {}, jobs=stored, **options)


def test_jobs_are_created_then_unchanged_whatever_an_interval_start_became() -> None:
    first = job_plan(JOBS, [])
    assert actions(first) == ["create job nightly-report", "create job tick", "create job launch", "create job poll"]
    again = job_plan(JOBS, STORED_JOBS)
    assert not again.changed, actions(again)
    assert again.counts()["unchanged"] == 4


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('cron = "0 2 * * *"', 'cron = "0 3 * * *"'), "update job nightly-report (cron)"),
        (('timezone = "Europe/Berlin"', 'timezone = "Europe/Paris"'), "update job nightly-report (timezone)"),
        (('timezone = "Europe/Berlin"\n', ""), "update job nightly-report (timezone)"),
        (('cron = "0 2 * * *"\ntimezone = "Europe/Berlin"', "interval = 3600"), "update job nightly-report (interval)"),
        (('{ kind = "full" }', '{ kind = "delta" }'), "update job nightly-report (payload)"),
        (('payload = { kind = "full" }\n', ""), "update job nightly-report (payload)"),
        (('misfire = "run_once"', 'misfire = "skip"'), "update job nightly-report (misfire)"),
        (('service = "reports.build"', 'service = "reports.make"'), "update job nightly-report (service)"),
        (("{ minutes = 5 }", "{ minutes = 10 }"), "update job tick (interval)"),
        (("{ minutes = 5 }", "300"), "update job tick (interval)"),
        (("retries = 2\n", ""), "update job tick (retries)"),
        (("backoff = 0.5", "backoff = 2"), "update job tick (backoff)"),
        (("{ minutes = 5 }", '{ minutes = 5 }\nstart = "2025-06-01T08:00:00Z"'), "update job tick (start)"),
        (("11:00:00+01:00", "12:00:00+01:00"), "update job launch (at)"),
        (("paused = true\n", ""), "update job launch (paused)"),
        (("at = 2026-12-01T11:00:00+01:00", 'cron = "0 10 1 12 *"'), "update job launch (cron)"),
        (('start = "2026-01-01T00:00:00Z"', 'start = "2026-01-01T01:00:00+01:00"'), None),  # the same moment
        (('start = "2026-01-01T00:00:00Z"', 'start = "2026-01-02T00:00:00Z"'), "update job poll (start)"),
        (("repeats = 10", "repeats = 11"), "update job poll (repeats)"),
        (("repeats = 10\n", ""), "update job poll (repeats)"),
        (("interval = 30", "interval = { seconds = 30 }"), None),
    ],
)
def test_a_changed_job_field_is_an_update_of_that_field(edit: tuple[str, str], expected: str | None) -> None:
    text = JOBS.replace(*edit)
    assert text != JOBS
    result = job_plan(text, STORED_JOBS)
    assert [str(c) for c in result.changes if c.action != "unchanged"] == ([expected] if expected else [])


def test_an_unreadable_stored_schedule_is_an_update() -> None:
    stored = [{**STORED_JOBS[0], "trigger": {"kind": "someday"}}]
    result = job_plan(job(name="nightly-report", timezone="Europe/Berlin", payload=Raw('{ kind = "full" }')), stored)
    assert actions(result) == ["update job nightly-report (cron)"]


NIGHTLY = {
    "name": "nightly",
    "service": "reports.build",
    "payload": None,
    "trigger": {"kind": "cron", "expression": "0 2 * * *", "timezone": "UTC"},
    "misfire": "run_once",
    "retries": 0,
    "backoff": 1.0,
    "paused": False,
    "origin": "declared:splice.toml",
}


@pytest.mark.parametrize(
    ("stored", "declared", "same"),
    [
        (None, None, True),
        ({"n": 1.0, "on": True}, "{ on = true, n = 1 }", True),
        ({"a": [1, {"b": "c"}]}, '{ a = [1, { b = "c" }] }', True),
        ({"n": 1}, "{ n = true }", False),
        ({"a": [1]}, "{ a = [1, 2] }", False),
        ({"a": 1}, "{ a = 1, b = 2 }", False),
        ([{"a": 1}], "{ a = 1 }", False),
        ("x", None, False),
        (None, '""', False),
    ],
)
def test_payloads_are_compared_as_json(stored: Any, declared: str | None, same: bool) -> None:
    text = job(payload=None if declared is None else Raw(declared))
    result = job_plan(text, [{**NIGHTLY, "payload": stored}])
    assert actions(result) == ["unchanged job nightly" if same else "update job nightly (payload)"]


BY_HAND = {**STORED_JOBS[3], "name": "by-hand", "origin": "admin-api"}
OTHER_FILE = {**STORED_JOBS[3], "name": "elsewhere", "origin": "declared:other.splice.toml"}
BY_SERVICE = {**STORED_JOBS[3], "name": "cleanup-7", "origin": "service:accounts.create"}


@pytest.mark.parametrize(
    ("prune", "expected"),
    [
        (False, []),
        (True, ["delete job by-hand", "delete job elsewhere"]),
    ],
)
def test_pruning_deletes_undeclared_jobs_but_never_those_services_made(prune: bool, expected: list[str]) -> None:
    result = job_plan(JOBS, [*STORED_JOBS, BY_SERVICE, OTHER_FILE, BY_HAND], prune=prune)
    assert [str(c) for c in result.changes if c.action != "unchanged"] == expected


def test_an_empty_file_with_prune_deletes_every_job_but_those_services_made() -> None:
    result = job_plan("", [*STORED_JOBS, BY_SERVICE], prune=True)
    assert [c.name for c in result.of("job", "delete")] == ["launch", "nightly-report", "poll", "tick"]


def test_warnings_name_jobs_whose_service_is_missing_or_that_a_service_made() -> None:
    text = JOBS + job(name="cleanup-7", service="tools.tick")
    result = job_plan(text, [BY_SERVICE], services={"tools.tick", "tools.launch", "tools.poll"})
    assert result.warnings == (
        "job nightly-report: no service named 'reports.build' is deployed yet",
        "job cleanup-7: made at run time by service:accounts.create; the file now changes it",
    )


def test_channels_security_and_jobs_plan_together() -> None:
    result = plan(parse(FULL + "\n" + JOBS, "splice.toml"), CURRENT_CHANNELS, CURRENT_SECURITY, SAME, jobs=[])
    assert result.counts() == {"create": 4, "update": 0, "delete": 0, "unchanged": 4}
    assert result.as_dict()["changes"][-1] == {"kind": "job", "name": "poll", "action": "create", "fields": []}


# -- outgoing connections and channel kinds ----------------------------------------------------------------------

OUTGOING = textwrap.dedent(
    """\
    [[outgoing]]
    name = "billing"
    kind = "rest"
    address = "https://billing.example.com/api"
    token_env = "BILLING_TOKEN"
    timeout = 5
    headers = { X-Tenant = "acme" }

    [[outgoing]]
    name = "crm"
    kind = "sql"
    address = "postgresql://crm@db.example.com/crm"
    password_env = "CRM_PASSWORD"
    pool_size = 2

    [[outgoing]]
    name = "cache"
    kind = "redis"
    address = "redis://127.0.0.1:6379/0"

    [[outgoing]]
    name = "broker"
    kind = "amqp"
    address = "amqp://guest@127.0.0.1:5672/"
    password_env = "BROKER_PASSWORD"

    [[channels]]
    name = "orders-in"
    kind = "amqp"
    service = "orders.take"
    connection = "broker"
    queue = "orders"
    prefetch = 5

    [[channels]]
    name = "live"
    kind = "websocket"
    path = "/live"
    service = "orders.live"
    """
)


def test_outgoing_connections_parse_with_their_kind_defaults_and_secret_variables() -> None:
    declaration = parse(OUTGOING, "splice.toml")
    billing, crm, cache, broker = declaration.outgoing
    assert (billing.name, billing.kind, billing.where) == ("billing", "rest", "outgoing[0]")
    assert billing.config == {
        "name": "billing",
        "kind": "rest",
        "address": "https://billing.example.com/api",
        "username": None,
        "header": "X-API-Key",
        "timeout": 5.0,
        "connect_timeout": 5.0,
        "retries": 2,
        "backoff": 0.2,
        "verify": True,
        "ca_file": None,
        "max_connections": 20,
        "headers": {"X-Tenant": "acme"},
    }
    assert billing.secret_envs == {"token": "BILLING_TOKEN"}
    assert (crm.config["pool_size"], crm.secret_envs) == (2, {"password": "CRM_PASSWORD"})
    assert (cache.config["max_connections"], cache.secret_envs) == (20, {})
    assert broker.lines == {"": 21, "name": 22, "kind": 23, "address": 24, "password_env": 25}
    assert declaration.secret_names() == ["BILLING_TOKEN", "BROKER_PASSWORD", "CRM_PASSWORD"]


def test_channels_of_every_kind_keep_their_kind_and_options() -> None:
    orders_in, live = parse(OUTGOING, "splice.toml").channels
    assert (orders_in.kind, orders_in.path, orders_in.methods, orders_in.service) == ("amqp", "", (), "orders.take")
    assert orders_in.connection == "broker"
    assert orders_in.options == {
        "connection": "broker",
        "queue": "orders",
        "prefetch": 5,
        "retries": 3,
        "backoff": 1.0,
        "dead_letter": None,
        "declare": True,
    }
    assert (live.kind, live.path, live.service, live.security, live.connection) == (
        "websocket",
        "/live",
        "orders.live",
        None,
        None,
    )
    assert live.options == {"max_message": 1048576, "idle_timeout": 300.0, "ping_interval": None}


def outgoing(**fields: object) -> str:
    base: dict[str, object] = {"name": "billing", "kind": "rest", "address": "https://billing.example.com"}
    base.update(fields)
    lines = [f"{k} = {_toml(v)}" for k, v in base.items() if v is not None]
    return "[[outgoing]]\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            outgoing(password="hunter2"),
            "splice.toml:5: outgoing[0].password: secrets never come from the file:"
            " name an environment variable with password_env",
        ),
        (outgoing(token="t"), "outgoing[0].token: secrets never come from the file: name an environment variable"),
        (
            outgoing(kind="sql", address="postgresql://db/x", key="k"),
            "outgoing[0].key: secrets never come from the file: name an environment variable with password_env",
        ),
        (outgoing(timeout=-1), "splice.toml:5: outgoing[0].timeout: must be > 0.0, got -1"),
        (outgoing(retries="2"), "splice.toml:5: outgoing[0].retries: must be an integer, got str"),
        (
            outgoing(timout=5),
            "splice.toml:5: outgoing[0].timout: unknown field for a rest connection; did you mean 'timeout'?",
        ),
        (outgoing(pool_size=2), "outgoing[0].pool_size: unknown field for a rest connection"),
        (
            outgoing(kind="reddis"),
            "splice.toml:3: outgoing[0].kind: must be one of amqp, redis, rest, sql, got 'reddis';"
            " did you mean 'redis'?",
        ),
        (outgoing(kind=None), "splice.toml:1: outgoing[0].kind: is required: one of amqp, redis, rest, sql"),
        (outgoing(address=None), "splice.toml:1: outgoing[0].address: is required"),
        (outgoing(name="bad name"), "splice.toml:2: outgoing[0].name: a connection name holds"),
        (outgoing(address="ftp://x"), "splice.toml:4: outgoing[0].address: a REST connection's address is"),
        (outgoing(address="https://u:pw@x"), "outgoing[0].address: must not hold a password"),
        (
            outgoing(kind="sql", address="postgresql://db/x", token_env="T"),
            "splice.toml:5: outgoing[0].token_env: a sql connection takes no token (its secrets: password_env)",
        ),
        (outgoing(token_env="not a name"), "outgoing[0].token_env: must name an environment variable"),
        (outgoing(token_env=5), "outgoing[0].token_env: must name an environment variable"),
        (outgoing(password_env="PW"), "splice.toml:5: outgoing[0].password_env: a password (HTTP Basic) needs"),
        (
            outgoing(token_env="T", key_env="K"),
            "outgoing[0].token_env: give one of password (Basic), key (API key), token (Bearer), not key and token",
        ),
        (outgoing() + outgoing(), "splice.toml:6: outgoing[1].name: 'billing' is declared twice (also at outgoing[0])"),
        ('[[outgoings]]\nname = "x"\n', "splice.toml:1: outgoings: unknown section; did you mean [[outgoing]]?"),
        # channel kinds
        (
            channel(kind="grpc"),
            "splice.toml:5: channels[0].kind: must be one of rest, websocket, jsonrpc, amqp, file, got 'grpc'",
        ),
        (channel(kind="websockets"), "channels[0].kind: must be one of rest, websocket, jsonrpc, amqp, file, got"),
        (channel(path=None, kind="amqp", connection="broker"), "splice.toml:1: channels[0].queue: is required"),
        (
            channel(path=None, kind="amqp", connection="broker", queue="q", prefetch=0),
            "splice.toml:7: channels[0].prefetch: must be >= 1, got 0",
        ),
        (
            channel(kind="amqp", connection="broker", queue="q"),
            "splice.toml:3: channels[0].path: unknown field for an amqp channel",
        ),
        (
            channel(kind="websocket", max_mesage=10),
            "splice.toml:6: channels[0].max_mesage: unknown field for a websocket channel; did you mean 'max_message'?",
        ),
        (channel(queue="q"), "splice.toml:5: channels[0].queue: unknown field for channels"),
    ],
)
def test_outgoing_and_channel_kind_problems_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_outgoing_secrets_come_from_the_environment_given() -> None:
    declaration = parse(OUTGOING, "splice.toml")
    environ = {"BILLING_TOKEN": "t0k", "CRM_PASSWORD": "pw", "BROKER_PASSWORD": "guest"}
    secrets = resolve_secrets(declaration, environ, "env")
    assert secrets.outgoing == {
        "billing": {"token": "t0k"},
        "crm": {"password": "pw"},
        "cache": {},
        "broker": {"password": "guest"},
    }
    assert "t0k" not in repr(secrets)
    with pytest.raises(DeclarationError) as caught:
        resolve_secrets(declaration, {"BILLING_TOKEN": "", "CRM_PASSWORD": "pw"}, "the CLI")
    assert [str(p) for p in caught.value.problems] == [
        "splice.toml:5: outgoing[0].token_env: BILLING_TOKEN is empty in the CLI",
        "splice.toml:25: outgoing[3].password_env: BROKER_PASSWORD is not set in the CLI",
    ]


def stored_outgoing(declaration: Declaration) -> list[dict[str, Any]]:
    """The rows the ODB would hold after applying ``declaration`` (``OdbOutgoing.list_outgoing``)."""
    return [
        {"name": o.name, "kind": o.kind, "config": dict(o.config), "secret_names": sorted(o.secret_envs)}
        for o in declaration.outgoing
    ]


def stored_channels(declaration: Declaration) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "kind": c.kind,
            "path": c.path,
            "methods": list(c.methods),
            "service": c.service,
            "security": c.security,
            "options": dict(c.options) or None,
        }
        for c in declaration.channels
    ]


FRESH: dict[str, list[str]] = {"billing": [], "crm": [], "cache": [], "broker": []}
"""No stored secret differs from the declared one."""


def outgoing_plan(text: str, current: str = OUTGOING, **options: Any) -> Any:
    stored = parse(current, "splice.toml")
    options.setdefault("stale_secrets", FRESH)
    return plan(
        parse(text, "splice.toml"),
        stored_channels(stored),
        [],
        {},
        outgoing=stored_outgoing(stored),
        **options,
    )


def changed(result: Any) -> list[str]:
    return [str(c) for c in result.changes if c.action != "unchanged"]


def test_outgoing_connections_are_created_before_the_channels_that_use_them() -> None:
    result = plan(parse(OUTGOING, "splice.toml"), [], [], {})
    assert actions(result) == [
        "create outgoing connection billing",
        "create outgoing connection crm",
        "create outgoing connection cache",
        "create outgoing connection broker",
        "create channel orders-in",
        "create channel live",
    ]


def test_the_same_outgoing_connections_and_channels_again_change_nothing() -> None:
    result = outgoing_plan(OUTGOING)
    assert not result.changed, changed(result)
    assert result.counts()["unchanged"] == 6


@pytest.mark.parametrize(
    ("edit", "stale", "expected"),
    [
        (("https://billing.example.com/api", "https://billing.example.com/v2"), {}, "billing (address)"),
        (("timeout = 5", "timeout = 5.0"), {}, None),
        (("timeout = 5\n", ""), {}, "billing (timeout)"),
        (('{ X-Tenant = "acme" }', '{ X-Tenant = "globex" }'), {}, "billing (headers)"),
        (("pool_size = 2", "pool_size = 2\nmax_overflow = 0"), {}, "crm (max_overflow)"),
        (("", ""), {"billing": ["token"]}, "billing (token)"),
        (("", ""), {"crm": ["password"]}, "crm (password)"),
        (('token_env = "BILLING_TOKEN"\n', ""), {"billing": ["token"]}, "billing (token)"),
        (
            ('token_env = "BILLING_TOKEN"', 'key_env = "BILLING_KEY"'),
            {"billing": ["key", "token"]},
            "billing (key, token)",
        ),
        (("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"), {}, "cache (address)"),
    ],
)
def test_a_changed_outgoing_field_or_secret_is_an_update_of_it(
    edit: tuple[str, str], stale: dict[str, list[str]], expected: str | None
) -> None:
    result = outgoing_plan(OUTGOING.replace(*edit), stale_secrets={**FRESH, **stale})
    assert changed(result) == ([f"update outgoing connection {expected}"] if expected else [])


def test_an_outgoing_secret_not_compared_counts_as_changed() -> None:
    result = outgoing_plan(OUTGOING, stale_secrets={})
    assert changed(result) == [
        "update outgoing connection billing (token)",
        "update outgoing connection crm (password)",
        "update outgoing connection broker (password)",
    ]


def test_a_changed_kind_of_connection_is_an_update() -> None:
    text = OUTGOING.replace(
        'kind = "redis"\naddress = "redis://127.0.0.1:6379/0"', 'kind = "rest"\naddress = "http://x"'
    )
    (change,) = outgoing_plan(text).of("outgoing", "update")
    assert change.name == "cache"
    assert change.fields[:2] == ("kind", "address")
    assert "max_connections" not in change.fields  # the same value in both kinds


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("prefetch = 5", "prefetch = 6"), "update channel orders-in (prefetch)"),
        (
            ('queue = "orders"', 'queue = "orders"\ndead_letter = "orders.failed"'),
            "update channel orders-in (dead_letter)",
        ),
        (('service = "orders.take"', 'service = "orders.put"'), "update channel orders-in (service)"),
        (
            ('kind = "websocket"\n', 'kind = "rest"\n'),
            "update channel live (kind, methods, max_message, idle_timeout, ping_interval)",
        ),
    ],
)
def test_a_changed_channel_of_another_kind_is_an_update_of_its_fields(edit: tuple[str, str], expected: str) -> None:
    text = OUTGOING.replace(*edit)
    assert text != OUTGOING
    assert changed(outgoing_plan(text)) == [expected]


def test_pruning_deletes_outgoing_connections_the_file_does_not_declare() -> None:
    text = OUTGOING.split('[[outgoing]]\nname = "cache"')[0]
    text += OUTGOING.split('address = "redis://127.0.0.1:6379/0"\n\n', 1)[1]
    assert not outgoing_plan(text).changed
    assert changed(outgoing_plan(text, prune=True)) == ["delete outgoing connection cache"]
    emptied = outgoing_plan("", prune=True)
    assert changed(emptied) == [
        "delete channel live",
        "delete channel orders-in",
        "delete outgoing connection billing",
        "delete outgoing connection broker",
        "delete outgoing connection cache",
        "delete outgoing connection crm",
    ]


AMQP_CHANNEL = channel(path=None, kind="amqp", connection="broker", queue="orders")
BROKER_ROW = {"name": "broker", "kind": "amqp", "config": {}, "secret_names": []}


def test_an_amqp_channel_consumes_through_a_connection_of_the_file_or_the_cluster() -> None:
    assert actions(plan(parse(AMQP_CHANNEL, "splice.toml"), [], [], {}, outgoing=[BROKER_ROW])) == [
        "create channel get-order"
    ]
    declared = outgoing(name="broker", kind="amqp", address="amqp://guest@127.0.0.1:5672/") + AMQP_CHANNEL
    assert changed(plan(parse(declared, "splice.toml"), [], [], {}, prune=True)) == [
        "create outgoing connection broker",
        "create channel get-order",
    ]


@pytest.mark.parametrize(
    ("text", "rows", "prune", "expected"),
    [
        (AMQP_CHANNEL, [], False, "no amqp outgoing connection named 'broker' is declared in the file or exists"),
        (AMQP_CHANNEL, [BROKER_ROW], True, "amqp outgoing connection 'broker' is not declared in the file, so pruning"),
        (
            AMQP_CHANNEL,
            [{**BROKER_ROW, "kind": "rest"}],
            False,
            "outgoing connection 'broker' is of kind rest: an AMQP channel consumes through an amqp one",
        ),
        (
            outgoing(name="broker") + AMQP_CHANNEL,
            [],
            False,
            "outgoing connection 'broker' is of kind rest: an AMQP channel consumes through an amqp one",
        ),
        (
            channel(kind="websocket", security="nope"),
            [],
            False,
            "channels[0].security: no security definition named 'nope'",
        ),
    ],
)
def test_a_channel_naming_a_missing_or_wrong_connection_is_refused(
    text: str, rows: list[dict[str, Any]], prune: bool, expected: str
) -> None:
    with pytest.raises(DeclarationError) as caught:
        plan(parse(text, "splice.toml"), [], [], {}, prune=prune, outgoing=rows)
    (problem,) = caught.value.problems
    assert expected in str(problem)
    if "connection" in expected:
        assert problem.field == "channels[0].connection"
        assert problem.line == text.splitlines().index('connection = "broker"') + 1


def test_warnings_leave_out_channels_that_name_no_one_service() -> None:
    text = channel(kind="jsonrpc", service=None, services=["orders.*"], path="/rpc")
    result = plan(parse(text, "splice.toml"), [], [], {}, services=set())
    assert result.warnings == ()
