"""Declaration files (configuration as code): parsing, located problems, secrets, and plans. Pure, table-driven."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from splice.server.declare import (
    Change,
    ChannelSpec,
    Declaration,
    DeclarationError,
    SecuritySpec,
    parse,
    plan,
    resolve_secrets,
)

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


def _toml(value: object) -> str:
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
        ("jobs = 1\n", "splice.toml:1: jobs: unknown section (a file declares [[security]] and [[channels]])"),
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
    assert caught.value.status == 422


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
    assert secrets == {"partners": "s3cret", "internal": "k"}


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
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration as code", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    declaration = parse(example, "README.md")
    assert [c.name for c in declaration.channels] == ["get-order"]
    assert declaration.secret_names() == ["PARTNERS_PASSWORD"]
