"""The service's own overhead per job, with the model answering instantly.

    .venv/bin/python bench/service_overhead.py [--jobs 50] [--workers 2] [--db sqlite|postgresql]

Submits JOBS `output: "pptx"` jobs through the HTTP API (Flask test client) to a service
whose model is a zero-latency fake OpenAI server on 127.0.0.1, waits for all of them, and
prints, from the store's timestamps: queue pickup (created -> started) and job time
(started -> finished: five section prompts rendered, fitted and counted, five HTTP round
trips, parsing, the .pptx written, generations recorded)."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from deckgen.api import create_app  # noqa: E402
from deckgen.auth import new_key  # noqa: E402
from deckgen.budget import TiktokenCounter  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.llm.client import ModelRoute  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.store import Store  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

BRIEF = {"client": "Harbor Logistics", "industry": "Logistics",
         "opportunity": "Dock appointment scheduling",
         "notes": "Trucks queue for hours at the gates; appointments live in Excel.",
         "contacts": [{"name": "Ana Ruiz", "role": "COO"}]}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="deckgen-bench-"))
    if args.db == "sqlite":
        url = str(tmp / "db.sqlite3")
    else:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        url = f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    server = FakeOpenAI().start()
    route = ModelRoute("self-hosted", "zero-latency", 8192, TiktokenCounter("gpt-4o"),
                       OpenAI(base_url=server.url, api_key="x", max_retries=0),
                       "json_schema")
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp / "decks"),
                              "DECKGEN_WORKERS": str(args.workers)})
    store = Store(url)
    app = create_app(config, store=store, router=Router(lambda n: route, ["self-hosted"]))
    key, digest = new_key()
    store.add_key("bench", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()

    start = time.perf_counter()
    ids = [client.post("/v1/jobs", json={"brief": BRIEF, "output": "pptx"},
                       headers=headers).get_json()["id"] for _ in range(args.jobs)]
    submitted = time.perf_counter() - start
    while any(store.get_job(i).state in ("queued", "running") for i in ids):
        time.sleep(0.05)
    wall = time.perf_counter() - start
    jobs = [store.get_job(i) for i in ids]
    app.extensions["deckgen"]["runner"].stop()
    server.stop()
    run = [j.finished_at - j.started_at for j in jobs if j.finished_at and j.started_at]
    states = {s: sum(j.state == s for j in jobs) for s in {j.state for j in jobs}}
    print(f"{args.jobs} jobs, {args.workers} workers, {args.db}, zero-latency model: {states}")
    print("| measure | p50 | p95 | max |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| job time, started -> finished (ms) | {statistics.median(run) * 1000:.0f} | "
          f"{pct(run, 0.95) * 1000:.0f} | {max(run) * 1000:.0f} |")
    print(f"\nPOST /v1/jobs: {submitted / args.jobs * 1000:.1f} ms each; "
          f"all {args.jobs} done in {wall:.2f} s ({args.jobs / wall * 60:.0f} jobs/min)")


if __name__ == "__main__":
    main()
