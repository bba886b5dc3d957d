"""``splice vscode launch`` and ``splice pycharm setup``, run as the real command; and the launch.json it writes,
used the way VS Code uses it, stops a running cluster's every server at a breakpoint on the user's own file."""

from __future__ import annotations

import concurrent.futures
import json
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from tests.conftest import free_ports, make_cluster, running, splice
from tests.dap import attached


def options(element: ET.Element) -> dict[str | None, str | None]:
    return {option.get("name"): option.get("value") for option in element.findall("option")}


def test_vscode_launch_writes_a_configuration_per_server_and_merges_into_the_file_there(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path / "cluster", servers=2).directory
    project = tmp_path / "project"
    project.mkdir()
    written = splice("vscode", "launch", str(cluster), "--project", str(project))
    launch = project / ".vscode" / "launch.json"
    content = json.loads(launch.read_text())
    assert [(c["name"], c["connect"], c["pathMappings"]) for c in content["configurations"]] == [
        (
            f"Splice: attach to server{n}",
            {"host": "127.0.0.1", "port": 5680 + n - 1},
            [{"localRoot": "${workspaceFolder}", "remoteRoot": str(cluster / f"server{n}" / "work" / "deployed")}],
        )
        for n in (1, 2)
    ]
    assert content["compounds"] == [
        {
            "name": "Splice: attach to cluster",
            "configurations": ["Splice: attach to server1", "Splice: attach to server2"],
            "stopAll": True,
        }
    ]
    assert f"wrote {launch}" in written.stdout
    assert f"server2: 127.0.0.1:5681, {project} -> {cluster / 'server2' / 'work' / 'deployed'}" in written.stdout
    assert f"splice debug enable {cluster}" in written.stdout

    # The user's own configurations and a comment: the configurations stay, the old text is kept aside.
    mine = '{\n  // mine\n  "configurations": [{"name": "Run tests", "type": "debugpy", "request": "launch"},],\n}\n'
    launch.write_text(mine)
    merged = splice("vscode", "launch", str(cluster), "--project", str(project))
    names = [c["name"] for c in json.loads(launch.read_text())["configurations"]]
    assert names == ["Run tests", "Splice: attach to server1", "Splice: attach to server2"]
    assert "1 other configuration kept" in merged.stdout
    assert (project / ".vscode" / "launch.json.bak").read_text() == mine
    before = launch.read_text()
    splice("vscode", "launch", str(cluster), "--project", str(project))
    assert launch.read_text() == before


def test_vscode_launch_refuses_a_broken_file_in_one_line_and_leaves_it_alone(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path / "cluster").directory
    launch = tmp_path / ".vscode" / "launch.json"
    launch.parent.mkdir()
    broken = '{\n  "configurations": [\n    {"name": "a"}\n    {"name": "b"}\n  ]\n}\n'
    launch.write_text(broken)
    refused = splice("vscode", "launch", str(cluster), cwd=tmp_path, check=False)  # --project: the working directory
    assert refused.returncode == 1
    assert refused.stderr == f"splice: {launch}:4: not valid JSON: Expecting ',' delimiter (column 5)\n"
    assert launch.read_text() == broken
    assert sorted(p.name for p in launch.parent.iterdir()) == ["launch.json"]


def test_pycharm_setup_writes_the_debug_server_the_file_watcher_and_the_lsp4ij_template(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path / "cluster", servers=2).directory
    project = tmp_path / "project"
    idea = project / ".idea"
    idea.mkdir(parents=True)
    (idea / "watcherTasks.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<project version="4">\n  <component name="ProjectTasksOptions">\n'
        '    <TaskOptions isEnabled="true"><option name="name" value="Black" /></TaskOptions>\n'
        "  </component>\n</project>\n"
    )
    written = splice("pycharm", "setup", str(cluster), "--project", str(project), "--port", "5799")
    program = str(Path(sys.executable).parent / "splice")  # the splice of the Python that ran the command

    configuration = ET.parse(idea / "runConfigurations" / "Splice_debug_server.xml").getroot().find("configuration")
    assert configuration is not None
    assert configuration.get("type") == "PyRemoteDebugConfigurationType"
    assert options(configuration)["PORT"] == "5799"
    assert [m.get("remote-root") for m in configuration.iter("mapping")] == [
        str(cluster / "server1" / "work" / "deployed"),
        str(cluster / "server2" / "work" / "deployed"),
    ]

    tasks = ET.parse(idea / "watcherTasks.xml").getroot().findall("component/TaskOptions")
    assert [options(task)["name"] for task in tasks] == ["Black", "Splice deploy"]
    assert options(tasks[1])["program"] == program
    assert options(tasks[1])["arguments"] == f"deploy $FilePath$ --cluster {cluster} --root $ProjectFileDir$"

    template = idea / "splice-lsp4ij-template"
    assert json.loads((template / "template.json").read_text())["programArgs"] == {"default": f"{program} lsp"}
    assert json.loads((template / "initializationOptions.json").read_text()) == {"splice": {"clusterDir": str(cluster)}}
    assert f"splice debug pycharm {cluster} --port 5799" in written.stdout


