"""The editor files' builders and merges (``splice.server.cli._ide_config``): pure, table-driven."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from splice.lsp.catalog import ClusterSettings
from splice.server.cli import _ide_config as ide
from splice.server.cli._ide_config import EditorFileError
from splice.server.config import DebugSettings, ServerSettings, Settings

CLUSTER = Path("/srv/cluster")


def settings(
    servers: int, port: int = 5680, host: str = "127.0.0.1", server_host: str = "127.0.0.1", workers: int = 1
) -> Settings:
    return Settings(
        directory=CLUSTER,
        cluster_name="c",
        odb_url="sqlite+aiosqlite:///odb.sqlite",
        servers=tuple(
            ServerSettings(f"server{i + 1}", server_host, 17011 + i, i, workers=workers) for i in range(servers)
        ),
        debug=DebugSettings(host=host, port=port, allow_remote=host not in ("127.0.0.1", "::1", "localhost")),
    )


def deployed(name: str) -> str:
    return str(CLUSTER / name / "work" / "deployed")


# VS Code: launch.json


@pytest.mark.parametrize(
    ("servers", "port", "expected"),
    [
        (1, 5680, [("server1", 5680)]),
        (2, 5680, [("server1", 5680), ("server2", 5681)]),
        (3, 7000, [("server1", 7000), ("server2", 7001), ("server3", 7002)]),
    ],
)
def test_one_configuration_per_server_on_its_port_mapped_onto_its_deployed_directory(
    servers: int, port: int, expected: list[tuple[str, int]]
) -> None:
    content = ide.launch(ide.attach_points(settings(servers, port)))
    configurations = content["configurations"]
    assert [(c["name"], c["connect"]["port"]) for c in configurations] == [
        (f"Splice: attach to {name}", at) for name, at in expected
    ]
    for configuration, (name, _) in zip(configurations, expected, strict=True):
        assert configuration["type"] == "debugpy"
        assert configuration["request"] == "attach"
        assert configuration["connect"]["host"] == "127.0.0.1"
        assert configuration["pathMappings"] == [{"localRoot": "${workspaceFolder}", "remoteRoot": deployed(name)}]
        assert configuration["justMyCode"] is True
    (compound,) = content["compounds"]
    assert compound["name"] == "Splice: attach to cluster"
    assert compound["configurations"] == [c["name"] for c in configurations]
    assert content["version"] == "0.2.0"


def worker_deployed(name: str, worker: int) -> str:
    return str(CLUSTER / name / "workers" / str(worker) / "work" / "deployed")


def test_a_server_of_several_workers_has_a_configuration_per_worker_on_its_own_attach_point() -> None:
    content = ide.launch(ide.attach_points(settings(2, 5680, workers=2)))
    configurations = content["configurations"]
    assert [(c["name"], c["connect"]["port"], c["pathMappings"][0]["remoteRoot"]) for c in configurations] == [
        ("Splice: attach to server1 worker 1", 5680, worker_deployed("server1", 1)),
        ("Splice: attach to server1 worker 2", 5780, worker_deployed("server1", 2)),
        ("Splice: attach to server2 worker 1", 5681, worker_deployed("server2", 1)),
        ("Splice: attach to server2 worker 2", 5781, worker_deployed("server2", 2)),
    ]
    (compound,) = content["compounds"]
    assert compound["configurations"] == [c["name"] for c in content["configurations"]]
    points = ide.attach_points(settings(1, workers=2))
    assert [(p["worker"], p["member"]) for p in points] == [(1, "server1.w1"), (2, "server1.w2")]
    assert all("worker" not in p for p in ide.attach_points(settings(2)))  # one process: as before


def test_pycharm_maps_the_first_servers_directory_first_when_its_workers_deploy_elsewhere() -> None:
    many = settings(1, workers=2)
    root = ET.fromstring(ide.debug_server_configuration(ide.attach_points(many), 5690, first=ide.ide_root(many)))
    mappings = root.findall("configuration/PathMappingSettings/option[@name='pathMappings']/list/mapping")
    assert [m.get("remote-root") for m in mappings] == [
        deployed("server1"),  # what every process translates into its own (Debugger.ide_root)
        worker_deployed("server1", 1),
        worker_deployed("server1", 2),
    ]
    one = settings(2)
    root = ET.fromstring(ide.debug_server_configuration(ide.attach_points(one), 5690, first=ide.ide_root(one)))
    mappings = root.findall("configuration/PathMappingSettings/option[@name='pathMappings']/list/mapping")
    assert [m.get("remote-root") for m in mappings] == [deployed("server1"), deployed("server2")]


@pytest.mark.parametrize(
    ("listens_on", "connect_to"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("10.1.2.3", "10.1.2.3")],
)
def test_an_attach_point_on_every_address_is_reached_on_the_loopback(listens_on: str, connect_to: str) -> None:
    (configuration,) = ide.launch(ide.attach_points(settings(1, host=listens_on)))["configurations"]
    assert configuration["connect"]["host"] == connect_to


def test_an_attach_point_on_every_address_of_a_named_host_is_reached_there() -> None:
    """In a container (the devcontainer): the server is host 'server2' and debugpy listens on 0.0.0.0 there."""
    points = ide.attach_points(settings(2, host="0.0.0.0", server_host="server2"))
    assert [c["connect"] for c in ide.launch(points)["configurations"]] == [
        {"host": "server2", "port": 5680},
        {"host": "server2", "port": 5681},
    ]


def test_the_local_root_can_be_a_folder_of_the_workspace() -> None:
    content = ide.launch(ide.attach_points(settings(1)), local_root="${workspaceFolder}/services")
    assert content["configurations"][0]["pathMappings"][0]["localRoot"] == "${workspaceFolder}/services"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('// top\n{"a": 1 // after\n}', {"a": 1}),
        ('{/* one */"a": /* two\nlines */ 1}', {"a": 1}),
        ('{"a": [1, 2,], "b": {"c": 3,},}', {"a": [1, 2], "b": {"c": 3}}),
        ('{"a": [1,\n  // the last one went\n],\n}', {"a": [1]}),
        (
            '{"url": "http://host/x", "glob": "/*.py", "end": "*/"}',
            {"url": "http://host/x", "glob": "/*.py", "end": "*/"},
        ),
        ('{"quote": "say \\"//hi\\",", "comma": ",]"}', {"quote": 'say "//hi",', "comma": ",]"}),
        ('{"path": "C:\\\\dir\\\\", "next": 1,}', {"path": "C:\\dir\\", "next": 1}),
    ],
)
def test_json_with_comments_and_trailing_commas_parses_and_strings_are_left_alone(text: str, expected: Any) -> None:
    assert ide.loads_jsonc(text) == expected


def test_stripping_keeps_every_line_and_column_where_it_was() -> None:
    text = '{\n  // a comment\n  "a": 1, /* b */\n  "c": [2,],\n}\n'
    stripped = ide.strip_jsonc(text)
    assert [len(line) for line in stripped.splitlines()] == [len(line) for line in text.splitlines()]
    assert json.loads(stripped) == {"a": 1, "c": [2]}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{\n  "configurations": [\n    {"name": "x"}\n    {"name": "y"}\n  ]\n}', 4, "Expecting ',' delimiter"),
        ('{\n  // fine\n  "a": 1\n  /* never closed\n}', 4, "a /* comment is not closed"),
        ('{\n  "a": tru\n}', 2, "Expecting value"),
        ('{"a": 1}\n\n{"b": 2}', 3, "Extra data"),
    ],
)
def test_a_broken_file_is_an_error_naming_the_file_and_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(EditorFileError) as caught:
        ide.merge_launch(text, ide.launch([]), "/p/.vscode/launch.json")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"/p/.vscode/launch.json:{line}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "must hold a JSON object"),
        ('{"configurations": {}}', "'configurations' must be a list, got dict"),
        ('{"compounds": "x"}', "'compounds' must be a list, got str"),
    ],
)
def test_a_file_of_another_shape_is_an_error(text: str, message: str) -> None:
    with pytest.raises(EditorFileError, match=message):
        ide.merge_launch(text, ide.launch([]), "launch.json")


EXISTING = """{
    // Use IntelliSense to learn about possible attributes.
    "version": "0.2.0",
    "configurations": [
        {"name": "Python: current file", "type": "debugpy", "request": "launch", "program": "${file}"},
        {"name": "Splice: attach to server9", "type": "debugpy", "request": "attach"},
        {"name": "Splice: attach to server1", "type": "debugpy", "request": "attach", "connect": {"port": 1}},
        "not even an object",
    ],
    "compounds": [
        {"name": "Both", "configurations": ["Python: current file"]},
        {"name": "Splice: attach to cluster", "configurations": ["Splice: attach to server9"]},
    ],
    "inputs": [{"id": "x", "type": "promptString", "description": "/* not a comment */"}],
}
"""


def test_a_merge_replaces_our_entries_and_keeps_every_other_one_untouched() -> None:
    ours = ide.launch(ide.attach_points(settings(2)))
    merged = json.loads(ide.merge_launch(EXISTING, ours))
    assert list(merged) == ["version", "configurations", "compounds", "inputs"]
    assert merged["configurations"] == [
        {"name": "Python: current file", "type": "debugpy", "request": "launch", "program": "${file}"},
        "not even an object",
        *ours["configurations"],
    ]
    assert merged["compounds"] == [{"name": "Both", "configurations": ["Python: current file"]}, *ours["compounds"]]
    assert merged["inputs"] == [{"id": "x", "type": "promptString", "description": "/* not a comment */"}]


@pytest.mark.parametrize("existing", [None, "", "  \n", "{}", '{"configurations": []}', EXISTING])
def test_a_merge_gives_the_same_file_when_run_again(existing: str | None) -> None:
    ours = ide.launch(ide.attach_points(settings(3)))
    once = ide.merge_launch(existing, ours)
    assert ide.merge_launch(once, ours) == once
    assert once.endswith("}\n")
    assert json.loads(once)["configurations"][-3:] == ours["configurations"]


# PyCharm: the run configuration, the File Watcher, the LSP4IJ template


@pytest.mark.parametrize(("servers", "port"), [(1, 5690), (3, 6123)])
def test_the_debug_server_run_configuration_listens_on_the_port_and_maps_the_project_onto_every_server(
    servers: int, port: int
) -> None:
    root = ET.fromstring(ide.debug_server_configuration(ide.attach_points(settings(servers)), port))
    assert root.tag == "component"
    assert root.get("name") == "ProjectRunConfigurationManager"
    (configuration,) = root.findall("configuration")
    assert configuration.attrib == {
        "default": "false",
        "name": "Splice debug server",
        "type": "PyRemoteDebugConfigurationType",
        "factoryName": "Python Remote Debug",
    }
    options = {option.get("name"): option.get("value") for option in configuration.findall("option")}
    assert options["PORT"] == str(port)
    assert options["HOST"] == "localhost"
    mappings = configuration.findall("PathMappingSettings/option[@name='pathMappings']/list/mapping")
    assert [m.attrib for m in mappings] == [
        {"local-root": "$PROJECT_DIR$", "remote-root": deployed(f"server{i + 1}")} for i in range(servers)
    ]


def watcher_options(task: ET.Element) -> dict[str | None, str | None]:
    return {option.get("name"): option.get("value") for option in task.findall("option")}


@pytest.mark.parametrize(
    ("cluster_dir", "argument"),
    [("/srv/cluster", "/srv/cluster"), ("/srv/my cluster", '"/srv/my cluster"'), ('/a"b', '"/a\\"b"')],
)
def test_the_file_watcher_deploys_each_saved_python_file_to_the_cluster(cluster_dir: str, argument: str) -> None:
    text = ide.watcher_tasks("/venv/bin/splice", cluster_dir)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<project version="4">')
    root = ET.fromstring(text)
    (task,) = root.findall("component[@name='ProjectTasksOptions']/TaskOptions")
    assert task.get("isEnabled") == "true"
    options = watcher_options(task)
    assert options["name"] == "Splice deploy"
    assert options["program"] == "/venv/bin/splice"
    assert options["arguments"] == f"deploy $FilePath$ --cluster {argument} --root $ProjectFileDir$"
    assert options["fileExtension"] == "py"
    assert options["workingDir"] == "$ProjectFileDir$"
    assert options["scopeName"] == "Project Files"
    assert task.find("option[@name='outputFilters']/array") is not None
    assert task.find("envs") is not None


OTHER_TASKS = """<?xml version="1.0" encoding="UTF-8"?>
<project version="4">
  <!-- a comment of the user's -->
  <component name="ProjectTasksOptions">
    <TaskOptions isEnabled="true">
      <option name="name" value="Black" />
      <option name="program" value="black" />
    </TaskOptions>
    <TaskOptions isEnabled="false">
      <option name="name" value="Splice deploy" />
      <option name="program" value="/old/splice" />
    </TaskOptions>
    <TaskOptions isEnabled="true">
      <option name="name" value="Prettier" />
    </TaskOptions>
  </component>
  <component name="Unrelated"><x a="1" /></component>
