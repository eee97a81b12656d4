"""Audit: a batch of confidential and open briefs, which route served each section, and
whether any confidential value reached the external (openai) model's server.

    .venv/bin/python bench/privacy_audit.py

Both model routes are fake OpenAI-compatible servers on 127.0.0.1 that record every request
body; the route table puts openai first for every section, and openai runs out of quota on
its first call, to tempt failover. Decks are written to the fake Slides server."""

from __future__ import annotations

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
from tests.test_privacy import OPEN, SECRET, VALUES  # noqa: E402


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="deckgen-audit-"))
    google, inside, outside = FakeGoogle().start(), FakeOpenAI().start(), FakeOpenAI().start()
    outside.reply(None, {"status": 429, "code": "insufficient_quota", "message": "quota"})
    decks = [google.add_presentation(realistic_template(), owner_token="ya29.audit")
             for _ in range(6)]
    sections = ["current_state", "future_state", "data", "skills", "stakeholders"]
    config = Config.from_env({
        "DECKGEN_OUTPUT_DIR": str(tmp / "decks"), "DECKGEN_GOOGLE_API_ENDPOINT": google.url,
        "DECKGEN_DRIVE_API_ENDPOINT": google.url, "DECKGEN_GOOGLE_TOKEN": "ya29.audit",
        "DECKGEN_ROUTE_TABLE": ";".join(f"{s}=openai,self-hosted" for s in sections)})

    def route(name: str, server: FakeOpenAI) -> ModelRoute:
        return ModelRoute(name, f"{name}-model", 8192, TiktokenCounter("gpt-4o"),
                          OpenAI(base_url=server.url, api_key="k", max_retries=0), "json_schema")

    routes = {"openai": route("openai", outside), "self-hosted": route("self-hosted", inside)}
    router = Router(lambda n: routes[n], ["openai", "self-hosted"], config.retry, {},
                    config.route_table)
    store = Store(str(tmp / "db.sqlite3"))
    app = create_app(config, store=store, router=router)
    api_key, digest = new_key()
    store.add_key("audit", digest)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    # the batch acts as the service's user token: hand it to the worker like the sidebar does
    items = [{"presentation_id": d, "brief": SECRET if i % 2 == 0 else OPEN}
             for i, d in enumerate(decks)]
    runner = app.extensions["deckgen"]["runner"]
    batch = client.post("/v1/batches", json={"items": items}, headers=headers).get_json()
    for item in batch["items"]:
        runner.user_tokens[item["id"]] = "ya29.audit"
    while True:
        view = client.get(f"/v1/batches/{batch['id']}", headers=headers).get_json()
        if view["counts"]["queued"] + view["counts"]["running"] == 0:
            break
        time.sleep(0.1)
    runner.stop()
    print(f"batch {view['counts']}")
    print("| deck | brief | " + " | ".join(sections) + " |")
    print("| --- | --- |" + " --- |" * len(sections))
    for i, item in enumerate(view["items"]):
        rows = {g["section"]: g for g in store.generations(item["id"])}
        cells = [f"{rows[s]['route']} ({rows[s]['policy']})" if s in rows else "-"
                 for s in sections]
        kind = "confidential" if i % 2 == 0 else "open"
        print(f"| {i + 1} | {kind} | " + " | ".join(cells) + " |")
    bodies = json.dumps(outside.requests)
    found = [v for v in VALUES if v in bodies]
    print(f"\nopenai server: {len(outside.requests)} request bodies recorded; confidential "
          f"values found in them: {len(found)} of {len(VALUES)} checked {found}")
    print(f"self-hosted server: {len(inside.requests)} request bodies")
    for server in (google, inside, outside):
        server.stop()


if __name__ == "__main__":
    main()
