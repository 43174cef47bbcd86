"""Celery side of the zq benchmark (bench/run.sh --compare celery).

The same work as zq's plugins/tasks.so: add(x, y) -> x + y. Redis is the broker and the
result backend (ZQBENCH_REDIS_URL, set by run.sh to a private redis-server on a free port);
everything else is Celery's default configuration, as in ../shared/reference/celery-figures.md.
"""
import os
import time

from celery import Celery

REDIS_URL = os.environ.get("ZQBENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE_KEY = "zqbench:done"

app = Celery("zqbench_tasks", broker=REDIS_URL, backend=REDIS_URL)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


_redis = None


def _r():
    global _redis
    if _redis is None:  # one connection per pool process, made after the fork
        import redis
        _redis = redis.Redis.from_url(REDIS_URL)
    return _redis


@app.task(name="tasks.add_counted", ignore_result=True)
def add_counted(x, y):
    """add() with ignore_result: nothing reaches the backend, so completion is counted with
    one INCR (zq records the state of an ignore_result task; this is the Celery analogue)."""
    _r().incr(DONE_KEY)
    return x + y


@app.task(name="tasks.stamp", bind=True)
def stamp(self, x, y):
    """When it started and the eta it was given: Celery's backend keeps no start time."""
    return {"started": time.time(), "eta": self.request.eta}
