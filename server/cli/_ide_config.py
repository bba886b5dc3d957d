"""Editor configuration: the files with which VS Code and PyCharm attach to, deploy to and talk to a cluster.

Pure: the builders take the cluster's attach points (``attach_points(settings)``) and paths and return file
contents; the merges take the text of a file already there and return the new text. ``splice vscode launch``
and ``splice pycharm setup`` (``cli/ide.py``) read and write the files.

- VS Code, ``.vscode/launch.json``: a debugpy "attach" configuration per server process (its attach point, and
  the project root mapped onto that process's deployed directory) and a compound attaching to all of them. A
  server of several workers (``[[servers]] workers``) has one per worker ("Splice: attach to server1 worker 2"):
  a breakpoint hits whichever worker takes the request.
- PyCharm, ``.idea``: a "Python Debug Server" run configuration (each process's ``pydevd_pycharm`` connects
  to it), a File Watchers task deploying every saved ``.py`` file, and an LSP4IJ template for ``splice lsp``.

A server runs a deployed module from ``<server dir>/work/deployed/<path relative to the project root>`` (its
worker K from ``<server dir>/workers/<K>/work/deployed/...``), so one mapping of the project root per process is
all a debugger needs.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config import LOOPBACK
from ..core.errors import SpliceError
from ..debug import attach_point

if TYPE_CHECKING:
    from ..config import Settings

PREFIX = "Splice: "
"""Every launch.json configuration and compound whose name starts with this is ours: a merge replaces them."""
COMPOUND = "Splice: attach to cluster"
WORKSPACE_FOLDER = "${workspaceFolder}"
DEBUG_SERVER = "Splice debug server"
DEBUG_SERVER_FILE = "Splice_debug_server.xml"
"""The run configuration's file in ``.idea/runConfigurations`` (PyCharm's name for it: spaces as ``_``)."""
WATCHER = "Splice deploy"
LSP4IJ_TEMPLATE_DIR = "splice-lsp4ij-template"

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# A JSON string, or a comment (an unclosed /* last, so that it is found at all).
_STRINGS_OR_COMMENTS = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/|/\*', re.DOTALL)
_STRINGS_OR_TRAILING_COMMAS = re.compile(r'"(?:\\.|[^"\\\n])*"|,(\s*[}\]])')


@dataclass
class EditorFileError(SpliceError):
    """An editor's file that is already there cannot be read, so it cannot be merged into."""

    file: str
    line: int | None
    message: str

    code = "editor_file_invalid"

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


def attach_points(settings: Settings) -> list[dict[str, Any]]:
    """Every server process's attach point as configured (see ``debug.attach_point``): in ``[[servers]]`` order,
    each server's workers in turn (``worker`` and ``member`` set when it has several)."""
    points = []
    for server in settings.servers:
        for worker in range(1, server.workers + 1):
            process = replace(server, worker=worker)
            point = attach_point(settings.debug, process, settings.process_deployed_dir(process))
            point["server_host"] = server.host
            points.append(point)
    return points


def ide_root(settings: Settings) -> str:
    """The deployed directory PyCharm maps the project onto first: every server process translates it into its own
    (``debug.Debugger.ide_root``, the first server's ``deployed_dir``)."""
    return str(settings.deployed_dir(settings.servers[0].name))


def point_label(point: Mapping[str, Any]) -> str:
    """``server1``, or ``server1 worker 2`` for a worker of a server of several."""
    worker = point.get("worker")
    return f"{point['server']} worker {worker}" if worker else str(point["server"])


def _connect_host(point: Mapping[str, Any]) -> str:
    """Where an editor reaches an attach point: its address, or for one on every address (0.0.0.0, as in a
    container) the server's own host name when that names another machine, else the loopback."""
    listen = str(point["host"])
    if listen not in _WILDCARDS:
        return listen
    server_host = point.get("server_host")
    if server_host and server_host not in _WILDCARDS and server_host not in LOOPBACK:
        return str(server_host)
    return _WILDCARDS[listen]


# VS Code


def launch_configuration(point: Mapping[str, Any], local_root: str = WORKSPACE_FOLDER) -> dict[str, Any]:
    """The launch.json configuration attaching VS Code's debugpy to one server's attach point."""
    return {
        "name": f"{PREFIX}attach to {point_label(point)}",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": _connect_host(point), "port": point["port"]},
        "pathMappings": [{"localRoot": local_root, "remoteRoot": point["remote_root"]}],
        "justMyCode": True,
        # A breakpoint stops its own thread only (debugpy's default stops them all, the event loop included):
        # in a plain `def handle` only the request at the breakpoint waits.
        "stopAllThreadsOnSuspend": False,
    }


