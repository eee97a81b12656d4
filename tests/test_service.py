"""The service as a real process: `deckgen serve` with the model behind a fake OpenAI
server and Google behind the fake Slides/Drive server, killed with SIGKILL mid-batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from deckgen.llm.local import free_port
from tests.samples import REQUEST_BRIEF as BRIEF
from tests.slides_fixtures import realistic_template

ROOT = Path(__file__).resolve().parent.parent


class Service:
    def __init__(self, env, log):
        self.env = {**os.environ, **env}
        self.log = log  # a file, not a pipe: an unread pipe fills up and blocks the server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deckgen.cli", "serve", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"))  # noqa: SIM115 - the child owns it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(Path(self.log).read_text()[-3000:])

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def create_key(env):
    run = subprocess.run([sys.executable, "-m", "deckgen.cli", "keys", "create", "crm"],
                         cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_batch_survives_sigkill_and_finishes_every_deck_once(google, fake_openai, tmp_path,
                                                              service_account_file):
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(6)]
    fake_openai.reply(None, *[{"delay": 0.25}] * 400)
    env = {"DECKGEN_DATABASE_URL": str(tmp_path / "deckgen.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
           "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url,
           "DECKGEN_WORKERS": "2", "DECKGEN_JOB_STALE_SECONDS": "10",
           # two batch decks at a time (a third would be a person's): some are still
           # generating when the process is killed
           "DECKGEN_MAX_DECKS_IN_FLIGHT": "3",
           "DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
           "DECKGEN_SLIDES_WRITES_PER_MINUTE": "600"}
    headers = {"Authorization": f"Bearer {create_key(env)}"}
    service = Service(env, tmp_path / "service.log").start()
    try:
        answer = requests.post(f"{service.url}/v1/batches", headers=headers, json={
            "items": [{"presentation_id": d, "brief": BRIEF} for d in decks]})
        assert answer.status_code == 202, answer.text
        batch = answer.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once some decks are done, others running
            counts = requests.get(f"{service.url}/v1/batches/{batch}", headers=headers,
                                  timeout=10).json()
            if counts["counts"]["done"] >= 1 and counts["counts"]["running"] >= 1:
                break
            time.sleep(0.05)
        service.kill()
        interrupted = counts["counts"]["running"]
        assert interrupted >= 1

        service = Service(env, tmp_path / "service.log").start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            view = requests.get(f"{service.url}/v1/batches/{batch}", headers=headers,
                                  timeout=10).json()
            if view["counts"]["done"] == len(decks):
                break
            time.sleep(0.1)
        assert view["counts"] == {"queued": 0, "running": 0, "done": 6, "failed": 0,
                                  "cancelled": 0}
        assert sum(item["attempts"] for item in view["items"]) >= len(decks) + 1
        for deck in decks:
            assert google.shape_text(deck, "cs_body").strip()
            assert "{{" not in json.dumps(google.presentations[deck])
        writes = [c for c in google.calls if c["path"].endswith(":batchUpdate")
                  and c["status"] == 200]
        assert len({c["path"] for c in writes}) == len(decks)
    finally:
        service.stop()


def test_a_person_fills_their_own_deck_with_their_token(google, fake_openai, tmp_path):
    from tests.google_identity import IdentityIssuer

    issuer = IdentityIssuer()
    deck = google.add_presentation(realistic_template(), owner_token="ya29.rep-token")
    env = {"DECKGEN_DATABASE_URL": str(tmp_path / "deckgen.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "DECKGEN_GOOGLE_API_ENDPOINT": google.url, "DECKGEN_DRIVE_API_ENDPOINT": google.url,
           "DECKGEN_GOOGLE_AUDIENCE": issuer.audience,
           "DECKGEN_GOOGLE_CERTS_URL": issuer.certs_url}
    service = Service(env, tmp_path / "service.log").start()
    try:
        headers = {"Authorization": f"Bearer {issuer.token()}",
                   "X-Goog-User-Token": "ya29.rep-token"}
        job = requests.post(f"{service.url}/v1/jobs", headers=headers, json={
            "brief": BRIEF, "presentation_id": deck, "sections": ["data", "skills"]}).json()
        for _ in range(300):
            job = requests.get(f"{service.url}/v1/jobs/{job['id']}", headers=headers).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert job["state"] == "done", job
        assert job["url"] == f"https://docs.google.com/presentation/d/{deck}/edit"
        assert "{{data}}" not in google.shape_text(deck, "data_body")
        assert google.shape_text(deck, "cs_body") == "{{current_state}}\n"
        assert {c["token"] for c in google.calls} == {"ya29.rep-token"}

        missing = requests.post(f"{service.url}/v1/jobs", headers=headers, json={
            "brief": BRIEF, "presentation_id": "no-such-deck"}).json()
        for _ in range(300):
            missing = requests.get(f"{service.url}/v1/jobs/{missing['id']}",
                                   headers=headers).json()
            if missing["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert missing["state"] == "failed"
        assert missing["error"]["code"] == "deck_not_found"
        assert "no-such-deck" in missing["error"]["message"]
    finally:
        service.stop()
        issuer.stop()
