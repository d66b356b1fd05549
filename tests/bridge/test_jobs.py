"""The job queue: bounded while jobs wait, forgetting the oldest finished ones."""

import threading
import time

import pytest

from bridge.osc import jobs
from bridge.osc.jobs import JobQueue, QueueFull


def test_waiting_jobs_are_bounded_and_old_finished_ones_forgotten(monkeypatch):
    monkeypatch.setattr(jobs, "MAX_WAITING", 3)
    monkeypatch.setattr(jobs, "KEPT_FINISHED", 2)
    release = threading.Event()
    q = JobQueue()
    try:
        held = [q.start(q.create(lambda progress, cancel: release.wait(10) and [])) for _ in range(3)]
        with pytest.raises(QueueFull, match="3 renders are queued or running"):
            q.create(lambda progress, cancel: [])
        release.set()
        for _ in range(1000):  # at most 10 s
            if all(job.finished for job in held):
                break
            time.sleep(0.01)
        assert all(j.state == "done" for j in held)
        later = q.start(q.create(lambda progress, cancel: []))  # room again; the oldest is forgotten
        assert held[0].id not in q.jobs and held[2].id in q.jobs and later.id in q.jobs
        with pytest.raises(KeyError, match="any more"):
            q.get(held[0].id)
        with pytest.raises(KeyError, match=r"^'no job 99'$"):
            q.get(99)
    finally:
        q.stop()