def launch(points: Sequence[Mapping[str, Any]], local_root: str = WORKSPACE_FOLDER) -> dict[str, Any]:
    """launch.json content: a configuration per server and the compound ``COMPOUND`` that starts them all.

    ``local_root`` is the project root as VS Code names it: ``${workspaceFolder}`` when the project is the
    workspace folder, else e.g. ``${workspaceFolder}/services``.
    """
    configurations = [launch_configuration(point, local_root) for point in points]
    compound = {"name": COMPOUND, "configurations": [c["name"] for c in configurations], "stopAll": True}
    return {"version": "0.2.0", "configurations": configurations, "compounds": [compound]}


def merge_launch(existing: str | None, ours: Mapping[str, Any], file: str = "launch.json") -> str:
    """The launch.json text: ``existing`` (JSON with comments, or ``None``) with our configurations and compounds
    replaced by ``ours`` and every other entry and key kept as it was, as pretty JSON (comments are not kept).

    Raises ``EditorFileError`` (naming ``file`` and the line) when ``existing`` cannot be read.
    """
    document: Any = {} if existing is None or not existing.strip() else loads_jsonc(existing, file)
    if not isinstance(document, dict):
        raise EditorFileError(file, None, "must hold a JSON object with a 'configurations' list")
    merged = {"version": ours["version"], **document}
    for key in ("configurations", "compounds"):
        entries = merged.get(key, [])
        if not isinstance(entries, list):
            raise EditorFileError(file, None, f"'{key}' must be a list, got {type(entries).__name__}")
        merged[key] = [entry for entry in entries if not _ours(entry)] + list(ours[key])
    return json.dumps(merged, indent=4, ensure_ascii=False) + "\n"


def strip_jsonc(text: str, file: str = "launch.json") -> str:
    """Plain JSON from JSON with comments (``//``, ``/* */``) and trailing commas, as VS Code writes its files;
    each removed character becomes a space (newlines stay), so lines and columns are the original ones."""

    def blank(match: re.Match[str]) -> str:
        token = match.group()
        if token.startswith('"'):
            return token
        if token == "/*":
            raise EditorFileError(file, text.count("\n", 0, match.start()) + 1, "a /* comment is not closed")
        return re.sub(r"[^\n]", " ", token)

    def drop_comma(match: re.Match[str]) -> str:
        return match.group() if match.group(1) is None else " " + match.group(1)

    return _STRINGS_OR_TRAILING_COMMAS.sub(drop_comma, _STRINGS_OR_COMMENTS.sub(blank, text))


