"""ClientPair: each face made once however many threads ask at once; closed together; none made after."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from splice.server.connections._lazy import ClientPair


class Client:
    def __init__(self, blocking: bool) -> None:
        self.blocking = blocking
        self.closed_in: str | None = None


async def test_each_face_is_made_once_whichever_thread_asks_first() -> None:
    made: list[Client] = []

    def make(blocking: bool) -> Client:
        made.append(Client(blocking))
        return made[-1]

    pair = ClientPair("test connection 'x'", make)
    with ThreadPoolExecutor(8) as pool:
        blocking = set(pool.map(lambda _: id(pair.get(True)), range(64)))
    assert len(blocking) == 1
    assert pair.get(False) is pair.get(False)
    assert sorted(client.blocking for client in made) == [False, True]


async def test_aclose_closes_the_async_face_on_the_loop_and_the_blocking_one_in_a_thread() -> None:
    pair = ClientPair("test connection 'x'", Client)
    asynchronous, blocking = pair.get(False), pair.get(True)

    async def close_async(client: Client) -> None:
        client.closed_in = threading.current_thread().name

    def close_blocking(client: Client) -> None:
        client.closed_in = threading.current_thread().name

    await pair.aclose(close_async, close_blocking)
    assert asynchronous.closed_in == threading.main_thread().name
    assert blocking.closed_in is not None
    assert blocking.closed_in != threading.main_thread().name
    with pytest.raises(RuntimeError, match=r"test connection 'x' was closed \(it was replaced or removed\)"):
        pair.get(True)


async def test_aclose_closes_only_what_was_made() -> None:
    pair = ClientPair("test connection 'x'", Client)
    pair.get(True)
    closed: list[bool] = []

    async def close_async(client: Client) -> None:
        closed.append(client.blocking)

    await pair.aclose(close_async, lambda client: closed.append(client.blocking))
    assert closed == [True]
