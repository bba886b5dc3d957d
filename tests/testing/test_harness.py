"""splice.testing: services and what they invoke, run in-process without a server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from splice.server import HTTPError, InvalidInput, Service, ServiceFailed
from splice.server.core.errors import InvalidOutput
from splice.testing import ServiceHarness


class Add(Service):
    name = "calc.add"

    class Input:
        a: int
        b: int = 0

    def handle(self) -> None:
        self.response.payload = self.request.input["a"] + self.request.input["b"]


class Total(Service):
    name = "calc.total"

    async def handle(self) -> None:
        total = 0
        for n in self.request.payload:
            total = await self.ainvoke("calc.add", {"a": total, "b": n})
        self.response.payload = {"total": total, "tax": await self.ainvoke("tax.rate")}


class BlockingTotal(Service):
    name = "calc.blocking-total"

    def before_handle(self) -> None:
        self.seen = ["before"]

    def handle(self) -> None:
        self.seen.append("handle")
        self.response.payload = self.invoke("calc.add", {"a": 1, "b": 2})

    def after_handle(self) -> None:
        self.seen.append("after")
        self.response.headers["x-hooks"] = ",".join(self.seen)


class Background(Service):
    name = "bg.start"

    def handle(self) -> None:
        self.response.payload = self.invoke_async("bg.work", {"n": 1})


class Work(Service):
    name = "bg.work"
    done: list[int] = []

    async def handle(self) -> None:
        Work.done.append(self.request.payload["n"])


class Fails(Service):
    name = "bad.fails"

    def handle(self) -> None:
        raise KeyError("missing")


class CallsFailing(Service):
    name = "bad.caller"

    async def handle(self) -> None:
        await self.ainvoke("bad.fails")


class Refuses(Service):
    name = "bad.refuses"

    def handle(self) -> None:
        raise HTTPError(409, "already there")


def test_nested_invoke_with_a_stubbed_dependency() -> None:
    harness = ServiceHarness()
    harness.add(Add, Total)
    harness.stub("tax.rate", 0.2)
    assert harness.invoke("calc.total", [1, 2, 3]) == {"total": 6, "tax": 0.2}
    assert [c.name for c in harness.calls] == ["calc.total", "calc.add", "calc.add", "calc.add", "tax.rate"]
    assert harness.called("calc.add")[0].caller == "calc.total"


def test_blocking_invoke_and_hooks_in_order() -> None:
    harness = ServiceHarness()
    harness.add(Add, BlockingTotal)
    response = harness.call("calc.blocking-total")
    assert response.payload == 3
    assert response.headers["x-hooks"] == "before,handle,after"


def test_invoke_async_returns_a_cid_and_runs_in_the_background() -> None:
    harness = ServiceHarness()
    harness.add(Background, Work)
    Work.done.clear()
    cid = harness.invoke("bg.start")
    assert isinstance(cid, str)
    assert len(cid) == 24
    assert Work.done == [1]


def test_input_is_checked_before_handle() -> None:
    harness = ServiceHarness()
    harness.add(Add)
    with pytest.raises(InvalidInput) as caught:
        harness.invoke("calc.add", {"a": "x", "b": "y"})
    assert [p.field for p in caught.value.problems] == ["a", "b"]
    assert harness.invoke("calc.add", {"a": 2}) == 2


def test_errors_name_the_chain_of_services() -> None:
    harness = ServiceHarness()
    harness.add(Fails, CallsFailing, Refuses)
    with pytest.raises(ServiceFailed) as caught:
        harness.invoke("bad.caller")
    assert caught.value.chain == ["bad.caller", "bad.fails"]
    assert "KeyError" in str(caught.value)
    with pytest.raises(HTTPError) as refused:
        harness.invoke("bad.refuses")
    assert refused.value.status == 409


def test_stub_can_raise_and_compute() -> None:
    harness = ServiceHarness()
    harness.stub("crm.get", lambda payload: {"id": payload["id"], "name": "Ada"})
    harness.stub("crm.down", raises=ConnectionError("crm is down"))
    assert harness.invoke("crm.get", {"id": 7}) == {"id": 7, "name": "Ada"}
    with pytest.raises(ServiceFailed, match="crm is down"):
        harness.invoke("crm.down")


async def test_async_tests_use_ainvoke() -> None:
    harness = ServiceHarness()
    harness.add(Add)
    assert await harness.ainvoke("calc.add", {"a": 1, "b": 1}) == 2
    with pytest.raises(RuntimeError, match="ainvoke"):
        harness.invoke("calc.add", {"a": 1})


def test_plugin_fixture_in_a_users_project(pytester: pytest.Pytester) -> None:
    """A user's project: the fixture comes from the installed plugin, modules load by path as deployed."""
    pytester.makepyfile(
        **{
            "shop/__init__": "",
            "shop/orders": textwrap.dedent(
                """
                from splice.server import Service

                class CreateOrder(Service):
                    class Input:
                        customer_id: int

                    async def handle(self):
                        customer = await self.ainvoke("crm.get-customer", {"id": self.request.input["customer_id"]})
                        self.response.payload = {"order_id": 1, "customer": customer["name"]}
                """
            ),
            "test_orders": textwrap.dedent(
                """
                def test_create(splice_services):
                    assert splice_services.load("shop/orders.py") == ["shop.orders.create-order"]
                    splice_services.stub("crm.get-customer", {"name": "Ada"})
                    answer = splice_services.invoke("shop.orders.create-order", {"customer_id": 5})
                    assert answer == {"order_id": 1, "customer": "Ada"}
                    assert splice_services.called("crm.get-customer")[0].payload == {"id": 5}
                """
            ),
        }
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_load_refuses_a_path_outside_the_root(tmp_path: Path) -> None:
    harness = ServiceHarness(tmp_path / "project")
    with pytest.raises(ValueError, match="not inside the project root"):
        harness.load(tmp_path / "elsewhere.py")


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class PlaceOrder(Service):
    name = "shop.place-order"

    class Input(BaseModel):
        customer: int
        lines: list[Line]
        express: bool = False

    class Output(BaseModel):
        lines: int
        quantity: int

    def handle(self) -> None:
        lines = self.request.input.lines
        assert self.request.input["lines"] is lines
        assert isinstance(self.request.input.model_instance, PlaceOrder.Input)
        self.response.payload = PlaceOrder.Output(lines=len(lines), quantity=sum(line.qty for line in lines))


class Reorder(Service):
    name = "shop.reorder"

    async def handle(self) -> None:
        order = PlaceOrder.Input(customer=1, lines=[Line(sku="a", qty=2)])
        self.response.payload = {"again": await self.ainvoke("shop.place-order", order)}


class Sloppy(Service):
    name = "shop.sloppy"

    class Output(BaseModel):
        lines: int

    def handle(self) -> None:
        self.response.payload = {"lines": "several"}


def test_pydantic_input_and_output() -> None:
    harness = ServiceHarness()
    harness.add(PlaceOrder, Reorder, Sloppy)
    order = {"customer": 1, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 3}]}
    assert harness.invoke("shop.place-order", order) == {"lines": 2, "quantity": 5}
    assert harness.invoke("shop.reorder") == {"again": {"lines": 1, "quantity": 2}}
    assert harness.invoke("shop.place-order", {"lines": []}, query={"customer": "4", "express": "on"}) == {
        "lines": 0,
        "quantity": 0,
    }
    with pytest.raises(InvalidInput) as caught:
        harness.invoke("shop.place-order", {"customer": 1, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 0}]})
    assert [(p.field, p.message) for p in caught.value.problems] == [("lines[1].qty", "Input should be greater than 0")]
    with pytest.raises(InvalidOutput, match="lines: expected int, got string"):
        harness.invoke("shop.sloppy")


class EchoInput(Service):
    name = "shop.echo-input"

    class Input:
        id: int

    def handle(self) -> None:
        self.response.payload = self.request.input


class EchoOrder(Service):
    name = "shop.echo-order"
    Input = PlaceOrder.Input

    def handle(self) -> None:
        self.response.payload = self.request.input


def test_the_input_echoed_back_answers_as_json() -> None:
    harness = ServiceHarness()
    harness.add(EchoInput, EchoOrder)
    assert harness.invoke("shop.echo-input", {"id": 1, "extra": "kept"}) == {"id": 1, "extra": "kept"}
    order = {"customer": 1, "lines": [{"sku": "a", "qty": 2}]}
    assert harness.invoke("shop.echo-order", order) == {**order, "express": False}
