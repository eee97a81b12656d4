"""The scheduler against the fake Slides server (tests/fake_google.py, 60 writes a minute per
user, 429 past it) and the fake model (tests/fake_openai.py, zero latency):

1. one interactive job alone (idle), then the same job behind a 120-deck batch on the same
   service account: seconds from submit to done;
2. two runners (two replicas) on one store, one principal: the most Slides writes in any
   60-second window, 429s provoked, decks written exactly once;
3. two principals on one runner (a service account's batch, a person's batch a second
   later): when each is done, and the most writes in any 60-s window for each.

    .venv/bin/python bench/scheduler.py [--decks 120] [--workers 2] [--store sqlite|postgresql]
        [--replica-decks 80] [--redis [--celery]] [--principal-decks 90]
        [--only interactive|replicas|principals]

The runners are deckgen.jobs.JobRunner exactly as the service builds them (store-held
quota, or Redis with --redis); the HTTP layer is left out."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from deckgen.budget import TiktokenCounter  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.container import make_generator  # noqa: E402
from deckgen.fill import Filler, SlidesAccess  # noqa: E402
from deckgen.jobs import JobRunner, initial_progress  # noqa: E402
from deckgen.llm.client import ModelRoute  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.quotas import open_quota  # noqa: E402
from deckgen.scheduler import place_in_line  # noqa: E402
from deckgen.store import Store  # noqa: E402
from tests.fake_google import FakeGoogle  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.slides_fixtures import realistic_template  # noqa: E402

BRIEF = {"client": "Harbor Logistics", "industry": "Logistics", "notes": "Trucks queue."}
PG = "postgresql://postgres@127.0.0.1:5432/test"
QUOTA_REDIS = "redis://127.0.0.1:6379/15"
BROKER = "redis://127.0.0.1:6379/14"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="deckgen-sched-"))
        self.google = FakeGoogle().start()
        self.google.writes_per_minute = 60
        self.accepted: list[tuple[float, str]] = []  # (monotonic, principal) of each write
        count = self.google._count_write

        def counted(principal: str) -> None:
            count(principal)  # raises 429 past the quota
            self.accepted.append((time.monotonic(), principal))

        self.google._count_write = counted  # type: ignore[method-assign]
        sa = self.tmp / "sa.json"
        sa.write_text(json.dumps(self.google.service_account_info()))
        self.sa = str(sa)
        self.model = FakeOpenAI().start()
        self.config = Config.from_env({})
        route = ModelRoute("self-hosted", "zero-latency", 8192, TiktokenCounter("gpt-4o"),
                           OpenAI(base_url=self.model.url, api_key="x", max_retries=0),
                           "json_schema")
        self.generator = make_generator(self.config, Router(lambda n: route, ["self-hosted"]))
        self.schemas: list[str] = []

    def store(self, name: str) -> Store:
        """The store `name` (a part of the bench); the same name opens it again."""
        if self.args.store == "sqlite":
            return Store(str(self.tmp / f"{name}.sqlite3"))
        import psycopg

        schema = f"bench_{name}_{id(self)}"
        if schema not in self.schemas:
            self.schemas.append(schema)
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
        return Store(f"{PG}?options=-csearch_path%3D{schema}")

    def runner(self, store: Store) -> JobRunner:
        redis = QUOTA_REDIS if self.args.redis else None
        quota = open_quota(redis, store)
        slides = SlidesAccess(self.sa, self.google.url, self.google.url, quota=quota)
        return JobRunner(store, Filler(self.generator, slides), self.tmp / "decks",
                         workers=self.args.workers, poll_seconds=0.1)

    def request(self, deck: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        return ({"brief": BRIEF, "sections": None, "route": "auto", "target": "presentation",
                 "presentation_id": deck}, initial_progress(list(self.generator.specs.values())),
                deck)

    def decks(self, n: int) -> list[str]:
        return [self.google.add_presentation(realistic_template(),
                                             owner_token="service-account") for _ in range(n)]

    def one(self, store: Store, deck: str) -> tuple[float, dict[str, Any]]:
        request, progress, _ = self.request(deck)
        start = time.monotonic()
        job, _ = store.create_job("crm", request, progress, presentation_id=deck)
        place = place_in_line(store, job.id).to_dict()
        while store.get_job(job.id).state not in ("done", "failed"):
            time.sleep(0.02)
        assert store.get_job(job.id).state == "done", store.get_job(job.id).error
        return time.monotonic() - start, place

    def close(self) -> None:
        self.google.stop()
        self.model.stop()
        if self.schemas:
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                for schema in self.schemas:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")


def most_in_window(stamps: list[float], window: float = 60.0) -> int:
    stamps = sorted(stamps)
    return max((sum(1 for t in stamps[i:] if t < s + window) for i, s in enumerate(stamps)),
               default=0)


def interactive_behind_batch(bench: Bench) -> None:
    store = bench.store("interactive")
    runner = bench.runner(store)
    runner.start()
    idle = [bench.one(store, d)[0] for d in bench.decks(3)]
    idle_s = sorted(idle)[1]
    batch_decks = bench.decks(bench.args.decks)
    probes = bench.decks(3)
    start = time.monotonic()
    batch_id, _, _ = store.create_batch_with_jobs("ops", [bench.request(d)
                                                          for d in batch_decks])
    rows = []
    for probe, after in zip(probes, (5.0, 30.0, 75.0), strict=True):
        while time.monotonic() - start < after:
            time.sleep(0.1)
        _, jobs = store.get_batch(batch_id)
        states = {s: sum(1 for j in jobs if j.state == s) for s in ("queued", "done")}
        waiting = sum(1 for j in jobs if j.stage == "generated")
        took, place = bench.one(store, probe)
        rows.append((after, states["done"], waiting, states["queued"], place, took))
    runner.stop()
    too_many = sum(1 for c in bench.google.calls if c["status"] == 429)
    print(f"## Interactive job behind a {bench.args.decks}-deck batch "
          f"({bench.args.workers} workers, {bench.args.store}, one service account, "
          "Slides 60 writes/min)\n")
    print(f"idle: median of 3 = {idle_s:.2f} s; bound 2 x idle + 2 s = {2 * idle_s + 2:.2f} s\n")
    print("| submitted at (s into the batch) | batch decks done | generated, waiting for a "
          "write slot | batch queued | place shown (ahead, ETA s) | time to done (s) |")
    print("| ---: | ---: | ---: | ---: | --- | ---: |")
    for after, done, waiting, queued, place, took in rows:
        print(f"| {after:.0f} | {done} | {waiting} | {queued} | {place['ahead']}, "
              f"{place['eta_seconds']} | {took:.2f} |")
    print(f"\nHTTP 429 from Slides: {too_many}\n")
    store.close()


def celery_worker(bench: Bench, store: Store) -> subprocess.Popen[bytes]:
    """A Celery worker process (deckgen.tasks, as the README runs it) on the same store,
    Slides server, model and Redis-held quota as the runners."""
    env = {**os.environ, "DECKGEN_QUEUE_URL": BROKER, "DECKGEN_REDIS_URL": QUOTA_REDIS,
           "DECKGEN_DATABASE_URL": store.url, "GOOGLE_APPLICATION_CREDENTIALS": bench.sa,
           "DECKGEN_GOOGLE_API_ENDPOINT": bench.google.url,
           "DECKGEN_DRIVE_API_ENDPOINT": bench.google.url,
           "DECKGEN_SELF_HOSTED_URL": bench.model.url, "DECKGEN_SELF_HOSTED_MODEL": "zero-latency",
           "DECKGEN_OUTPUT_DIR": str(bench.tmp / "decks")}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deckgen.tasks", "worker", "--pool", "threads",
         "--concurrency", str(bench.args.workers), "-Q", "deckgen", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(bench.tmp / "celery.log", "ab"))


def two_replicas(bench: Bench) -> None:
    stores = [bench.store("replicas"), bench.store("replicas")]
    runners = [bench.runner(s) for s in stores]
    decks = bench.decks(bench.args.replica_decks)
    bench.accepted.clear()
    calls_before = len(bench.google.calls)
    worker = celery_worker(bench, stores[0]) if bench.args.celery else None
    start = time.monotonic()
    batch_id, jobs, _ = stores[0].create_batch_with_jobs("ops", [bench.request(d)
                                                                 for d in decks])
    if worker is not None:  # every job is also sent to the broker, as the service does
        from deckgen.tasks import dispatcher

        send = dispatcher(BROKER)
        for job in jobs:
            send(job.id)
    for r in runners:
        r.start()
    while True:
        _, jobs = stores[0].get_batch(batch_id)
        if all(j.state in ("done", "failed", "cancelled") for j in jobs):
            break
        time.sleep(0.5)
    took = time.monotonic() - start
    for r in runners:
        r.stop()
    if worker is not None:
        worker.terminate()
        worker.wait(30)
    calls = bench.google.calls[calls_before:]
    too_many = sum(1 for c in calls if c["status"] == 429)
    writes = [c["path"] for c in calls if c["path"].endswith(":batchUpdate")
              and c["status"] == 200]
    by_worker = {f"runner {i}": sum(1 for j in jobs if j.worker == r.worker_id)
                 for i, r in enumerate(runners, 1)}
    if worker is not None:
        ours = {r.worker_id for r in runners}
        by_worker["celery"] = sum(1 for j in jobs if j.worker not in ours)
    print(f"## Two runners{' and a Celery worker' if worker else ''} on one "
          f"{bench.args.store} store{' (quota in Redis)' if bench.args.redis else ''}, "
          f"one service account, {len(decks)} decks\n")
    print("| decks done | wall (s) | most writes in any 60-s window | HTTP 429 | "
          "decks written more than once | jobs finished per runner |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    done = sum(1 for j in jobs if j.state == "done")
    twice = len(writes) - len(set(writes))
    print(f"| {done} | {took:.1f} | {most_in_window([t for t, _ in bench.accepted])} | "
          f"{too_many} | {twice} | "
          f"{', '.join(f'{k}: {n}' for k, n in by_worker.items())} |\n")
    for s in stores:
        s.close()


def two_principals(bench: Bench) -> None:
    """A service account's batch, then a person's batch a second later, on one runner: each
    principal has its own 60 writes a minute, and the claims take owners in turn, so the
    person's decks need not wait for the service account's."""
    store = bench.store("principals")
    runner = bench.runner(store)
    person, token = "google:rep-b", "ya29.rep-b"
    big = bench.decks(bench.args.principal_decks)
    small = [bench.google.add_presentation(realistic_template(), owner_token=token)
             for _ in range(bench.args.principal_decks // 3)]
    bench.accepted.clear()
    start = time.monotonic()
    a_id, _, _ = store.create_batch_with_jobs("ops", [bench.request(d) for d in big])
    runner.start()
    time.sleep(1.0)
    b_id, b_jobs, _ = store.create_batch_with_jobs(person, [bench.request(d) for d in small])
    for job in b_jobs:
        runner.user_tokens[job.id] = token
    finished: dict[str, float] = {}
    while len(finished) < 2:
        for name, batch in (("service account", a_id), ("person", b_id)):
            _, jobs = store.get_batch(batch)
            if name not in finished and all(j.state in ("done", "failed") for j in jobs):
                finished[name] = time.monotonic() - start
                assert all(j.state == "done" for j in jobs), [j.error for j in jobs]
        time.sleep(0.2)
    runner.stop()
    too_many = sum(1 for c in bench.google.calls if c["status"] == 429)
    print(f"## Two principals on one runner ({bench.args.workers} workers, "
          f"{bench.args.store}): a service account's {len(big)}-deck batch, a person's "
          f"{len(small)} decks submitted 1 s later\n")
    print("| principal | decks | all done at (s) | most writes in any 60-s window |")
    print("| --- | ---: | ---: | ---: |")
    for name, decks, key in (("service account", big, "service-account"),
                             ("person", small, token)):
        stamps = [t for t, p in bench.accepted if p == key]
        print(f"| {name} | {len(decks)} | {finished[name]:.1f} | {most_in_window(stamps)} |")
    print(f"\nHTTP 429 from Slides: {too_many}\n")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decks", type=int, default=120)
    parser.add_argument("--replica-decks", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--celery", action="store_true",
                        help="a Celery worker process beside the two runners (needs --redis)")
    parser.add_argument("--principal-decks", type=int, default=90)
    parser.add_argument("--only", choices=("interactive", "replicas", "principals"))
    args = parser.parse_args()
    if args.celery and not args.redis:
        parser.error("--celery needs --redis: every process counts Slides writes there")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    bench = Bench(args)
    try:
        if args.only in (None, "interactive"):
            interactive_behind_batch(bench)
        if args.only in (None, "replicas"):
            two_replicas(bench)
        if args.only in (None, "principals"):
            two_principals(bench)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
