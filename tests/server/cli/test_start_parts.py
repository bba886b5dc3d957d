"""``splice start``'s parts beside the servers: schedulers and the dashboard are launched first and waited for later.

A real quickstart cluster (SQLite, a scheduler, the dashboard); its processes are stopped at the end.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from splice.server.cli import _dashboards as dashboards
from splice.server.cli import _schedulers as schedulers
from splice.server.config import load_settings
from splice.server.jobs import SCHEDULER_STATE_FILE
from tests.conftest import make_cluster, splice


def test_the_state_file_is_the_one_the_scheduler_writes() -> None:
    assert schedulers.STATE_FILE == SCHEDULER_STATE_FILE


def test_launch_returns_before_the_part_is_up_and_wait_returns_once_it_is(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", dashboard=True)
    settings = load_settings(made.directory)
    launched: dict[str, subprocess.Popen[bytes]] = {}
    pending = None
    try:
        launched = schedulers.launch(settings)
        pending = dashboards.launch_if_configured(settings)
        assert set(launched) == {"scheduler1"}
        assert pending is not None
        assert pending.process is not None
        assert pending.pid == pending.process.pid
        ran = schedulers.wait(settings, launched, 60)
        board = dashboards.wait(pending, 60)
        assert ran == [
            {"name": "scheduler1", "pid": launched["scheduler1"].pid, "started": True, "state": ran[0]["state"]}
        ]
        assert ran[0]["state"] in ("active", "standby")
        assert board == {"name": "dashboard", "url": pending.dashboard.url, "pid": pending.pid, "started": True}
        assert dashboards.healthy(pending.dashboard)
        # Launched again: both run already, nothing new starts and waiting returns at once.
        assert schedulers.launch(settings) == {}
        again = dashboards.launch_if_configured(settings)
        assert again is not None
        assert again.process is None
        assert again.pid == pending.pid
        assert dashboards.wait(again, 0.1)["started"] is False
        assert schedulers.start(settings, 0.1)[0]["started"] is False
    finally:
        splice("stop", str(made.directory), check=False)
        for process in [*launched.values(), *([pending.process] if pending and pending.process else [])]:
            process.wait(20)  # stopped by 'splice stop'; reaped here
