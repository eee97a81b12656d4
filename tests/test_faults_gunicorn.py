"""The database outage under gunicorn as the Dockerfile runs it (its CMD, read from the
Dockerfile: one worker process, eight threads): the service as a real process on a free
port, PostgreSQL behind a TCP proxy cut for ten seconds while a batch runs, the model
behind the fake OpenAI server and Slides behind the fake Google server. Every request
meanwhile answers 2xx or 503, never 500, and every job ends done within 30 s of recovery."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deckgen.auth import new_key
from deckgen.llm.local import free_port
from deckgen.store import Store
from tests.samples import REQUEST_BRIEF
from tests.slides_fixtures import realistic_template
from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parent.parent
DECKS = 10
OUTAGE = 10.0  # seconds the database is away
RECOVERY = 30.0  # seconds after it is back by which every job has ended


def dockerfile_command(port: int) -> list[str]:
    """The Dockerfile's CMD, bound to 127.0.0.1:`port` and run by this Python."""
    text = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^CMD\s+(\[.*?\])\s*$", text.replace("\\\n", " "), re.M | re.S)
    assert found, "the Dockerfile has no exec-form CMD"
    command = json.loads(found.group(1))
    assert command[0] == "gunicorn"
    bind = command.index("--bind") + 1
    command[bind] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", *command]


@pytest.mark.slow
def test_a_database_outage_under_gunicorn_answers_503_and_ends_every_job_once(
        tmp_path, pg_schema, fake_openai, google, service_account_file):
    fake_openai.reply(None, *[{"delay": 0.3}] * (DECKS * 10))
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(DECKS)]
    proxy = TcpProxy("127.0.0.1", 5432).start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path" \
          f"%3D{pg_schema}"
    setup = Store(url)
    key, digest = new_key()
    setup.add_key("crm", digest)
    setup.close()
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DECKGEN_DATABASE_URL": url, "DECKGEN_DATABASE_POOL_TIMEOUT": "1",
           "DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
           "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url,
           "DECKGEN_WORKERS": "2", "DECKGEN_JOB_STALE_SECONDS": "10",
           "DECKGEN_SLIDES_WRITES_PER_MINUTE": "600", "DECKGEN_REDIS_URL": "",
           "DECKGEN_QUEUE_URL": "", "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks")}
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(dockerfile_command(port), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"))  # noqa: SIM115 - the child owns it
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet, or still importing
                time.sleep(0.2)
        else:
            raise AssertionError(log.read_text()[-3000:])
        answer = requests.post(f"{base}/v1/batches", headers=headers, timeout=10, json={
            "items": [{"presentation_id": d, "brief": REQUEST_BRIEF} for d in decks]})
        assert answer.status_code == 202, answer.text
        batch = answer.json()["id"]
        ids = [item["id"] for item in answer.json()["items"]]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # cut once some decks are done, others running
            counts = requests.get(f"{base}/v1/batches/{batch}", headers=headers,
                                  timeout=10).json()["counts"]
            if counts["done"] >= 1 and counts["done"] < DECKS:
                break
            time.sleep(0.05)
        assert 1 <= counts["done"] < DECKS, counts

        proxy.cut()
        cut_at, statuses = time.monotonic(), []
        while time.monotonic() - cut_at < OUTAGE:
            for path in (f"/v1/batches/{batch}", f"/v1/jobs/{ids[-1]}", "/readyz", "/healthz"):
                got = requests.get(f"{base}{path}", headers=headers, timeout=10)
                statuses.append(got.status_code)
                if got.status_code == 503 and path.startswith("/v1/"):
                    assert int(got.headers["Retry-After"]) >= 1, (path, got.text)
            created = requests.post(f"{base}/v1/jobs", headers=headers, timeout=10, json={
                "brief": REQUEST_BRIEF, "output": "pptx"})
            statuses.append(created.status_code)
            if created.status_code == 202:
                ids.append(created.json()["id"])
            time.sleep(0.3)
        proxy.restore()
        back = time.monotonic()
        print(f"answers while the database was away: "
              f"{ {s: statuses.count(s) for s in set(statuses)} }")
        assert 500 not in statuses and 503 in statuses
        assert set(statuses) <= {200, 202, 503}

        states: dict[str, str] = {}
        while time.monotonic() - back < RECOVERY:
            try:
                answers = [requests.get(f"{base}/v1/jobs/{i}", headers=headers, timeout=5)
                           for i in ids]
            except requests.RequestException:
                answers = []
            assert all(a.status_code != 500 for a in answers)
            states = {i: a.json()["state"] for i, a in zip(ids, answers, strict=False)
                      if a.status_code == 200}
            if len(states) == len(ids) and all(s in ("done", "failed")
                                               for s in states.values()):
                break
            time.sleep(0.5)
        took = time.monotonic() - back
        print(f"every job ended {took:.1f}s after the database came back")
        assert len(states) == len(ids) and set(states.values()) == {"done"}, states
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        writes = {d: sum(1 for c in google.calls if c["path"].endswith(f"{d}:batchUpdate")
                         and c.get("status") == 200) for d in decks}
        print(f"Slides writes per deck: {sorted(writes.values())}")
        assert all(n >= 1 for n in writes.values()), writes
        verify = Store(url)
        for job_id in ids:  # ended once: finished, and never handed out again after
            job = verify.get_job(job_id)
            assert job.state == "done" and job.finished_at is not None
        verify.close()
    finally:
        proc.terminate()
        proc.wait(15)
        proxy.stop()
