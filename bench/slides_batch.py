"""A batch of decks on one service account against Slides' write quota.

    .venv/bin/python bench/slides_batch.py [--decks 200] [--workers 4] [--quota 60]

The fake Slides server (tests/fake_google.py) enforces QUOTA writes per minute per user,
answering 429 past it, as Google does. The service (zero-latency model, DECKGEN_WORKERS
workers) regenerates DECKS decks through POST /v1/batches; every 15 s the batch's ETA is
printed beside the time that was really left, and at the end the number of 429s."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
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
from tests.fake_google import FakeGoogle  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.slides_fixtures import realistic_template  # noqa: E402

BRIEF = {"client": "Harbor Logistics", "notes": "Trucks queue at the gates."}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quota", type=int, default=60)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="deckgen-slides-"))

    google = FakeGoogle().start()
    google.writes_per_minute = args.quota
    sa = tmp / "sa.json"
    sa.write_text(json.dumps(google.service_account_info()))
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(args.decks)]
    model = FakeOpenAI().start()
    route = ModelRoute("self-hosted", "zero-latency", 8192, TiktokenCounter("gpt-4o"),
                       OpenAI(base_url=model.url, api_key="x", max_retries=0), "json_schema")
    config = Config.from_env({
        "DECKGEN_OUTPUT_DIR": str(tmp / "decks"), "DECKGEN_WORKERS": str(args.workers),
        "GOOGLE_APPLICATION_CREDENTIALS": str(sa), "DECKGEN_GOOGLE_API_ENDPOINT": google.url,
        "DECKGEN_DRIVE_API_ENDPOINT": google.url,
        "DECKGEN_SLIDES_WRITES_PER_MINUTE": str(args.quota)})
    store = Store(str(tmp / "db.sqlite3"))
    app = create_app(config, store=store, router=Router(lambda n: route, ["self-hosted"]))
    api_key, digest = new_key()
    store.add_key("bench", digest)
    headers = {"Authorization": f"Bearer {api_key}"}
    client = app.test_client()

    start = time.monotonic()
    batch = client.post("/v1/batches", headers=headers, json={
        "items": [{"presentation_id": d, "brief": BRIEF} for d in decks]}).get_json()["id"]
    etas = []
    last = 0.0
    while True:
        view = client.get(f"/v1/batches/{batch}", headers=headers).get_json()
        left = view["counts"]["queued"] + view["counts"]["running"]
        if left == 0:
            break
        now = time.monotonic() - start
        if now - last >= 15:
            etas.append((now, view["counts"]["done"], view["eta_seconds"]))
            last = now
        time.sleep(0.5)
    total = time.monotonic() - start
    app.extensions["deckgen"]["runner"].stop()
    too_many = sum(1 for c in google.calls if c["status"] == 429)
    writes = sum(1 for c in google.calls if c["path"].endswith(":batchUpdate"))
    print(f"{args.decks} decks, {args.workers} workers, Slides quota {args.quota} writes/min "
          f"per user, one service account: {view['counts']}")
    print(f"finished in {total:.0f} s; batchUpdate calls {writes}; HTTP 429 from Slides: "
          f"{too_many}")
    print("| elapsed (s) | done | ETA shown (s) | time really left (s) |")
    print("| ---: | ---: | ---: | ---: |")
    for at, done, eta in etas:
        print(f"| {at:.0f} | {done} | {eta if eta is not None else '-'} | {total - at:.0f} |")
    google.stop()
    model.stop()


if __name__ == "__main__":
    main()