def loads_jsonc(text: str, file: str = "launch.json") -> Any:
    """Parse JSON with comments and trailing commas; ``EditorFileError`` with the line when it is not valid."""
    try:
        return json.loads(strip_jsonc(text, file))
    except json.JSONDecodeError as exc:
        raise EditorFileError(file, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None


def _ours(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"].startswith(PREFIX)


# PyCharm


def debug_server_configuration(
    points: Sequence[Mapping[str, Any]], port: int, host: str = "localhost", first: str | None = None
) -> str:
    """``.idea/runConfigurations/Splice_debug_server.xml``: a "Python Debug Server" run configuration listening
    on ``host:port``, the project root (``$PROJECT_DIR$``) mapped onto every server process's deployed directory;
    ``first`` (``ide_root``) first when no process deploys there (the first server runs several workers): PyCharm
    sends breakpoints through the first mapping, and every process translates that one into its own."""
    component = ET.Element("component", name="ProjectRunConfigurationManager")
    configuration = ET.SubElement(
        component,
        "configuration",
        {
            "default": "false",
            "name": DEBUG_SERVER,
            "type": "PyRemoteDebugConfigurationType",
            "factoryName": "Python Remote Debug",
        },
    )
    _option(configuration, "PORT", str(port))
    _option(configuration, "HOST", host)
    mappings = ET.SubElement(_option(ET.SubElement(configuration, "PathMappingSettings"), "pathMappings"), "list")
    roots = [str(point["remote_root"]) for point in points]
    if first is not None and first not in roots:
        roots.insert(0, first)
    for root in roots:
        ET.SubElement(mappings, "mapping", {"local-root": "$PROJECT_DIR$", "remote-root": root})
    # Only what PyCharm's dialog shows in its settrace() snippet: the servers connect with suspend=False
    # and keep their output in their own logs.
    _option(configuration, "REDIRECT_OUTPUT", "false")
    _option(configuration, "SUSPEND_AFTER_CONNECT", "false")
    ET.SubElement(configuration, "method", v="2")
    return _xml(component, declaration=False)


def watcher_task(program: str, cluster_dir: str) -> ET.Element:
    """The File Watchers task ``WATCHER``: ``splice deploy`` of each saved ``.py`` file of the project."""
    task = ET.Element("TaskOptions", isEnabled="true")
    arguments = f"deploy $FilePath$ --cluster {_argument(cluster_dir)} --root $ProjectFileDir$"
    options: list[tuple[str, str | None]] = [
        ("arguments", arguments),
        ("checkSyntaxErrors", "false"),
        ("description", "Deploy to the Splice cluster on save"),
        ("exitCodeBehavior", "ERROR"),
        ("fileExtension", "py"),
        ("immediateSync", "false"),
        ("name", WATCHER),
        ("output", ""),
        ("outputFilters", None),
        ("outputFromStdout", "false"),
        ("program", program),
        ("runOnExternalChanges", "false"),
        ("scopeName", "Project Files"),
        ("trackOnlyRoot", "false"),
        ("workingDir", "$ProjectFileDir$"),
    ]
    for name, value in options:
        option = _option(task, name, value)
        if value is None:
            ET.SubElement(option, "array")
    ET.SubElement(task, "envs")
    return task


def watcher_tasks(program: str, cluster_dir: str, existing: str | None = None, file: str = "watcherTasks.xml") -> str:
    """``.idea/watcherTasks.xml``: ``existing`` (or a new file) with the task named ``WATCHER`` replaced in place
    (or added) and every other task kept. Raises ``EditorFileError`` when ``existing`` is not such a file."""
    if existing is None or not existing.strip():
        project = ET.Element("project", version="4")
    else:
        project = _parse_xml(existing, file)
        if project.tag != "project":
            raise EditorFileError(file, None, f"the root element must be <project>, got <{project.tag}>")
    component = project.find("component[@name='ProjectTasksOptions']")
    if component is None:
        component = ET.SubElement(project, "component", name="ProjectTasksOptions")
    tasks = list(component)
    position = next((i for i, task in enumerate(tasks) if _task_name(task) == WATCHER), len(tasks))
    for task in tasks:
        if _task_name(task) == WATCHER:
            component.remove(task)
    component.insert(position, watcher_task(program, cluster_dir))
    return _xml(project, declaration=True)


def lsp4ij_template(program: str, cluster_dir: str) -> dict[str, str]:
    """An LSP4IJ user-defined language server template (file name to content): ``splice lsp`` for Python files,
    told the cluster directory. Imported in LSP4IJ's "New Language Server" dialog, "Import from custom
    template...", from the directory holding these files (the layout LSP4IJ's own export writes)."""
    options = {"splice": {"clusterDir": cluster_dir}}
    template = {
        "name": "Splice",
        "programArgs": {"default": f"{_argument(program)} lsp"},
        "languageMappings": [{"language": "Python", "languageId": "python"}],
    }
    readme = (
        "# Splice language server\n\n"
        f"Runs `{program} lsp` (stdio) for Python files: diagnostics, completion, hover, definitions and\n"
        f"references of services, including those deployed on the cluster in `{cluster_dir}`.\n"
        "Written by `splice pycharm setup`; run it again after moving the cluster or the virtual environment.\n"
    )
    return {
        "template.json": _json(template),
        "settings.json": _json(options),
        "initializationOptions.json": _json(options),
        "README.md": readme,
    }


def _option(parent: ET.Element, name: str, value: str | None = None) -> ET.Element:
    attributes = {"name": name} if value is None else {"name": name, "value": value}
    return ET.SubElement(parent, "option", attributes)


def _task_name(task: ET.Element) -> str | None:
    if task.tag != "TaskOptions":
        return None
    option = task.find("option[@name='name']")
    return None if option is None else option.get("value")


def _parse_xml(text: str, file: str) -> ET.Element:
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # the user's comments stay
    try:
        parser.feed(text)
        return parser.close()
    except ET.ParseError as exc:
        line, _column = exc.position
        raise EditorFileError(file, line, f"not well-formed XML: {exc}") from None


def _xml(root: ET.Element, declaration: bool) -> str:
    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' if declaration else "") + text + "\n"


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _argument(text: str) -> str:
    """One argument of a command line as IntelliJ splits it: in double quotes when it holds spaces or quotes."""
    if text and not re.search(r'[\s"]', text):
        return text
    return '"' + text.replace('"', '\\"') + '"'


__all__ = [
    "COMPOUND",
    "DEBUG_SERVER",
    "DEBUG_SERVER_FILE",
    "LSP4IJ_TEMPLATE_DIR",
    "PREFIX",
    "WATCHER",
    "WORKSPACE_FOLDER",
    "EditorFileError",
    "attach_points",
    "debug_server_configuration",
    "ide_root",
    "launch",
    "launch_configuration",
    "loads_jsonc",
    "lsp4ij_template",
    "merge_launch",
    "point_label",
    "strip_jsonc",
    "watcher_task",
    "watcher_tasks",
]
