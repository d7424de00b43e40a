"""A second connection to a running bot's store, work released all at once, a stalled store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bot.config import Settings
from bot.links import LinkSigner
from bot.state import Store, store_from_url
from tests.conftest import BIG_NAME, DEMO_NAME, SECRET, Clock

T = TypeVar("T")


class Stalled:
    """The real store with some calls delayed on purpose: ``delays`` maps a method to seconds
    (change it while the store is in use); ``Stalled(store, 3.0)`` stalls the replay record and
    the dedup claim, whether apart or in a push's one trip (``answer_push``, #20)."""

    def __init__(self, inner: Store, seconds: float = 0.0, **delays: float) -> None:
        self._inner = inner
        self.delays = delays or {
            "remember_push": seconds,
            "claim_and_record": seconds,
            "answer_push": seconds,
        }

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._inner, name)
        seconds = self.delays.get(name, 0.0)
        if not seconds:
            return call

        async def stalled(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(seconds)
            return await call(*args, **kwargs)

        return stalled


LIMITED: list[dict[str, Any]] = [
    {"match": "芝麻开门", "file": DEMO_NAME},
    {"match": "Big", "file": BIG_NAME, "max_downloads": 1},
]


def link_id(path: str, clock: Callable[[], float]) -> str:
    signer = LinkSigner([SECRET], 600, files=[DEMO_NAME, BIG_NAME], clock=clock)
    return signer.verify(path.removeprefix("/d/")).link_id


def parallel(works: list[Callable[[], T]]) -> list[T]:
    """Run every work at once (a barrier releases them together); results in order."""
    barrier = threading.Barrier(len(works))

    def go(work: Callable[[], T]) -> T:
        barrier.wait(5)
        return work()

    with ThreadPoolExecutor(len(works)) as pool:
        return list(pool.map(go, works))


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]], clock: Clock) -> T:
    """Run ``work`` on a second connection to the server's store (as another worker would)."""

    async def run() -> T:
        store = store_from_url(settings.state.url, clock=clock)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())