def test_pycharm_setup_refuses_a_port_of_the_attach_points_and_bad_directories(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path / "cluster", servers=2).directory
    for args, code, message in [
        (["--port", "5681"], 1, "--port 5681 is server2's debugpy attach point"),
        (["--port", "0"], 2, "argument --port: not a port: '0'"),
        (["--project", str(tmp_path / "nowhere")], 2, f"the project root {tmp_path / 'nowhere'} is not a directory"),
    ]:
        refused = splice("pycharm", "setup", str(cluster), *args, cwd=tmp_path, check=False)
        assert refused.returncode == code
        assert message in refused.stderr.splitlines()[-1]
    not_a_cluster = splice("pycharm", "setup", str(tmp_path), cwd=tmp_path, check=False)
    assert not_a_cluster.returncode == 1
    assert not_a_cluster.stderr.count("\n") == 1
    assert "cluster.toml: not found" in not_a_cluster.stderr
    assert not (tmp_path / ".idea").exists()


SERVICE = textwrap.dedent(
    """
    from splice.server import Service


    class Where(Service):
        name = "ide.where"

        def handle(self):
            server = self.server
            self.response.payload = {"server": server}
    """
)
BREAK_LINE = 10  # self.response.payload = ...


def test_the_written_launch_json_stops_every_server_at_a_breakpoint_on_the_local_file(tmp_path: Path) -> None:
    made = make_cluster(tmp_path / "cluster", servers=2)
    with (made.directory / "cluster.toml").open("a") as config:
        config.write(f"\n[debug]\nenabled = true\nport = {free_ports(2)}\n")
    project = tmp_path / "project"
    file = project / "ide" / "where.py"
    file.parent.mkdir(parents=True)
    file.write_text(SERVICE)
    assert file.read_text().splitlines()[BREAK_LINE - 1].strip().startswith("self.response.payload")
    splice("vscode", "launch", str(made.directory), "--project", str(project))
    configurations = json.loads((project / ".vscode" / "launch.json").read_text())["configurations"]

    with running(made) as cluster:
        splice("deploy", str(file), "--cluster", str(cluster.directory), "--root", str(project))
        splice("channel", "create", "--cluster", str(cluster.directory), "--name", "where", "--path", "/where",
               "--service", "ide.where")  # fmt: skip
        for configuration, url, server in zip(configurations, cluster.urls, ["server1", "server2"], strict=True):
            # What VS Code does with the configuration: ${workspaceFolder} is the folder holding .vscode.
            mappings = [
                {key: value.replace("${workspaceFolder}", str(project)) for key, value in mapping.items()}
                for mapping in configuration["pathMappings"]
            ]
            connect = configuration["connect"]
            with (
                attached(connect["host"], connect["port"], mappings, {str(file): [BREAK_LINE]}) as (client, verified),
                concurrent.futures.ThreadPoolExecutor(1) as pool,
            ):
                assert [b["verified"] for b in verified[str(file)]] == [True]
                call = pool.submit(httpx.get, f"{url}/where", timeout=60)
                stopped = client.event("stopped", timeout=30)
                frame = client.locals_of_top_frame(stopped["threadId"])
                assert frame["server"] == repr(server)
                assert frame["<source>"] == str(file)  # the server's path, mapped back onto the project
                assert frame["<line>"] == str(BREAK_LINE)
                client.resume(stopped["threadId"])
                assert call.result(timeout=30).json() == {"server": server}
