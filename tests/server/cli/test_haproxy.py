"""The HAProxy configuration as a pure function of the settings; each variant also passes ``haproxy -c``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from splice.server.cli import _haproxy as lb
from splice.server.config import LoadBalancerSettings, ServerSettings, Settings
from splice.server.core.errors import ConfigError


def settings(
    directory: Path = Path("/srv/cluster"),
    servers: tuple[tuple[str, str, int], ...] = (("server1", "127.0.0.1", 17011), ("server2", "127.0.0.1", 17012)),
    balancer: tuple[str, int] | None = ("127.0.0.1", 17010),
    name: str = "shop",
) -> Settings:
    return Settings(
        directory=directory,
        cluster_name=name,
        odb_url="sqlite+aiosqlite:///odb.sqlite",
        servers=tuple(ServerSettings(n, h, p, i) for i, (n, h, p) in enumerate(servers)),
        load_balancer=LoadBalancerSettings(*balancer) if balancer else None,
    )


def section(text: str, header: str) -> list[str]:
    """The lines of one section (``frontend splice``), without its header and indentation."""
    lines = text.splitlines()
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start:end] if line.strip()]


def test_the_whole_configuration() -> None:
    text = lb.render(settings())
    assert section(text, "frontend splice") == [
        "bind 127.0.0.1:17010",
        "monitor-uri /haproxy/alive",
        "option forwardfor",
        f"http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {lb.largest_body(settings())} }}",
        "default_backend servers",
    ]
    assert section(text, "backend servers") == [
        "balance roundrobin",
        "option httpchk GET /splice/ping",
        "http-check expect status 200",
        "default-server inter 500ms fall 2 rise 1",
        "server server1 127.0.0.1:17011 check",
        "server server2 127.0.0.1:17012 check",
    ]
    assert section(text, "global") == [
        "pidfile /srv/cluster/load-balancer/haproxy.pid",
        # A unix socket only its owner may use: the stats socket is never a TCP port.
        "stats socket unix@haproxy.sock mode 600 level admin expose-fd listeners",
        "hard-stop-after 30s",
    ]
    defaults = section(text, "defaults")
    assert {"mode http", "retries 3", "option redispatch 1", "option idle-close-on-response"} <= set(defaults)
    assert "timeout check 2s" in [line.split("#")[0].strip() for line in defaults]
    assert (
        "http-error status 503 content-type application/json string "
        """'{"error": {"code": "no_server", "message": "no server of the cluster is up"}}'"""
    ) in defaults
    assert lb.render(settings()) == text  # pure: the same settings, the same text


@pytest.mark.parametrize(
    ("servers", "balancer", "bind", "server_lines"),
    [
        ((("a", "127.0.0.1", 1),), ("127.0.0.1", 2), "bind 127.0.0.1:2", ["server a 127.0.0.1:1 check"]),
        ((("a", "::1", 1),), ("::1", 2), "bind ipv6@::1:2", ["server a ipv6@::1:1 check"]),
        ((("a.b:c-d_e", "localhost", 1),), ("0.0.0.0", 2), "bind 0.0.0.0:2", ["server a.b:c-d_e localhost:1 check"]),
        (
            (("z", "127.0.0.1", 3), ("a", "127.0.0.1", 1)),
            ("127.0.0.1", 9),
            "bind 127.0.0.1:9",
            ["server z 127.0.0.1:3 check", "server a 127.0.0.1:1 check"],  # the file's order
        ),
    ],
)
def test_addresses_and_servers(
    servers: tuple[tuple[str, str, int], ...], balancer: tuple[str, int], bind: str, server_lines: list[str]
) -> None:
    text = lb.render(settings(servers=servers, balancer=balancer))
    assert bind in section(text, "frontend splice")
    assert [line for line in section(text, "backend servers") if line.startswith("server ")] == server_lines


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("/srv/cluster/x.pid", "/srv/cluster/x.pid"),
        ("/my cluster/x", "/my\\x20cluster/x"),
        ("/a#b'c\"d$e\\f", "/a\\x23b\\x27c\\x22d\\x24e\\x5cf"),
        ("/a\nglobal", "/a\\x0aglobal"),
        ("/é", "/\\xc3\\xa9"),
        ("", '""'),
    ],
)
def test_words_cannot_break_out_of_their_place(value: str, word: str) -> None:
    assert lb._word(value) == word


def test_a_cluster_name_with_a_newline_stays_in_its_comment() -> None:
    text = lb.render(settings(name="evil\nglobal\n    daemon"))
    assert (
        text.splitlines()[0]
        == "# HAProxy in front of Splice cluster evil?global?    daemon: generated from cluster.toml"
    )
    assert text.splitlines()[1:] == lb.render(settings()).splitlines()[1:]


@pytest.mark.parametrize(
    ("servers", "balancer", "message"),
    [
        ((("server 1", "127.0.0.1", 1),), ("127.0.0.1", 2), r"servers\[0\]\.name: 'server 1' cannot name an HAProxy"),
        (
            (("ok", "127.0.0.1", 1), ("srv/2", "127.0.0.1", 3)),
            ("127.0.0.1", 2),
            r"servers\[1\]\.name: 'srv/2' cannot name",
        ),
        ((("ok", "127.0.0.1", 1),), None, r"no \[load_balancer\] section"),
    ],
)
def test_refusals_name_the_field(
    servers: tuple[tuple[str, str, int], ...], balancer: tuple[str, int] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        lb.render(settings(servers=servers, balancer=balancer))


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:17010/haproxy/alive"),
        ("0.0.0.0", "http://127.0.0.1:17010/haproxy/alive"),
        ("::", "http://[::1]:17010/haproxy/alive"),
        ("::1", "http://[::1]:17010/haproxy/alive"),
        ("lb.example", "http://lb.example:17010/haproxy/alive"),
    ],
)
def test_monitor_url(host: str, url: str) -> None:
    assert lb.monitor_url(LoadBalancerSettings(host, 17010)) == url


@pytest.mark.parametrize(
    ("directory", "servers", "balancer"),
    [
        (Path("/srv/cluster"), (("server1", "127.0.0.1", 17011),), ("127.0.0.1", 17010)),
        (Path("/srv/my cluster's $HOME #1"), (("a", "::1", 17011), ("b", "localhost", 17012)), ("::1", 17010)),
        (Path("/srv/c"), tuple((f"s{i}", "127.0.0.1", 20000 + i) for i in range(20)), ("0.0.0.0", 17010)),
    ],
)
def test_haproxy_accepts_every_variant(
    tmp_path: Path, directory: Path, servers: tuple[tuple[str, str, int], ...], balancer: tuple[str, int]
) -> None:
    haproxy = lb.find_haproxy()
    assert haproxy is not None, "these tests need HAProxy: apt-get install haproxy"
    config = tmp_path / "haproxy.cfg"
    config.write_text(lb.render(settings(directory, servers, balancer)), encoding="utf-8")
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "[WARNING]" not in checked.stderr, checked.stderr


def test_haproxy_refuses_only_bodies_no_endpoint_takes() -> None:
    from splice.server.http import channels

    largest = lb.largest_body(settings())
    assert largest >= channels.MAX_BODY
    assert largest >= settings().max_module_bytes
    assert f"the request body is larger than any endpoint of the cluster accepts ({largest} bytes)" in lb.render(
        settings()
    )
