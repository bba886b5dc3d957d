"""Reading cluster.toml and SPLICE_* overrides into Settings; errors that name the file and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from splice.server.config import CONFIG_FILE, ServerSettings, load_settings, render_config, resolve_odb_url
from splice.server.core.errors import ConfigError

SERVER = '[[servers]]\nname = "server1"\nport = 17010\n'


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def test_defaults(tmp_path: Path) -> None:
    directory = write(tmp_path / "mycluster", SERVER)
    settings = load_settings(directory)
    assert settings.directory == directory.resolve()
    assert settings.cluster_name == "mycluster"
    assert settings.odb_url == f"sqlite+aiosqlite:///{directory.resolve() / 'odb.sqlite'}"
    assert settings.servers == (ServerSettings("server1", "127.0.0.1", 17010, 0),)
    assert (settings.max_module_bytes, settings.import_timeout, settings.log_level) == (1 << 20, 5.0, "INFO")
    assert settings.server("server1").url == "http://127.0.0.1:17010"
    assert settings.deployed_dir("server1") == directory.resolve() / "server1" / "work" / "deployed"
    with pytest.raises(ConfigError, match=r"servers: no server named 'server9' \(known: server1\)"):
        settings.server("server9")


FULL = """
    [cluster]
    name = "prod"
    odb = "postgresql+asyncpg://db/splice"
    log_level = "DEBUG"

    [deploy]
    max_module_bytes = 2048
    import_timeout = 2

    [[servers]]
    name = "a"
    host = "::1"
    port = 1

    [[servers]]
    name = "b"
    port = 65535
