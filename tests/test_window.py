"""ConfirmWindow: publishes overlap, confirmations come in start order, a failure stops them."""

from __future__ import annotations

import asyncio

import pytest

from gateway.sinks.window import ConfirmWindow


async def _after(delay: float, fail: bool = False) -> None:
    await asyncio.sleep(delay)
    if fail:
        raise ConnectionError("lost")


async def test_confirmations_follow_start_order_and_the_window_bounds_flight() -> None:
    done: list[int] = []
    async with asyncio.TaskGroup() as tg:
        window = ConfirmWindow(tg, 3)
        # later ones finish first; none is confirmed before every earlier one
        for i, delay in enumerate([0.05, 0.01, 0.0, 0.02, 0.0]):
            await window.add(_after(delay), lambda i=i: done.append(i))
            assert len(window) <= 3
        await window.drain()
    assert done == [0, 1, 2, 3, 4]


async def test_a_failed_publish_confirms_nothing_after_it() -> None:
    done: list[int] = []
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            window = ConfirmWindow(tg, 10)
            await window.add(_after(0.0), lambda: done.append(0))
            await window.add(_after(0.01, fail=True), lambda: done.append(1))
            await window.add(_after(0.0), lambda: done.append(2))
            await window.drain()
    assert info.group_contains(ConnectionError)
    assert done == [0]
