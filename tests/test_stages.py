"""The one stage runner and its bounded queues: order, end of stream, back-pressure, drop-oldest, errors."""
from __future__ import annotations

import threading
import time

import pytest

from stream.queues import END, BoundedQueue, Stopped
from stream.stages import Stage, StageFailed, StageRunner, run_stages, wire
from stream.timing import StageTimer


def chain(items, *works, size=2, policy="block", workers=1):
    """``items`` -> a source stage -> one stage per work (each with ``workers``) -> a sink collecting ``out``."""
    stop, errors, out = threading.Event(), [], []
    stages = [Stage("source", lambda x: x, overflow=policy)]
    stages += [Stage(f"s{i}", w, workers=workers) for i, w in enumerate(works)]
    stages.append(Stage("sink", out.append))
    runners, queues = wire(stages, items, size, stop, errors)
    assert list(queues) == [s.name for s in stages[:-1]]  # each queue is named after the stage that fills it
    return runners, stop, errors, out, list(queues.values())


def test_items_flow_in_order_and_end_of_stream_stops_every_stage():
    stages, stop, errors, out, _ = chain(range(50), lambda x: x * 2, lambda x: x + 1)
    run_stages(stages, stop, errors)
    assert out == [x * 2 + 1 for x in range(50)]
    assert not any(s.is_alive() for s in stages)
    assert all(len(s.timer.snapshot()) == 50 for s in stages)


def test_none_result_filters_an_item():
    stages, stop, errors, out, _ = chain(range(10), lambda x: x if x % 2 else None)
    run_stages(stages, stop, errors)
    assert out == [1, 3, 5, 7, 9]


def test_a_stage_may_hold_items_pass_several_on_at_once_and_the_rest_at_the_end():
    """A list result passes each of its items on, in order; ``flush`` passes on what is still held at the end."""
    held: list[int] = []

    def every_third(x: int) -> list[int] | None:
        held.append(x)
        if x % 3 != 2:
            return None
        out = held[:]
        held.clear()
        return out

    def rest() -> list[int]:
        out = held[:]
        held.clear()
        return out

    stop, errors, out = threading.Event(), [], []
    stages = [Stage("source", lambda x: x), Stage("batch", every_third, flush=rest),
              Stage("slow", lambda x: (time.sleep(0.001), x)[1]), Stage("sink", out.append)]
    runners, _ = wire(stages, range(11), 2, stop, errors)
    run_stages(runners, stop, errors)
    assert out == list(range(11)) and not errors


def test_a_failing_flush_fails_the_stage():
    stop, errors, out = threading.Event(), [], []
    stages = [Stage("source", lambda x: x), Stage("batch", lambda x: x, flush=lambda: 1 / 0),
              Stage("sink", out.append)]
    runners, _ = wire(stages, range(3), 2, stop, errors)
    with pytest.raises(StageFailed, match="stage 'batch' failed: ZeroDivisionError"):
        run_stages(runners, stop, errors)
    assert out == [0, 1, 2]


def test_block_policy_applies_back_pressure_and_keeps_everything():
    stages, stop, errors, out, queues = chain(range(30), lambda x: (time.sleep(0.005), x)[1], size=2)
    run_stages(stages, stop, errors)
    assert out == list(range(30))
    assert all(q.max_depth <= 2 + 1 for q in queues)  # +1: END may ride on top of a full queue
    assert all(q.dropped == 0 for q in queues)


def test_drop_oldest_keeps_the_newest_and_counts_drops():
    stop = threading.Event()
    q = BoundedQueue("live", 3, "drop_oldest", stop)
    for i in range(10):
        q.put(i)
    q.put(END)
    got = []
    while (item := q.get()) is not END:
        got.append(item)
    assert got == [7, 8, 9]
    assert q.dropped == 7
    assert q.max_depth == 4  # 3 frames + END


def test_an_exception_stops_all_stages_quickly_and_names_the_stage():
    def boom(x):
        if x == 5:
            raise ValueError("bad frame")
        return x

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    stages, stop, errors, out, _ = chain(endless(), boom, lambda x: (time.sleep(0.01), x)[1])
    started = time.perf_counter()
    with pytest.raises(StageFailed, match=r"stage 's0' failed: ValueError: bad frame"):
        run_stages(stages, stop, errors)
    assert time.perf_counter() - started < 1.0
    assert not any(s.is_alive() for s in stages)
    assert out == list(range(len(out))) and len(out) <= 5


def test_close_runs_even_when_the_stage_is_stopped():
    closed = threading.Event()
    stop, errors = threading.Event(), []
    q = BoundedQueue("in", 2, "block", stop)
    stage = StageRunner(Stage("sink", lambda x: None, close=closed.set), q, None, stop, errors)
    stage.start()
    stop.set()
    stage.join(1.0)
    assert closed.is_set() and not stage.is_alive() and not errors


def test_waiting_get_raises_stopped_when_stop_is_set():
    stop = threading.Event()
    q = BoundedQueue("in", 1, "block", stop, poll=0.01)
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(Stopped):
        q.get()


def test_several_workers_keep_input_order_and_share_the_work():
    import random

    seen_threads = set()

    def slow(x):
        seen_threads.add(threading.current_thread().name)
        time.sleep(random.Random(x).uniform(0, 0.01))
        return x

    stop, errors, out = threading.Event(), [], []
    stages, _ = wire([Stage("source", lambda x: x), Stage("work", slow, workers=3, main_thread=True),
                      Stage("sink", out.append)], range(60), 4, stop, errors)
    run_stages(stages, stop, errors)
    assert out == list(range(60))
    assert len(seen_threads) == 3 and threading.current_thread().name in seen_threads
    assert len(stages[1].timer.snapshot()) == 60


def test_a_failing_worker_stops_a_multi_worker_stage():
    def boom(x):
        if x == 7:
            raise KeyError("seven")
        return x

    stages, stop, errors, out, _ = chain(range(1000), boom, workers=2)
    assert len(stages[1].threads) == 2
    with pytest.raises(StageFailed, match="stage 's0' failed: KeyError"):
        run_stages(stages, stop, errors)
    assert out == list(range(len(out))) and len(out) <= 7


def test_stage_timer_keeps_a_bounded_recent_window():
    """A camera running for days must not grow memory: only the newest ``window`` durations are kept."""
    timer = StageTimer("inference", window=100)
    for i in range(1000):
        timer.add(i / 1000)
    ms = timer.snapshot()
    assert len(ms) == 100 and ms[0] == pytest.approx(900.0) and ms[-1] == pytest.approx(999.0)
    assert timer.recent_ms(10) == pytest.approx(994.5)


def test_workers_holding_quick_items_take_the_next_slow_one_instead_of_waiting_their_turn():
    """Detect-every-k: one slow item in three. Two slow items must be in flight at once, order still kept."""
    lock, running, most = threading.Lock(), [0], [0]

    def work(x):
        if x % 3 == 0:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.03)
            with lock:
                running[0] -= 1
        return x

    stages, stop, errors, out, _ = chain(range(30), work, workers=2)
    run_stages(stages, stop, errors)
    assert out == list(range(30)) and most[0] == 2