"""


@pytest.mark.parametrize(
    ("environ", "odb", "max_bytes", "timeout", "level"),
    [
        (None, "postgresql+asyncpg://db/splice", 2048, 2.0, "DEBUG"),
        ({}, "postgresql+asyncpg://db/splice", 2048, 2.0, "DEBUG"),
        ({"SPLICE_ODB": "sqlite:///other.db"}, "sqlite+aiosqlite:///{dir}/other.db", 2048, 2.0, "DEBUG"),
        (
            {"SPLICE_MAX_MODULE_BYTES": "10", "SPLICE_IMPORT_TIMEOUT": "0.5"},
            "postgresql+asyncpg://db/splice",
            10,
            0.5,
            "DEBUG",
        ),
        ({"SPLICE_LOG_LEVEL": "WARNING", "UNRELATED": "x"}, "postgresql+asyncpg://db/splice", 2048, 2.0, "WARNING"),
        ({"SPLICE_ODB": ""}, "postgresql+asyncpg://db/splice", 2048, 2.0, "DEBUG"),  # empty means unset
    ],
)
def test_file_and_environment(
    tmp_path: Path, environ: dict[str, str] | None, odb: str, max_bytes: int, timeout: float, level: str
) -> None:
    directory = write(tmp_path, FULL)
    settings = load_settings(directory, environ)
    assert settings.cluster_name == "prod"
    assert settings.odb_url == odb.format(dir=directory.resolve())
    assert (settings.max_module_bytes, settings.import_timeout, settings.log_level) == (max_bytes, timeout, level)
    assert type(settings.import_timeout) is float
    assert [(s.name, s.host, s.port, s.index) for s in settings.servers] == [
        ("a", "::1", 1, 0),
        ("b", "127.0.0.1", 65535, 1),
    ]
    assert settings.server("a").url == "http://[::1]:1"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("[cluster\n", None, "not valid TOML"),
        ("", "servers", "at least one [[servers]] entry"),
        ('[cluster]\nname = "x"\n', "servers", "at least one [[servers]] entry"),
        ("servers = []\n", "servers", "at least one [[servers]] entry"),
        ('servers = "server1"\n', "servers", "must be an array of tables"),
        ("servers = [1]\n", "servers[0]", "must be a table"),
        ('[[servers]]\nname = "s"\nport = 0\n', "servers[0].port", "between 1 and 65535, got 0"),
        ('[[servers]]\nname = "s"\nport = 65536\n', "servers[0].port", "between 1 and 65535, got 65536"),
        ('[[servers]]\nname = "s"\nport = "17010"\n', "servers[0].port", "must be int, got '17010'"),
        ('[[servers]]\nname = "s"\nport = true\n', "servers[0].port", "must be int, got True"),
        ('[[servers]]\nname = "s"\nport = 1.5\n', "servers[0].port", "must be int, got 1.5"),
        ("[[servers]]\nport = 1\n", "servers[0].name", "is required"),
        ("[[servers]]\nname = 7\nport = 1\n", "servers[0].name", "must be str, got 7"),
        ('[[servers]]\nname = "s"\n', "servers[0].port", "is required"),
        ('[[servers]]\nname = "s"\nhost = 127\nport = 1\n', "servers[0].host", "must be str, got 127"),
        (SERVER + SERVER.replace("17010", "17011"), "servers[1].name", "server name 'server1' is used twice"),
        ('cluster = "prod"\n' + SERVER, "cluster", "must be a table"),
        ("[cluster]\nodb = 5\n" + SERVER, "cluster.odb", "must be str, got 5"),
        ("[cluster]\nname = []\n" + SERVER, "cluster.name", "must be str, got []"),
        ('[deploy]\nimport_timeout = "5"\n' + SERVER, "deploy.import_timeout", "must be float, got '5'"),
        ("[deploy]\nmax_module_bytes = 1.0\n" + SERVER, "deploy.max_module_bytes", "must be int, got 1.0"),
        ('[debug]\nhost = "0.0.0.0"\n' + SERVER, "debug.host", "'0.0.0.0' is not the loopback"),
        ('[debug]\nhost = "10.0.0.5"\nallow_remote = "yes"\n' + SERVER, "debug.allow_remote", "must be bool"),
        ("[debug]\nport = 65536\n" + SERVER, "debug.port", "must leave a port for each of 1 servers"),
        ("[debug]\nenabled = 1\n" + SERVER, "debug.enabled", "must be bool, got 1"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, text: str, field: str | None, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path)
    error = raised.value
    assert (error.file, error.field) == (str(tmp_path.resolve() / CONFIG_FILE), field)
    assert message in error.message
    assert str(error).startswith(f"{error.file}: {field}: " if field else f"{error.file}: ")


MULTI_LINE = '# a comment\n[cluster]\nname = """\nmulti\nline"""\nlog_levle = 1\n'


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[deploy]\nimport_timout = 2\n" + SERVER, 2, "'import_timout' in [deploy]; did you mean 'import_timeout'?"),
        (
            'nmae = "x"\n' + SERVER,
            1,
            "'nmae' at the top level (keys: calls, cluster, dashboard, debug, deploy, load_balancer, logs, ",
        ),
        ("[deploys]\nx = 1\n" + SERVER, 1, "'deploys' at the top level; did you mean 'deploy'?"),
        ('[cluster]\nname = "x"\n\nodb_url = "sqlite://"\n' + SERVER, 4, "'odb_url' in [cluster]; did you mean 'odb'?"),
        ('[cluster]\nredis_url = ""\n' + SERVER, 2, "'redis_url' in [cluster]; did you mean 'redis'?"),
        (SERVER + 'hots = "::1"\n', 4, "'hots' in [[servers]]; did you mean 'host'?"),
        (SERVER + '\n[[servers]]\nname = "b"\nport = 2\n"pot" = 3\n', 8, "'pot' in [[servers]]; did you mean 'port'?"),
        (SERVER + "[servers.extra]\nx = 1\n", 4, "'extra' in [[servers]] (keys: host, name, port, workers)"),
        ("[load_balancer]\nport = 1\nhost_name = 'h'\n" + SERVER, 3, "'host_name' in [load_balancer]; did you mean"),
        ("[scheduler]\nlease_tll = 2\n" + SERVER, 2, "'lease_tll' in [scheduler]; did you mean 'lease_ttl'?"),
        (SERVER + "[[schedulers]]\nname = 's'\nnames = 't'\n", 6, "'names' in [[schedulers]]; did you mean 'name'?"),
        ("[debug]\nlisten = true\n" + SERVER, 2, "'listen' in [debug] (keys: allow_remote, enabled, host, port)"),
        ("[debug]\nenable = true\n" + SERVER, 2, "'enable' in [debug]; did you mean 'enabled'?"),
        ("[pickup]\ndir = []\n" + SERVER, 2, "'dir' in [pickup]; did you mean 'dirs'?"),
        ("[dashboard]\ndirs = 'd'\n" + SERVER, 2, "'dirs' in [dashboard]; did you mean 'dir'?"),
        ("deploy.import_timout = 2\n" + SERVER, 1, "'import_timout' in [deploy]; did you mean"),  # a dotted key
        ("deploy = {max_module_bytes = 1, import_timout = 2}\n" + SERVER, 1, "'import_timout' in [deploy]"),
        (MULTI_LINE + SERVER, 6, "'log_levle' in [cluster]; did you mean 'log_level'?"),
    ],
)
def test_unknown_keys_are_refused_at_their_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path.resolve() / CONFIG_FILE}:{line}: unknown key {message}")


def test_every_key_the_readers_take_is_known(tmp_path: Path) -> None:
    text = render_config("c", "sqlite://", [("s", "::1", 1)], redis="r", pickup=["p"], load_balancer=("::1", 2))
    text = text.replace("[cluster]\n", '[cluster]\nlog_level = "DEBUG"\nsync_interval = 2\n')
    text += "\n[[schedulers]]\nname = 's1'\n\n[scheduler]\npoll_interval = 1\nlease_ttl = 2\nmisfire_grace = 3\n"
    text += "history_days = 4\n\n[debug]\nenabled = false\nhost = '::1'\nport = 7000\nallow_remote = false\n"
    text += "\n[dashboard]\ndir = 'web'\n"
    write(tmp_path, text)
    settings = load_settings(tmp_path)
    assert (settings.sync_interval, settings.scheduler.history_days, settings.debug.port) == (2.0, 4.0, 7000)
    assert settings.dashboard_dir == tmp_path.resolve() / "web"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cluster\.toml: not found: is this a cluster directory") as raised:
        load_settings(tmp_path)
    assert raised.value.file == str(tmp_path.resolve() / CONFIG_FILE)


@pytest.mark.parametrize("variable", ["SPLICE_IMPORT_TIMEOUT", "SPLICE_MAX_MODULE_BYTES"])
def test_bad_environment(tmp_path: Path, variable: str) -> None:
    write(tmp_path, SERVER)
    with pytest.raises(ConfigError, match=f"^environment: .*{variable}") as raised:
        load_settings(tmp_path, {variable: "lots"})
    assert raised.value.file == "environment"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///odb.sqlite", "sqlite+aiosqlite:///{dir}/odb.sqlite"),
        ("sqlite+aiosqlite:///odb.sqlite", "sqlite+aiosqlite:///{dir}/odb.sqlite"),
        ("sqlite+aiosqlite:///data/../odb.sqlite", "sqlite+aiosqlite:///{dir}/odb.sqlite"),
        ("sqlite:////var/odb.sqlite", "sqlite+aiosqlite:////var/odb.sqlite"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_resolve_odb_url(tmp_path: Path, url: str, expected: str) -> None:
    assert resolve_odb_url(url, tmp_path) == expected.format(dir=tmp_path.resolve())


@pytest.mark.parametrize(
    ("name", "odb", "servers"),
    [
        ("quickstart", "sqlite+aiosqlite:///odb.sqlite", [("server1", "127.0.0.1", 17010)]),
        ('odd "name" \\ here', "postgresql+asyncpg://u:p@h/db", [("s1", "::1", 1), ("s2", "example.org", 65535)]),
        ("tab\tnew\nline\x7f", "sqlite:////var/odb.sqlite", [("s", "h", 2)]),  # control characters escaped
    ],
)
def test_render_config_round_trips(tmp_path: Path, name: str, odb: str, servers: list[tuple[str, str, int]]) -> None:
    write(tmp_path, render_config(name, odb, servers))
    settings = load_settings(tmp_path)
    assert settings.cluster_name == name
    assert settings.odb_url == resolve_odb_url(odb, tmp_path)
    assert [(s.name, s.host, s.port) for s in settings.servers] == servers
    assert (settings.max_module_bytes, settings.import_timeout) == (1 << 20, 5.0)


@pytest.mark.parametrize(
    ("deploy", "field"),
    [("import_timeout = 0", "deploy.import_timeout"), ("max_module_bytes = -1", "deploy.max_module_bytes")],
)
def test_deploy_limits_must_be_positive(tmp_path: Path, deploy: str, field: str) -> None:
    text = f'[deploy]\n{deploy}\n\n[[servers]]\nname = "server1"\nport = 17010\n'
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path)
    assert raised.value.field == field


def test_debug_settings_give_each_server_its_own_port(tmp_path: Path) -> None:
    write(tmp_path, '[debug]\nhost = "10.0.0.5"\nallow_remote = true\nport = 6000\n' + SERVER + SERVER.replace(
        "server1", "server2").replace("17010", "17011"))  # fmt: skip
    settings = load_settings(tmp_path)
    assert (settings.debug.enabled, settings.debug.host) == (False, "10.0.0.5")
    assert [settings.debug.port_of(s) for s in settings.servers] == [6000, 6001]
