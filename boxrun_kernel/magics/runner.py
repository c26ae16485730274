"""A background event loop that owns the magics' and widgets' connection to the server."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ..boxspec import server_address
from ..client import BoxRunClient
from .api import Server

T = TypeVar("T")


class Runner:
    """An asyncio loop in a daemon thread, so blocking magics and live widgets share one
    HTTP client whatever loop the kernel itself runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="boxrun-widgets",
                                        daemon=True)
        self._thread.start()
        self.server = Server(BoxRunClient(*server_address()))

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; its future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it; Ctrl-C (an interrupt) cancels it."""
        future = self.submit(coro)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async iterator of the loop, one by one in the calling thread."""
        async def step() -> T:
            return await anext(items)
        try:
            while True:
                try:
                    yield self.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self.submit(items.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        """Cancel the background work, close the client and stop the loop."""
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.client.aclose()
        if self.loop.is_running():
            self.submit(shutdown()).result(timeout=5)
            self.loop.call_soon_threadsafe(self.loop.stop)


_runner: Runner | None = None
_lock = threading.Lock()


def runner() -> Runner:
    """The process's runner, started on first use and stopped when the process exits."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner()
            atexit.register(_runner.close)
        return _runner


def shutdown() -> None:
    """Stop the runner (``%unload_ext``); the next use starts a new one."""
    global _runner
    with _lock:
        if _runner is not None:
            atexit.unregister(_runner.close)
            _runner.close()
            _runner = None


def kernel_hook(name: str = "use_box") -> Callable[..., Any] | None:
    """Method ``name`` of the running kernel where it has one (the BoxRun kernel's
    ``use_box(box)``: its next cells run in ``box``; ``box_restored(box, memory)``), else
    None."""
    from ipykernel.kernelbase import Kernel

    return getattr(Kernel.instance(), name, None) if Kernel.initialized() else None
