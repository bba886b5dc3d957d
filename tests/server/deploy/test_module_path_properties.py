"""Properties of where a deploy may put a module (``POST /splice/admin/deploy`` on a real server), with hypothesis.

A generated module path is deployed exactly when it is relative (no leading '/', no '\\'), ends with '.py', each
part before it is a Python identifier and no keyword (so no '..', '.', '' or '~' parts), it is not the root's
'__init__.py', and it is short enough for a file system (each name at most 255 bytes of UTF-8, the whole at most
500 characters and 1,024 bytes: ``splice.server.deploy.modules``). A deployed module's file lies under the
server's deployed directory; a refused one answers 422 with a problem that names the path, and leaves no file or
directory behind. The pure rule (``core.naming.check_module_path``) is checked against the same reference.
"""

from __future__ import annotations

import itertools
import keyword
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from splice.server.core.naming import check_module_path, module_name
from tests._hypothesis import budget
from tests.conftest import Cluster, make_cluster, running

MAX_PART_BYTES, MAX_PATH_CHARS, MAX_PATH_BYTES = 255, 500, 1024
SOURCE = (
    "from splice.server import Service\n\n\nclass Probe(Service):\n    name = 'paths.probe-{}'\n\n"
    "    def handle(self):\n        return None\n"
)  # a service named apart from the module: a non-ASCII module name makes no valid service name of its own
UNIQUE = itertools.count()


def form_ok(path: str) -> bool:
    """The documented form of a module path, written here apart from the server's code."""
    if not path or "\\" in path or path.startswith("/") or not path.endswith(".py"):
        return False
    parts = path[: -len(".py")].split("/")
    if parts == ["__init__"]:
        return False
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def length_ok(path: str) -> bool:
    parts_fit = all(len(part.encode("utf-8", "surrogatepass")) <= MAX_PART_BYTES for part in path.split("/"))
    return parts_fit and len(path) <= MAX_PATH_CHARS and len(path.encode("utf-8", "surrogatepass")) <= MAX_PATH_BYTES


IDENTIFIER = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
PART = st.one_of(
    IDENTIFIER,
    IDENTIFIER,
    st.sampled_from(["..", ".", "", "~", "class", "import", "match", "__init__", "1abc", "a-b", "a b", "é", "ﬁle",
                     "Ω", "a\x00b", "a\\b", "C:", "__pycache__", "x" * 256, "y" * 255, "é" * 128, "z" * 300]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=6),
)  # fmt: skip
SUFFIX = st.sampled_from([".py", ".py", ".py", "", ".pyc", ".PY", ".py/", "/.py", ".py.py", ".txt"])


@st.composite
def module_paths(draw: st.DrawFn) -> str:
    parts = draw(st.lists(PART, min_size=1, max_size=4))
    if parts[0].isidentifier() and not keyword.iskeyword(parts[0]):
        # A fresh top-level name per case: no case clashes with an earlier one (a module used as a package) or
        # shadows an installed module, the two other refusals a well-formed path can get.
        parts[0] = f"zz{next(UNIQUE)}_{parts[0]}"[: max(len(parts[0]), 40)]
    prefix = draw(st.sampled_from(["", "", "", "/", "./", "../", "a/../"]))
    return prefix + "/".join(parts) + draw(SUFFIX)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path_factory.mktemp("paths") / "cluster")) as made:
        yield made


@given(path=module_paths())
@example(path="zzlong/" + "x" * 300 + ".py")  # a 300-byte name: OSError 'File name too long', a 500
@example(path="zz../escape.py")
@example(path="../escape.py")
@example(path="zzok/__init__.py")
@example(path="__init__.py")
@budget(150)
def test_a_deploy_takes_a_module_path_exactly_when_the_rules_allow_it(path: str, cluster: Cluster) -> None:
    deployed = cluster.directory / "server1" / "work" / "deployed"
    before = _tree(deployed)
    source = SOURCE.format(next(UNIQUE))
    with cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": path, "source": source}]})
    assert answer.status_code < 500, answer.text
    if form_ok(path) and length_ok(path):
        assert answer.status_code == 200, f"{path!r} refused: {answer.text}"
        written = (deployed / path).resolve()
        assert written.is_relative_to(deployed.resolve())
        assert written.read_text() == source
    elif len(path) > 500:  # the admin API's body schema refuses it first (the ODB column's length), naming the field
        assert answer.status_code == 400, f"{path!r} answered {answer.status_code}: {answer.text}"
        problems = answer.json()["error"]["problems"]
        assert any(p["field"] == "modules[0].path" and "500" in p["message"] for p in problems), problems
        assert _tree(deployed) == before, f"{path!r} left files behind"
    else:
        assert answer.status_code == 422, f"{path!r} answered {answer.status_code}: {answer.text}"
        problems = answer.json()["error"]["problems"]
        assert any(p.get("path") == path for p in problems), problems
        named = [p["message"] for p in problems if p.get("path") == path]
        # The message names the path, or the part of it that is wrong (a long name shortened to its ends).
        shown = [path, repr(path), *(part[:12] for part in path.split("/") if part)]
        assert any(any(s in m for s in shown) or "empty" in m or "__init__.py" in m for m in named), named
        assert _tree(deployed) == before, f"{path!r} left files behind"


def _tree(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")} if directory.exists() else set()


@given(path=module_paths())
@budget(500)
def test_the_pure_rule_agrees_with_the_documented_form(path: str) -> None:
    problem = check_module_path(path)
    assert (problem is None) == form_ok(path), (path, problem)
    if problem is None:
        parts = path[: -len(".py")].split("/")
        assert module_name(path).split(".") == (parts[:-1] if parts[-1] == "__init__" else parts)
    else:
        assert repr(path) in problem or path in problem or "empty" in problem or "__init__.py" in problem, problem
        with pytest.raises(ValueError, match=re.escape(problem)):
            module_name(path)


def test_the_documented_limits_are_the_servers() -> None:
    from splice.server.deploy import modules

    limits = (modules.MAX_PART_BYTES, modules.MAX_PATH_CHARS, modules.MAX_PATH_BYTES)
    assert limits == (MAX_PART_BYTES, MAX_PATH_CHARS, MAX_PATH_BYTES)