</project>
"""


def test_a_watcher_merge_replaces_our_task_in_place_and_keeps_the_others() -> None:
    root = ET.fromstring(ide.watcher_tasks("/venv/bin/splice", "/srv/cluster", OTHER_TASKS))
    tasks = root.findall("component[@name='ProjectTasksOptions']/TaskOptions")
    assert [watcher_options(t)["name"] for t in tasks] == ["Black", "Splice deploy", "Prettier"]
    assert watcher_options(tasks[0]) == {"name": "Black", "program": "black"}
    assert watcher_options(tasks[1])["program"] == "/venv/bin/splice"
    assert tasks[1].get("isEnabled") == "true"
    assert root.find("component[@name='Unrelated']/x") is not None


def test_a_watcher_merge_keeps_comments_and_gives_the_same_file_when_run_again() -> None:
    once = ide.watcher_tasks("/venv/bin/splice", "/srv/cluster", OTHER_TASKS)
    assert "<!-- a comment of the user's -->" in once
    assert ide.watcher_tasks("/venv/bin/splice", "/srv/cluster", once) == once


@pytest.mark.parametrize(
    "existing",
    [
        '<project version="4" />',
        '<project version="4"><component name="Other" /></project>',
        '<project version="4"><component name="ProjectTasksOptions" /></project>',
    ],
)
def test_a_watcher_merge_adds_our_task_where_there_was_none(existing: str) -> None:
    root = ET.fromstring(ide.watcher_tasks("/venv/bin/splice", "/srv/cluster", existing))
    (task,) = root.findall("component[@name='ProjectTasksOptions']/TaskOptions")
    assert watcher_options(task)["name"] == "Splice deploy"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('<project version="4">\n  <component name="ProjectTasksOptions">\n</project>', 3, "not well-formed XML"),
        ('<?xml version="1.0"?>\n<project>\n  <a b="1" b="2"/>\n</project>', 3, "not well-formed XML"),
        ("<application />", None, "the root element must be <project>, got <application>"),
    ],
)
def test_a_broken_watcher_file_is_an_error_naming_the_file_and_the_line(
    text: str, line: int | None, message: str
) -> None:
    with pytest.raises(EditorFileError) as caught:
        ide.watcher_tasks("/venv/bin/splice", "/srv/cluster", text, "/p/.idea/watcherTasks.xml")
    assert caught.value.line == line
    where = "/p/.idea/watcherTasks.xml" + (f":{line}" if line else "")
    assert str(caught.value).startswith(f"{where}: {message}")


def test_the_lsp4ij_template_starts_splice_lsp_for_python_files_told_the_cluster() -> None:
    files = ide.lsp4ij_template("/venv/bin/splice", "/srv/cluster")
    assert sorted(files) == ["README.md", "initializationOptions.json", "settings.json", "template.json"]
    template = json.loads(files["template.json"])
    assert template == {
        "name": "Splice",
        "programArgs": {"default": "/venv/bin/splice lsp"},
        "languageMappings": [{"language": "Python", "languageId": "python"}],
    }
    for name in ("initializationOptions.json", "settings.json"):
        # What the language server reads from its initialization options and its settings.
        assert ClusterSettings.from_options(json.loads(files[name])).directory == "/srv/cluster"
    assert "/venv/bin/splice lsp" in files["README.md"]


def test_the_lsp4ij_command_quotes_a_program_path_with_spaces() -> None:
    template = json.loads(ide.lsp4ij_template("/home/a b/venv/bin/splice", "/c")["template.json"])
    assert template["programArgs"]["default"] == '"/home/a b/venv/bin/splice" lsp'
