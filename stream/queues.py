"""A bounded queue between two stages, with the two overflow policies a stream needs.

``block``: the producer waits (lossless back-pressure, for files). ``drop_oldest``: the oldest queued item is
discarded and counted, so a live source never buffers more than ``maxsize`` frames. Written by hand because
``queue.Queue`` cannot drop its oldest item atomically. Waits wake up every ``poll`` seconds to see ``stop``.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Literal

END = object()  # end-of-stream marker; never dropped


class Stopped(Exception):
    """The pipeline was stopped while a stage waited on a queue."""


class BoundedQueue:
    def __init__(self, name: str, maxsize: int, policy: Literal["block", "drop_oldest"], stop: threading.Event,
                 poll: float = 0.05):
        self.name, self.maxsize, self.policy, self.stop, self.poll = name, maxsize, policy, stop, poll
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self.max_depth = 0
        self._depth_sum = 0
        self._puts = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if item is not END:
                while len(self._items) >= self.maxsize:
                    if self.policy == "drop_oldest":
                        self._items.popleft()
                        self.dropped += 1
                        break
                    if self.stop.is_set():
                        raise Stopped
                    self._cond.wait(self.poll)
            self._items.append(item)
            self._puts += 1
            self._depth_sum += len(self._items)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify_all()

    def get(self) -> Any:
        with self._cond:
            while not self._items:
                if self.stop.is_set():
                    raise Stopped
                self._cond.wait(self.poll)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def depth(self) -> int:
        return len(self._items)

    def mean_depth(self) -> float:
        return self._depth_sum / self._puts if self._puts else 0.0
