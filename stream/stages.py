"""The one stage runner: every pipeline stage is a `Stage` that applies its per-item work on its own thread(s).

A stage reads from a `BoundedQueue` (or, for capture, iterates a source), times each call of ``work``, passes
non-None results on in input order, forwards end of stream, and on an exception records it and stops every stage.
A stage may run several workers (threads) on the same queue; their results still leave in input order.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ContextManager

from stream.metrics import StageTimer
from stream.queues import END, BoundedQueue, Stopped

log = logging.getLogger(__name__)


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and the error in one line."""

    def __init__(self, stage: str, error: BaseException):
        self.stage, self.error = stage, error
        super().__init__(f"stage '{stage}' failed: {type(error).__name__}: {error}")


class Stage:
    """Runs ``work(item)`` for each item of ``inbox`` on ``workers`` threads; ``close`` runs once at the end.

    ``worker_context`` wraps each worker's loop on its own thread (e.g. per-thread torch settings).
    """

    def __init__(
        self,
        name: str,
        work: Callable[[Any], Any],
        inbox: BoundedQueue | Iterable[Any],
        outbox: BoundedQueue | None,
        stop: threading.Event,
        errors: list[StageFailed],
        close: Callable[[], None] | None = None,
        workers: int = 1,
        worker_context: Callable[[], ContextManager] = contextlib.nullcontext,
    ):
        if workers > 1 and not isinstance(inbox, BoundedQueue):
            raise ValueError(f"stage '{name}': only a stage fed by a queue can have several workers")
        self.stage_name, self.work, self.inbox, self.outbox = name, work, inbox, outbox
        self.stop, self.errors, self.close, self.worker_context = stop, errors, close, worker_context
        self.timer = StageTimer(name)
        self.threads = [threading.Thread(target=self._worker, name=f"stage-{name}-{i}", daemon=True)
                        for i in range(workers)]
        self._take = threading.Lock()
        self._turn = threading.Condition()
        self._taken = self._emitted = 0
        self._running = workers

    def start(self, in_caller: bool = False) -> None:
        """Start the workers; with ``in_caller`` the first one runs on the calling thread until the stage ends."""
        for thread in self.threads[1:] if in_caller else self.threads:
            thread.start()
        if in_caller:
            self._worker()

    def is_alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout: float | None = None) -> None:
        for thread in self.threads:
            if thread.ident is not None:
                thread.join(timeout)

    def _next(self, iterator) -> tuple[int, Any]:
        """The next item and its sequence number; END when the stream is over."""
        with self._take:
            if isinstance(self.inbox, BoundedQueue):
                item = self.inbox.get()
                if item is END:
                    self.inbox.put(END)  # the other workers of this stage must see it too
                    return -1, END
            else:
                started = time.perf_counter()
                item = next(iterator, END)
                if item is not END:
                    self.timer.add(time.perf_counter() - started)
            self._taken += 1
            return self._taken - 1, item

    def _emit(self, seq: int, result: Any) -> None:
        """Pass ``result`` on once every earlier item of this stage has been passed on (input order)."""
        with self._turn:
            while self._emitted != seq:
                if self.stop.is_set():
                    raise Stopped
                self._turn.wait(0.05)
            try:
                if result is not None and self.outbox is not None:
                    self.outbox.put(result)
            finally:
                self._emitted += 1
                self._turn.notify_all()

    def _worker(self) -> None:
        iterator = None if isinstance(self.inbox, BoundedQueue) else iter(self.inbox)
        timed = iterator is None
        try:
            with self.worker_context():
                while not self.stop.is_set():
                    seq, item = self._next(iterator)
                    if item is END:
                        break
                    started = time.perf_counter()
                    result = self.work(item)
                    if timed:
                        self.timer.add(time.perf_counter() - started)
                    self._emit(seq, result)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - any failure must stop the whole pipeline
            self.errors.append(StageFailed(self.stage_name, exc))
            log.debug("stage %s failed", self.stage_name, exc_info=True)
            self.stop.set()
        finally:
            self._finish()

    def _finish(self) -> None:
        """The last worker out forwards end of stream (after every result) and runs ``close``."""
        with self._take:
            self._running -= 1
            last = self._running == 0
        if not last:
            return
        try:
            if self.outbox is not None and not self.stop.is_set():
                self.outbox.put(END)
        except Stopped:
            pass
        finally:
            if self.close is not None:
                try:
                    self.close()
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(StageFailed(self.stage_name, exc))
                    self.stop.set()


def run_stages(stages: list[Stage], stop: threading.Event, errors: list[StageFailed],
               in_caller: Stage | None = None) -> None:
    """Start all stages and wait for them; raise the first `StageFailed` once every stage has stopped.

    ``in_caller``'s first worker runs on the calling thread: torch's CPU kernels only reach full multi-core
    speed on the main thread (MobileNetV2 at 320x576 on 2 cores: 41 ms there, 65 ms in any other thread, which
    gets about 1.35 cores), so the pipeline gives the main thread to inference.
    """
    for stage in stages:
        if stage is not in_caller:
            stage.start()
    if in_caller is not None:
        in_caller.start(in_caller=True)
    for stage in stages:
        while stage.is_alive():
            stage.join(0.1)
    if errors:
        raise errors[0]
