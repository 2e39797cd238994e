"""The served workers' thread pool (cds_service.worker): tasks in arrival order, on the warmest thread."""

from __future__ import annotations

import threading
from concurrent import futures

import pytest

from cds_service.worker import MostRecentlyIdleThreadPool

WAIT = 10  # seconds: a wait this long means a lost task or wake-up, so the test fails instead of hanging


@pytest.fixture
def pool():
    pools: list[MostRecentlyIdleThreadPool] = []

    def make(threads: int) -> MostRecentlyIdleThreadPool:
        pools.append(MostRecentlyIdleThreadPool(threads))
        return pools[-1]

    yield make
    for p in pools:
        p.shutdown(wait=True, cancel_futures=True)


def occupy_every_thread(p: MostRecentlyIdleThreadPool, threads: int) -> set[int]:
    """Run `threads` tasks at once (so the pool starts all its threads); their thread ids."""
    barrier = threading.Barrier(threads)

    def meet() -> int:
        barrier.wait(WAIT)
        return threading.get_ident()

    return {f.result(WAIT) for f in [p.submit(meet) for _ in range(threads)]}


def test_results_and_exceptions_reach_the_future(pool):
    p = pool(2)
    assert p.submit(pow, 2, 10).result(WAIT) == 1024
    assert p.submit(dict, a=1).result(WAIT) == {"a": 1}
    failed = p.submit(int, "not a number")
    with pytest.raises(ValueError):
        failed.result(WAIT)
    assert list(p.map(abs, [-1, -2, -3], timeout=WAIT)) == [1, 2, 3]


def test_a_quiet_pool_runs_every_task_on_the_same_thread(pool):
    p = pool(4)
    assert len(occupy_every_thread(p, 4)) == 4
    # One task at a time, each submitted once the last has completed (as gunicorn does with the
    # next request on a kept-alive connection): all on one thread, not taken by each idle one in turn.
    ran_on = {p.submit(threading.get_ident).result(WAIT) for _ in range(20)}
    assert len(ran_on) == 1


def test_tasks_wait_for_a_thread_in_arrival_order(pool):
    p = pool(2)
    release = threading.Event()
    blockers = [p.submit(release.wait, WAIT) for _ in range(2)]
    order: list[int] = []
    queued = [p.submit(order.append, i) for i in range(6)]
    assert order == []  # both threads are busy, so nothing queued has run
    release.set()
    assert [f.result(WAIT) for f in blockers] == [True, True]
    futures.wait(queued, WAIT)
    assert order == list(range(6))


def test_never_more_threads_than_asked_for(pool):
    p = pool(3)
    assert len(occupy_every_thread(p, 3)) == 3
    ran_on = {f.result(WAIT) for f in [p.submit(threading.get_ident) for _ in range(50)]}
    assert len(ran_on) <= 3


def test_no_task_is_lost_when_many_threads_submit_at_once(pool):
    p = pool(4)

    def submitter(base: int) -> list[futures.Future]:
        return [p.submit(lambda n: n * n, base + i) for i in range(300)]

    with futures.ThreadPoolExecutor(8) as submitters:
        batches = list(submitters.map(submitter, range(0, 8 * 300, 300)))
    results = sorted(f.result(WAIT) for batch in batches for f in batch)
    assert results == sorted(n * n for n in range(8 * 300))


def test_shutdown_runs_what_was_queued_then_stops_its_threads(pool):
    p = pool(1)
    release = threading.Event()
    first = p.submit(release.wait, WAIT)
    queued = p.submit(lambda: "ran")
    threads = [t for t in threading.enumerate() if t.name.startswith("cds-request")]
    release.set()
    p.shutdown(wait=True)
    assert first.result(0) is True and queued.result(0) == "ran"
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(RuntimeError):
        p.submit(print)


def test_shutdown_can_cancel_what_was_queued(pool):
    p = pool(1)
    started, release = threading.Event(), threading.Event()
    running = p.submit(lambda: started.set() or release.wait(WAIT))
    queued = p.submit(lambda: "ran")
    assert started.wait(WAIT)
    p.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert running.result(WAIT) is True
    assert queued.cancelled()


def test_idle_threads_exit_on_shutdown(pool):
    p = pool(3)
    occupy_every_thread(p, 3)
    p.shutdown(wait=True)  # returns only once all three idle threads have exited
    assert not [t for t in threading.enumerate() if t.name.startswith("cds-request")]
