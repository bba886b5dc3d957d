"""The pure rules of the pickup directory: what is ignored, what a file is, and the reconcile plan."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from splice.server.cluster import _pickup_rules as rules


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("orders.py", "module"),
        ("shop/orders.py", "module"),
        ("shop/__init__.py", "module"),
        ("splice.toml", "config"),
        ("shop/splice.toml", "config"),
        ("prod.splice.toml", "config"),
        ("pyproject.toml", None),
        ("README.md", None),
        ("orders.pyc", None),
        ("orders.py.orig", None),
        # editor swap and backup files
        (".orders.py.swp", None),
        (".orders.py.swx", None),
        ("orders.py.swp", None),
        ("orders.py~", None),
        (".#orders.py", None),
        ("4913", None),
        ("shop/4913", None),
        ("orders.py.tmp", None),
        ("shop/orders.tmp", None),
        # hidden and cache directories, wherever they are
        (".git/config", None),
        (".git/hooks/pre-commit.py", None),
        ("shop/.hidden/orders.py", None),
        (".hidden.py", None),
        ("__pycache__/orders.cpython-311.pyc", None),
        ("shop/__pycache__/orders.py", None),
        (".splice.toml", None),
    ],
)
def test_kind_and_ignore_rules(rel: str, kind: str | None) -> None:
    assert rules.kind(rel) == kind


@pytest.mark.parametrize(
    ("rel", "ignored"),
    [
        ("shop", False),
        ("shop/orders", False),
        (".git", True),
        ("a/.git/index.lock", True),
        ("__pycache__", True),
        ("4913", True),
        ("notes~", True),
        ("a//b.py", True),
    ],
)
def test_ignored_paths_include_directories(rel: str, ignored: bool) -> None:
    assert rules.ignored(rel) is ignored


@pytest.mark.parametrize(
    ("root", "path", "rel"),
    [
        ("/c/pickup", "/c/pickup/orders.py", "orders.py"),
        ("/c/pickup/", "/c/pickup/shop/orders.py", "shop/orders.py"),
        ("/c/pickup", "/c/pickup/shop", "shop"),
        ("/c/pickup", "/c/pickup", None),
        ("/c/pickup", "/c/pickup2/orders.py", None),
        ("/c/pickup", "/elsewhere/orders.py", None),
    ],
)
def test_relative(root: str, path: str, rel: str | None) -> None:
    assert rules.relative(root, path) == rel


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("shop/orders.py", None),
        ("shop/__init__.py", None),
        ("my-script.py", "not a valid Python module name"),
        ("shop/class.py", "not a valid Python module name"),
        ("2fast.py", "not a valid Python module name"),
        ("__init__.py", "the project root itself cannot be a package"),
    ],
)
def test_module_problem(rel: str, problem: str | None) -> None:
    found = rules.module_problem(rel)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_tag_is_the_directory_and_stays_within_the_odb_column() -> None:
    assert rules.tag("/c/pickup") == "pickup:/c/pickup"
    long = "/" + "/".join(["d" * 50] * 10)
    assert len(rules.tag(long)) <= 200
    assert rules.tag(long) != rules.tag(long + "x")
    assert rules.tag(long).startswith("pickup:")


@pytest.mark.parametrize(
    ("rel", "scope", "inside"),
    [
        ("a.py", None, True),
        ("a.py", {"a.py"}, True),
        ("a.py", {"b.py"}, False),
        ("shop/a.py", {"shop"}, True),
        ("shop/sub/a.py", {"shop"}, True),
        ("shop/sub/a.py", {"shop/sub"}, True),
        ("shopping/a.py", {"shop"}, False),
        ("shop.py", {"shop"}, False),
        ("shop", {"shop/a.py"}, False),
    ],
)
def test_in_scope(rel: str, scope: set[str] | None, inside: bool) -> None:
    assert rules.in_scope(rel, scope) is inside


@dataclass(frozen=True)
class Rec:
    path: str
    sha256: str
    origin: str | None


ME = "pickup:/c/pickup"
OTHER = "pickup:/c/other"


@pytest.mark.parametrize(
    ("files", "deployed", "scope", "expected"),
    [
        pytest.param({}, [], None, rules.Plan(), id="empty"),
        pytest.param({"a.py": "1"}, [], None, rules.Plan(deploy=("a.py",)), id="new"),
        pytest.param({"a.py": "1"}, [Rec("a.py", "1", ME)], None, rules.Plan(unchanged=("a.py",)), id="same"),
        pytest.param({"a.py": "2"}, [Rec("a.py", "1", ME)], None, rules.Plan(deploy=("a.py",)), id="changed"),
        pytest.param(
            {"a.py": "2"}, [Rec("a.py", "1", None)], None, rules.Plan(deploy=("a.py",)), id="changed-deployed-by-api"
        ),
        pytest.param({"a.py": "1"}, [Rec("a.py", "1", None)], None, rules.Plan(unchanged=("a.py",)), id="same-by-api"),
        pytest.param({}, [Rec("a.py", "1", ME)], None, rules.Plan(undeploy=("a.py",)), id="deleted"),
        pytest.param({}, [Rec("a.py", "1", None)], None, rules.Plan(), id="deployed-by-api-is-never-undeployed"),
        pytest.param({}, [Rec("a.py", "1", OTHER)], None, rules.Plan(), id="another-pickup-directory-is-left-alone"),
        pytest.param(
            {"n.py": "1", "c.py": "3", "u.py": "4"},
            [Rec("c.py", "2", ME), Rec("u.py", "4", ME), Rec("d.py", "5", ME), Rec("api.py", "6", None)],
            None,
            rules.Plan(deploy=("c.py", "n.py"), undeploy=("d.py",), unchanged=("u.py",)),
            id="git-pull",
        ),
        pytest.param(
            {"a.py": "2", "b.py": "2"},
            [Rec("a.py", "1", ME), Rec("b.py", "1", ME), Rec("c.py", "1", ME)],
            {"a.py"},
            rules.Plan(deploy=("a.py",)),
            id="scope-limits-deploys-and-undeploys",
        ),
        pytest.param(
            {"keep/x.py": "1"},
            [Rec("shop/a.py", "1", ME), Rec("shop/sub/b.py", "1", ME), Rec("shopping.py", "1", ME)],
            {"shop"},
            rules.Plan(undeploy=("shop/a.py", "shop/sub/b.py")),
            id="directory-removed",
        ),
    ],
)
def test_plan(files: dict[str, str], deployed: list[Rec], scope: set[str] | None, expected: rules.Plan) -> None:
    assert rules.plan(files, deployed, ME, scope) == expected


@pytest.mark.parametrize(
    ("imports", "graph"),
    [
        ({"a": set(), "b": {"a", "json"}}, {"a": set(), "b": {"a"}}),
        (
            {"pkg": set(), "pkg.a": set(), "pkg.sub.b": {"pkg.a"}},
            {"pkg": set(), "pkg.a": {"pkg"}, "pkg.sub.b": {"pkg", "pkg.a"}},
        ),
        ({"a": {"a", "b"}, "b": {"a"}}, {"a": {"b"}, "b": {"a"}}),
    ],
)
def test_batch_graph(imports: dict[str, set[str]], graph: dict[str, set[str]]) -> None:
    assert rules.batch_graph(imports) == graph


@pytest.mark.parametrize(
    ("failed", "dropped"),
    [
        ({"base"}, {"base", "mid", "top"}),
        ({"mid"}, {"mid", "top"}),
        ({"top"}, {"top"}),
        ({"alone"}, {"alone"}),
        (set(), set()),
    ],
)
def test_casualties(failed: set[str], dropped: set[str]) -> None:
    graph = {"base": set(), "mid": {"base"}, "top": {"mid"}, "alone": set()}
    assert rules.casualties(graph, failed) == dropped
