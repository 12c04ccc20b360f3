"""The one stage runner: every pipeline stage is a `Stage` thread that applies its per-item work.

A stage reads from a `BoundedQueue` (or, for capture, iterates a source), times each call of ``work``, passes
non-None results on, forwards end of stream, and on an exception records it and stops every stage.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from stream.metrics import StageTimer
from stream.queues import END, BoundedQueue, Stopped

log = logging.getLogger(__name__)


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and the error in one line."""

    def __init__(self, stage: str, error: BaseException):
        self.stage, self.error = stage, error
        super().__init__(f"stage '{stage}' failed: {type(error).__name__}: {error}")


class Stage(threading.Thread):
    """Runs ``work(item)`` for each item of ``inbox``; ``close`` runs once at the end, whatever happened."""

    def __init__(
        self,
        name: str,
        work: Callable[[Any], Any],
        inbox: BoundedQueue | Iterable[Any],
        outbox: BoundedQueue | None,
        stop: threading.Event,
        errors: list[StageFailed],
        close: Callable[[], None] | None = None,
    ):
        super().__init__(name=f"stage-{name}", daemon=True)
        self.stage_name, self.work, self.inbox, self.outbox = name, work, inbox, outbox
        self.stop, self.errors, self.close = stop, errors, close
        self.timer = StageTimer(name)

    def _items(self):
        if isinstance(self.inbox, BoundedQueue):
            while (item := self.inbox.get()) is not END:
                yield item
        else:
            iterator = iter(self.inbox)
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                self.timer.add(time.perf_counter() - started)
                yield item

    def run(self) -> None:
        timed = isinstance(self.inbox, BoundedQueue)
        try:
            for item in self._items():
                started = time.perf_counter()
                result = self.work(item)
                if timed:
                    self.timer.add(time.perf_counter() - started)
                if result is not None and self.outbox is not None:
                    self.outbox.put(result)
            if self.outbox is not None:
                self.outbox.put(END)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - any failure must stop the whole pipeline
            self.errors.append(StageFailed(self.stage_name, exc))
            log.debug("stage %s failed", self.stage_name, exc_info=True)
            self.stop.set()
        finally:
            if self.close is not None:
                try:
                    self.close()
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(StageFailed(self.stage_name, exc))
                    self.stop.set()


def run_stages(stages: list[Stage], stop: threading.Event, errors: list[StageFailed]) -> None:
    """Start all stages and wait for them; raise the first `StageFailed` once every stage has stopped."""
    for stage in stages:
        stage.start()
    for stage in stages:
        while stage.is_alive():
            stage.join(0.1)
    if errors:
        raise errors[0]
