"""Finding the services a module defines, and the store's atomic swap."""

from __future__ import annotations

import textwrap

import pytest

from splice.server import Service
from splice.server.core.store import ServiceInfo, ServiceStore, find_services


# Defined here, so its __module__ is this test module: to a user module it is an imported class.
class Imported(Service):
    def handle(self) -> None:
        pass


def module(source: str, name: str = "billing.orders") -> dict[str, object]:
    """The namespace of ``source`` run as the module ``name``, as a deployed module's would be."""
    namespace: dict[str, object] = {"__name__": name, "Service": Service, "Imported": Imported}
    exec(compile(textwrap.dedent(source), f"{name.replace('.', '/')}.py", "exec"), namespace)
    return namespace


def found(source: str) -> tuple[list[str], list[str]]:
    classes, problems = find_services("billing.orders", module(source))
    return [cls.__name__ for cls in classes], problems


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("from splice.server import Service", []),
        ("class NotAService:\n    def handle(self): pass", []),
        ("class Local(Imported):\n    pass", ["Local"]),  # inherits handle() from the imported class
        ("class Plain(Service):\n    def handle(self): pass", ["Plain"]),
        ("class Async(Service):\n    async def handle(self): pass", ["Async"]),
        ("class Optional(Service):\n    def handle(self, x=1, *args, **kwargs): pass", ["Optional"]),
        (
            """
            class Base(Service):
                abstract = True
                def helper(self): pass

            class Concrete(Base):
                def handle(self): pass
            """,
            ["Concrete"],  # abstract is not inherited
        ),
        ("class A(Service):\n    def handle(self): pass\nclass B(A):\n    pass", ["A", "B"]),
        ("instance = Imported()", []),
    ],
)
def test_find_services(source: str, names: list[str]) -> None:
    assert found(source) == (names, [])


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("class NoHandle(Service):\n    pass", "class NoHandle does not define handle()"),
        (
            "class Args(Service):\n    def handle(self, order): pass",
            "class Args: handle() must take only self, it takes (self, order)",
        ),
        (
            "class Static(Service):\n    @staticmethod\n    def handle(): pass",
            "class Static: handle() must take only self, it takes ()",
        ),
        (
            "class Before(Service):\n    def handle(self): pass\n    def before_handle(self, x): pass",
            "class Before: before_handle() must take only self",
        ),
        (
            "class After(Service):\n    def handle(self): pass\n    def after_handle(self, *, x): pass",
            "class After: after_handle() must take only self",
        ),
        ("class NotFunction(Service):\n    handle = 5", "class NotFunction: handle is not a function"),
        (
            "class Named(Service):\n    name = 'has space'\n    def handle(self): pass",
            "class Named: service name 'has space' may only hold",
        ),
        (
            "class Empty(Service):\n    name = ''\n    def handle(self): pass",
            "class Empty: a service name must not be empty",
        ),
        (
            "class Number(Service):\n    name = 5\n    def handle(self): pass",
            "class Number: a service name must be a string, not int",
        ),
    ],
)
def test_find_services_problems(source: str, problem: str) -> None:
    names, problems = found(source)
    assert len(names) == 1  # a class with a problem is still a service class, so the edge can name it
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_find_services_reports_every_class() -> None:
    names, problems = found("class A(Service):\n    pass\nclass B(Service):\n    def handle(self, x): pass")
    assert names == ["A", "B"]
    assert [p.split(":")[0].split()[1] for p in problems] == ["A", "B"]


def test_find_services_lists_an_aliased_class_once() -> None:
    assert found("class GetOrder(Service):\n    def handle(self): pass\nAlias = GetOrder") == (["GetOrder"], [])


def info(name: str, module_name: str, version: int = 1) -> ServiceInfo:
    return ServiceInfo(name, Imported, module_name, module_name.replace(".", "/") + ".py", version)


def test_swap_replaces_whole_modules_at_once() -> None:
    store = ServiceStore()
    store.swap(set(), [info("a.one", "a"), info("a.two", "a"), info("b.one", "b")])
    before = store.snapshot()
    store.swap({"a"}, [info("a.three", "a", 2)])
    assert dict(before) == {"a.one": info("a.one", "a"), "a.two": info("a.two", "a"), "b.one": info("b.one", "b")}
    assert store.names() == ["a.three", "b.one"]
    assert store.get("a.one") is None
    assert store.get("a.three") == info("a.three", "a", 2)
    assert [i.name for i in store.by_module("b")] == ["b.one"]
    store.swap({"b"}, [])
    assert store.names() == ["a.three"]
    with pytest.raises(TypeError):
        store.snapshot()["x"] = info("x", "x")  # type: ignore[index]


@pytest.mark.parametrize(
    ("replaced", "incoming", "expected"),
    [
        (set(), [info("a.one", "c")], [("a.one", "a/__init__.py")]),  # another module has it
        (set(), [info("a.one", "a")], []),  # the same module redeployed
        ({"a"}, [info("a.one", "c")], []),  # the other module is being replaced too
        (set(), [info("new", "c"), info("b.one", "c")], [("b.one", "b/__init__.py")]),
    ],
)
def test_conflicts(replaced: set[str], incoming: list[ServiceInfo], expected: list[tuple[str, str]]) -> None:
    store = ServiceStore()
    store.swap(
        set(),
        [
            ServiceInfo("a.one", Imported, "a", "a/__init__.py", 1),
            ServiceInfo("b.one", Imported, "b", "b/__init__.py", 1),
        ],
    )
    assert [(i.name, path) for i, path in store.conflicts(replaced, incoming)] == expected
