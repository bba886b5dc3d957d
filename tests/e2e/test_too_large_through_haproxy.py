"""A body too large gets its 413 through the real HAProxy too, not a broken pipe or a reset: 3 tries out of 3,
with ``Content-Length`` (HAProxy refuses it from the header, past the largest body any endpoint takes) and chunked
(the server reads the rest and drops it, then answers, so that no reset loses the answer)."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from splice.server.cli._haproxy import find_haproxy
from tests.conftest import Cluster, make_cluster, running

# .ci/run installs HAProxy: a machine without it fails here and says so, rather than skipping the 413 it guards
assert find_haproxy() is not None, "HAProxy is not installed (apt-get install haproxy; .ci/run does it)"

ECHO = textwrap.dedent(
    """
    from splice.server import Service

    class Size(Service):
        name = "big.size"

        def handle(self):
            self.response.payload = {"size": len(self.request.payload or b"")}
    """
)
SIZE = 100 * 1000 * 1000
CHUNK = b"\0" * (1024 * 1024)


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with (
        running(make_cluster(tmp_path_factory.mktemp("big") / "cluster", load_balancer=True)) as made,
        made.admin() as admin,
    ):
        deployed = admin.post("/splice/admin/deploy", json={"modules": [{"path": "big.py", "source": ECHO}]})
        assert deployed.status_code == 200, deployed.text
        channel = {"name": "big", "path": "/big", "service": "big.size", "methods": ["POST"]}
        assert admin.post("/splice/admin/channels", json=channel).status_code == 201
        yield made


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // len(CHUNK)):
        yield CHUNK
    yield b"\0" * (size % len(CHUNK))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_100_mb_body_gets_413_through_the_balancer_every_time(balanced: Cluster, framing: str) -> None:
    assert balanced.load_balancer is not None
    outcomes = []
    with httpx.Client(base_url=balanced.load_balancer, timeout=60) as http:
        for _ in range(3):
            content = b"\0" * SIZE if framing == "content-length" else _chunks(SIZE)
            try:
                answer = http.post("/big", content=content, headers={"content-type": "application/octet-stream"})
            except httpx.TransportError as exc:
                outcomes.append(f"no answer: {exc!r}")
                continue
            error = answer.json()["error"] if answer.status_code == 413 else {}
            outcomes.append(f"{answer.status_code} {error.get('code')}")
    assert outcomes == ["413 too_large"] * 3


def test_curl_with_expect_100_continue_gets_413_too(balanced: Cluster, tmp_path: Path) -> None:
    assert balanced.load_balancer is not None
    body = tmp_path / "body"
    with body.open("wb") as out:
        out.truncate(SIZE)
    codes = []
    for framing in (["-H", "Content-Type: application/octet-stream"], ["-H", "Transfer-Encoding: chunked"]):
        for _ in range(3):
            command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *framing]
            command += ["--data-binary", f"@{body}", f"{balanced.load_balancer}/big"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
            codes.append(done.stdout or done.stderr.strip())
    assert codes == ["413"] * 6
