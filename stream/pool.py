"""`InferencePool`: one backend's inference workers shared by the pipelines of several sources in one process.

Each source's inference stage hands a frame to `InferencePool.infer` and waits for its detections; the pool's
workers take requests from the sources in turn (round-robin), so every source with a frame waiting gets the next
free worker within one turn, and a slow or stalled source, which simply has nothing waiting, holds up no other.
A source's stage has at most ``workers`` frames in flight, as with a single source. One worker runs on the thread
that calls `serve` (the main thread: torch's CPU kernels are fastest there, see `stream.stages.run_stages`).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from core.detections import Detections
from detector.backend import Backend
from stream.queues import Stopped

log = logging.getLogger(__name__)
POLL = 0.1  # seconds between checks of ``closed`` while waiting


@dataclass
class _Request:
    image: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    result: Detections | None = None
    error: BaseException | None = None


class InferencePool:
    """``workers`` threads (one of them the caller of `serve`) running ``backend`` for every registered source."""

    def __init__(self, backend: Backend, workers: int):
        if workers < 1:
            raise ValueError(f"an inference pool needs at least one worker, got {workers}")
        self.backend, self.workers = backend, workers
        self._waiting: dict[str, deque[_Request]] = {}
        self._turn = 0
        self._cond = threading.Condition()
        self._closed = False
        self.served: dict[str, int] = {}  # frames run per source, for records and tests

    def register(self, source_id: str) -> None:
        with self._cond:
            self._waiting.setdefault(source_id, deque())
            self.served.setdefault(source_id, 0)

    def infer(self, source_id: str, image: np.ndarray) -> Detections:
        """The backend's detections for ``image``, run by the next free worker in ``source_id``'s turn. Raises
        what the backend raised, or `Stopped` once the pool is closed."""
        request = _Request(image)
        with self._cond:
            if self._closed:
                raise Stopped
            self._waiting[source_id].append(request)
            self._cond.notify()
        while not request.done.wait(POLL):
            if self._closed:
                raise Stopped
        if request.error is not None:
            raise request.error
        return request.result

    def _next(self) -> tuple[str, _Request] | None:
        """The oldest request of the next source in turn that has one; None once closed. Waits for one."""
        with self._cond:
            while True:
                names = list(self._waiting)
                for step in range(len(names)):
                    name = names[(self._turn + step) % len(names)]
                    if self._waiting[name]:
                        self._turn = (self._turn + step + 1) % len(names)
                        return name, self._waiting[name].popleft()
                if self._closed:
                    return None
                self._cond.wait(POLL)

    def _work(self) -> None:
        with self.backend.worker_threads():
            while (taken := self._next()) is not None:
                name, request = taken
                try:
                    request.result = self.backend(request.image)
                except BaseException as exc:  # noqa: BLE001 - handed to the source's inference stage
                    request.error = exc
                finally:
                    self.served[name] += 1
                    request.done.set()

    def serve(self) -> None:
        """Run the workers, one on the calling thread, until `close`; returns when every worker has stopped."""
        helpers = [threading.Thread(target=self._work, name=f"pool-inference-{i}", daemon=True)
                   for i in range(1, self.workers)]
        for thread in helpers:
            thread.start()
        self._work()
        for thread in helpers:
            thread.join()

    def close(self) -> None:
        """Stop taking requests; the workers finish the ones already taken and return."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
