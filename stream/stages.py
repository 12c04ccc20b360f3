"""The one stage runner: a pipeline is a list of `Stage`s, and `wire` + `run_stages` run any such list.

A `Stage` is described once: its name, its per-item work, how many workers run it and what its output queue does
when full. `wire` links consecutive stages by bounded queues (the first stage iterates the source) and gives each
a `StageRunner`, which runs the work on its own thread(s), times each call, passes non-None results on in input
order (also with several workers), forwards end of stream, and on an exception records it and stops every stage.
A stage may hold items back and pass several on at once (a list), and pass on what it still holds at the end
(``flush``): the track stage does, to fill the frames between two detector frames from both sides.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ContextManager, Literal

from stream.queues import END, BoundedQueue, Stopped
from stream.timing import StageTimer

log = logging.getLogger(__name__)
REORDER_WINDOW = 4  # items per worker a stage may finish ahead of the oldest one still in flight


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and the error in one line."""

    def __init__(self, stage: str, error: BaseException):
        self.stage, self.error = stage, error
        super().__init__(f"stage '{stage}' failed: {type(error).__name__}: {error}")


Overflow = Literal["block", "drop_oldest"]


@dataclass
class Stage:
    """One element of a pipeline.

    work: item -> item passed on, None to pass nothing on, or a list of items to pass each on (the last stage's
    results are dropped);
    workers: threads running ``work`` on successive items (results still leave in input order);
    overflow: what the queue after this stage does when full: ``block`` (back-pressure) or ``drop_oldest``;
    worker_context: wraps each worker's loop on its own thread (e.g. per-thread torch settings);
    main_thread: the first worker runs on the thread that calls `run_stages` (at most one stage);
    close: called once after the stage's last item;
    flush: called once after the stage's last item, before ``close``: the items it returns are passed on before
    end of stream (what a stage that holds items back still holds).
    """

    name: str
    work: Callable[[Any], Any]
    workers: int = 1
    overflow: Overflow = "block"
    worker_context: Callable[[], ContextManager] = contextlib.nullcontext
    main_thread: bool = False
    close: Callable[[], None] | None = None
    flush: Callable[[], list[Any]] | None = None


def wire(stages: list[Stage], items: Iterable[Any], queue_size: int, stop: threading.Event,
         errors: list[StageFailed]) -> tuple[list[StageRunner], dict[str, BoundedQueue]]:
    """Runners for ``stages``, the first fed by ``items``, each later one by a queue named after its producer."""
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    names = [stage.name for stage in stages]
    if len(set(names)) != len(names) or sum(stage.main_thread for stage in stages) > 1:
        raise ValueError(f"stage names must be unique and at most one stage on the main thread: {names}")
    queues = {s.name: BoundedQueue(s.name, queue_size, s.overflow, stop) for s in stages[:-1]}
    inboxes: list[BoundedQueue | Iterable[Any]] = [items, *queues.values()]
    outboxes: list[BoundedQueue | None] = [*queues.values(), None]
    runners = [StageRunner(stage, inbox, outbox, stop, errors)
               for stage, inbox, outbox in zip(stages, inboxes, outboxes)]
    return runners, queues


class StageRunner:
    """Runs a `Stage`'s ``work(item)`` for each item of ``inbox`` on its workers; ``close`` runs once at the end."""

    def __init__(self, stage: Stage, inbox: BoundedQueue | Iterable[Any], outbox: BoundedQueue | None,
                 stop: threading.Event, errors: list[StageFailed]):
        workers = stage.workers
        if workers > 1 and not isinstance(inbox, BoundedQueue):
            raise ValueError(f"stage '{stage.name}': only a stage fed by a queue can have several workers")
        if workers < 1:
            raise ValueError(f"stage '{stage.name}': workers must be >= 1, got {workers}")
        self.stage, self.inbox, self.outbox, self.stop, self.errors = stage, inbox, outbox, stop, errors
        self.timer = StageTimer(stage.name)
        self.threads = [threading.Thread(target=self._worker, name=f"stage-{stage.name}-{i}", daemon=True)
                        for i in range(workers)]
        self._take = threading.Lock()
        self._turn = threading.Condition()
        self._taken = self._emitted = 0
        self._pending: dict[int, Any] = {}
        self._running = workers

    @property
    def name(self) -> str:
        return self.stage.name

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
        """Hold ``result`` until every earlier item of this stage has been passed on, then pass on all that are
        ready, in input order. A worker does not wait for its turn, only when it runs ``REORDER_WINDOW`` items
        per worker ahead: with the detector on every k-th frame, the workers holding quick frames take the next
        slow one instead of idling behind the slow one in flight."""
        with self._turn:
            while seq - self._emitted >= REORDER_WINDOW * len(self.threads):
                if self.stop.is_set():
                    raise Stopped
                self._turn.wait(0.05)
            self._pending[seq] = result
            while self._emitted in self._pending:
                ready = self._pending.pop(self._emitted)
                try:
                    if ready is not None and self.outbox is not None:
                        for one in ready if isinstance(ready, list) else [ready]:
                            self.outbox.put(one)
                finally:
                    self._emitted += 1
                    self._turn.notify_all()

    def _worker(self) -> None:
        iterator = None if isinstance(self.inbox, BoundedQueue) else iter(self.inbox)
        timed = iterator is None
        try:
            with self.stage.worker_context():
                while not self.stop.is_set():
                    seq, item = self._next(iterator)
                    if item is END:
                        break
                    started = time.perf_counter()
                    result = self.stage.work(item)
                    if timed:
                        self.timer.add(time.perf_counter() - started)
                    self._emit(seq, result)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - any failure must stop the whole pipeline
            self.errors.append(StageFailed(self.name, exc))
            log.debug("stage %s failed", self.name, exc_info=True)
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
            if not self.stop.is_set():
                held = self.stage.flush() if self.stage.flush is not None else []
                if self.outbox is not None:
                    for item in [*held, END]:
                        self.outbox.put(item)
        except Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - a failing flush stops the pipeline like a failing item
            self.errors.append(StageFailed(self.name, exc))
            self.stop.set()
        finally:
            if self.stage.close is not None:
                try:
                    self.stage.close()
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(StageFailed(self.name, exc))
                    self.stop.set()


def run_stages(runners: list[StageRunner], stop: threading.Event, errors: list[StageFailed]) -> None:
    """Start all stages and wait for them; raise the first `StageFailed` once every stage has stopped.

    A ``main_thread`` stage's first worker runs on the calling thread: torch's CPU kernels only reach full
    multi-core speed on the main thread (MobileNetV2 at 320x576 on 2 cores: 41 ms there, 65 ms in any other
    thread, which gets about 1.35 cores), so the pipeline gives the main thread to inference.
    """
    in_caller = next((r for r in runners if r.stage.main_thread), None)
    for runner in runners:
        if runner is not in_caller:
            runner.start()
    if in_caller is not None:
        in_caller.start(in_caller=True)
    for runner in runners:
        while runner.is_alive():
            runner.join(0.1)
    if errors:
        raise errors[0]
