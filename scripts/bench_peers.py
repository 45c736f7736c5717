"""The peer job queues that `bench_queue_engine.py` runs the same no-op workload through: what
each installs, its no-op task (which INCRs a counter on the shared server), its producer and its
worker command, and the producer harness they share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    """A peer job queue: what to install, its tasks module (the no-op task INCRs the counter
    BENCH_KEY), the producer's start/enqueue/close, and its worker command."""

    name: str
    db: int  # its own database on the shared server; Cairn is on 0
    packages: tuple[str, ...]
    imports: str
    tasks: str
    producer: str
    worker: tuple[str, ...]  # argv, the first item a script in the venv's bin/
    settings: str  # the concurrency chosen, for the table


COMMON = """\
import os
URL, KEY = os.environ["BENCH_URL"], os.environ["BENCH_KEY"]
"""

PEERS = [
    Peer(
        name="taskiq",
        db=1,
        packages=("taskiq", "taskiq-redis"),
        imports="taskiq_redis",
        tasks="""\
        import redis.asyncio as aioredis
        from taskiq_redis import RedisStreamBroker
        broker = RedisStreamBroker(url=URL)
        counter = aioredis.Redis.from_url(URL)

        @broker.task
        async def noop() -> None:
            await counter.incr(KEY)
        """,
        producer="""\
        from tasks import broker, noop
        async def start(): await broker.startup()
        async def enqueue(): await noop.kiq()
        async def close(): await broker.shutdown()
        """,
        worker=("taskiq", "worker", "tasks:broker", "--workers", "1"),
        settings="1 worker process, its default of up to 100 async tasks in flight",
    ),
    Peer(
        name="huey",
        db=2,
        packages=("huey", "redis"),
        imports="huey, redis",
        tasks="""\
        import redis
        from huey import RedisHuey
        huey = RedisHuey("bench", url=URL)  # blocking reads (BRPOP), huey's default
        counter = redis.Redis.from_url(URL)

        @huey.task()
        def noop() -> None:
            counter.incr(KEY)
        """,
        producer="""\
        from tasks import noop
        async def start(): pass
        async def enqueue(): noop()
        async def close(): pass
        """,
        worker=("huey_consumer", "tasks.huey", "-w", "8", "-k", "thread"),
        settings="1 consumer, 8 worker threads (-w 8 -k thread)",
    ),
    Peer(
        name="dramatiq",
        db=3,
        packages=("dramatiq[redis]",),
        imports="dramatiq.brokers.redis",
        tasks="""\
        import dramatiq
        import redis
        from dramatiq.brokers.redis import RedisBroker
        dramatiq.set_broker(RedisBroker(url=URL))
        counter = redis.Redis.from_url(URL)

        @dramatiq.actor
        def noop() -> None:
            counter.incr(KEY)
        """,
        producer="""\
        from tasks import noop
        async def start(): pass
        async def enqueue(): noop.send()
        async def close(): pass
        """,
        worker=("dramatiq", "tasks", "--processes", "1", "--threads", "8"),
        settings="1 process, 8 threads (--processes 1 --threads 8)",
    ),
    Peer(
        name="celery",
        db=4,
        packages=("celery[redis]",),
        imports="celery, redis",
        tasks="""\
        import redis
        from celery import Celery
        app = Celery("tasks", broker=URL)
        app.conf.task_ignore_result = True  # completion is counted by the task itself
        counter = redis.Redis.from_url(URL)

        @app.task
        def noop() -> None:
            counter.incr(KEY)
        """,
        producer="""\
        from tasks import noop
        async def start(): pass
        async def enqueue(): noop.delay()
        async def close(): pass
        """,
        # prefork, the default pool; -c 8 (the default is one per core) as the others' 8.
        # -P threads -c 8 measured the same in --quick runs.
        worker=("celery", "-A", "tasks", "worker", "-P", "prefork", "-c", "8", "-l", "WARNING"),
        settings="1 worker, prefork pool of 8 (-P prefork -c 8), default prefetch",
    ),
    Peer(
        name="arq",
        db=5,
        packages=("arq",),
        imports="arq",
        tasks="""\
        from arq.connections import RedisSettings
        SETTINGS = RedisSettings.from_dsn(URL)

        async def noop(ctx) -> None:
            await ctx["redis"].incr(KEY)

        class WorkerSettings:
            functions = [noop]
            redis_settings = SETTINGS
            max_jobs = 10  # arq's default
            poll_delay = 0.01  # arq polls (0.5 s by default); 10 ms, as Cairn's --tick 0.01
        """,
        producer="""\
        from arq import create_pool
        from tasks import SETTINGS
        pool = None
        async def start():
            global pool
            pool = await create_pool(SETTINGS)
        async def enqueue(): await pool.enqueue_job("noop")
        async def close(): await pool.aclose()
        """,
        worker=("arq", "tasks.WorkerSettings"),
        settings="1 worker, max_jobs 10 (default), poll_delay 10 ms (default 500 ms)",
    ),
    Peer(
        name="rq",
        db=6,
        packages=("rq",),
        imports="rq",
        tasks="""\
        import redis
        counter = redis.Redis.from_url(URL)

        def noop() -> None:
            counter.incr(KEY)
        """,
        producer="""\
        import redis
        from rq import Queue
        from tasks import noop
        queue = Queue(connection=redis.Redis.from_url(URL))
        async def start(): pass
        async def enqueue(): queue.enqueue(noop)
        async def close(): pass
        """,
        worker=("rq", "worker", "--url", "{url}", "--quiet"),
        settings="1 worker, the default Worker: one job at a time, each in a fork",
    ),
]

# The producer: warm up (resend one job until the worker has run one, so worker start-up is
# not timed), reset the counter, stamp the start, enqueue n jobs from LANES asyncio lanes (the
# synchronous clients block, so for them it is one enqueue at a time).
HARNESS = """\
import asyncio
import sys
import time
import redis

async def main(n: int) -> None:
    counter = redis.Redis.from_url(URL)
    counter.delete(KEY)
    await start()
    deadline = time.time() + 90
    while counter.get(KEY) is None:
        if time.time() > deadline:
            sys.exit("the warm-up job was not run in 90 s")
        await enqueue()
        for _ in range(100):
            if counter.get(KEY) is not None:
                break
            time.sleep(0.01)
    time.sleep(0.5)  # a second warm-up job, if one was sent, lands before the reset
    counter.set(KEY, 0)
    left = iter(range(n))

    async def lane() -> None:
        for _ in left:
            await enqueue()

    counter.set(KEY + ":started", repr(time.time()))
    await asyncio.gather(*(lane() for _ in range({lanes})))
    counter.set(KEY + ":enqueued", repr(time.time()))
    await close()

asyncio.run(main(int(sys.argv[1])))
"""
