"""The peer job queues that `bench_queue_engine.py` runs the same no-op workload through: what
each installs, its no-op task (which INCRs a counter on the shared server), its producer and its
worker command, and the producer harness they share. Two of them keep a durable history per job,
as Cairn does, in PostgreSQL (started by the benchmark, each peer with its own database,
BENCH_PG): DBOS (a workflow of three steps on a queue) and Procrastinate."""

from __future__ import annotations

from dataclasses import dataclass

LANES = 32  # concurrent submitters, for Cairn and for every peer's producer


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
    postgres: bool = False  # needs its own PostgreSQL database (BENCH_PG)
    setup: tuple[str, ...] = ()  # argv run once before the worker starts (a schema)


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

PEERS += [
    Peer(
        name="dbos",
        db=7,
        packages=("dbos", "redis"),
        imports="dbos, redis",
        postgres=True,
        tasks="""\
        import os
        import time
        import redis
        from dbos import DBOS
        PG = os.environ["BENCH_PG"]
        counter = redis.Redis.from_url(URL)

        @DBOS.step()
        def first() -> None:
            pass

        @DBOS.step()
        def second() -> None:
            pass

        @DBOS.step()
        def third() -> None:
            counter.incr(KEY)

        @DBOS.workflow()
        def noop() -> None:
            first()
            second()
            third()

        def serve() -> None:
            DBOS(config={"name": "bench", "system_database_url": PG,
                         "console_log_level": "WARNING"})
            DBOS.launch()
            # Polled every 1 s by default; 10 ms, as Cairn's --tick 0.01 and arq's poll.
            DBOS.register_queue("bench", worker_concurrency=16, polling_interval_sec=0.01)
            while True:
                time.sleep(60)
        """,
        producer="""\
        import asyncio
        import os
        from dbos import DBOSClient
        client = None
        async def start():
            global client
            for _ in range(300):  # until the worker has made its schema and its queue
                try:
                    client = client or DBOSClient(system_database_url=os.environ["BENCH_PG"])
                    if any(q.name == "bench" for q in await client.list_queues_async()):
                        return
                except Exception:
                    pass
                await asyncio.sleep(0.2)
            raise SystemExit("DBOS's worker never registered its queue")
        async def enqueue():
            await client.enqueue_async({"queue_name": "bench", "workflow_name": "noop"})
        async def close(): client.destroy()
        """,
        worker=("python", "-c", "import tasks; tasks.serve()"),
        settings="1 process, a queue of 16 per worker polled every 10 ms (default 1 s), "
        "a workflow of 3 steps",
    ),
    Peer(
        name="procrastinate",
        db=8,
        packages=("procrastinate", "psycopg[binary]", "redis"),
        imports="procrastinate, psycopg, redis",
        postgres=True,
        tasks="""\
        import os
        import procrastinate
        import redis.asyncio as aioredis
        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PG"]))
        counter = aioredis.Redis.from_url(URL)

        @app.task(queue="bench")
        async def noop() -> None:
            await counter.incr(KEY)
        """,
        producer="""\
        from tasks import app, noop
        async def start(): await app.open_async()
        async def enqueue(): await noop.defer_async()
        async def close(): await app.close_async()
        """,
        setup=("procrastinate", "--app=tasks.app", "schema", "--apply"),
        worker=("procrastinate", "--app=tasks.app", "--log-level=warning", "worker", "-c", "16"),
        settings="1 worker, 16 async jobs at once (-c 16), LISTEN/NOTIFY (its default)",
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
