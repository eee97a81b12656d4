"""Faults with work in flight: the database cut for a few seconds while the service's own
workers run jobs. Every job still ends, once, soon after the database is back, and the
service never answered a 500 meanwhile. PostgreSQL is reached through a TCP proxy that
the test cuts and restores (tests/tcp_proxy.py)."""

import time

from deckgen.api import create_app
from deckgen.auth import new_key
from deckgen.config import Config
from deckgen.store import Store
from tests.samples import REQUEST_BRIEF
from tests.tcp_proxy import TcpProxy

JOBS = 12
RECOVERY = 30.0  # seconds after the database is back by which every job has ended


def test_a_database_outage_mid_batch_loses_nothing_and_every_job_ends_once(
        tmp_path, fake_router, fake_openai, pg_schema):
    for _ in range(JOBS * 5):  # a model that takes a moment: jobs are in flight at the cut
        fake_openai.reply(None, {"delay": 0.3, "then": None})
    proxy = TcpProxy("127.0.0.1", 5432).start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?options=-csearch_path" \
          f"%3D{pg_schema}"
    store = Store(url, pool_timeout=1)
    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_WORKERS": "2", "DECKGEN_JOB_STALE_SECONDS": "10",
                              "DECKGEN_RATE_LIMIT": "off"})
    app = create_app(config, store=store, router=fake_router)
    runner = app.extensions["deckgen"]["runner"]
    key, digest = new_key()
    store.add_key("crm", digest)
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    try:
        ids = [client.post("/v1/jobs", json={"brief": REQUEST_BRIEF, "output": "pptx"},
                           headers=headers).get_json()["id"] for _ in range(JOBS)]
        time.sleep(1.0)
        with store.tx(readonly=True) as cur:
            cur.execute("SELECT state FROM jobs")
            before = [r["state"] for r in cur.fetchall()]
        proxy.cut()
        assert "running" in before and before.count("done") < JOBS, before
        statuses = set()
        for _ in range(10):  # callers during the outage: 503 or 200, never a 500
            statuses.add(client.get(f"/v1/jobs/{ids[0]}", headers=headers).status_code)
            statuses.add(client.get("/readyz").status_code)
            time.sleep(0.4)
        assert 500 not in statuses and 503 in statuses
        proxy.restore()
        back = time.monotonic()
        states: dict[str, str] = {}
        while time.monotonic() - back < RECOVERY:
            answer = [client.get(f"/v1/jobs/{i}", headers=headers) for i in ids]
            states = {i: a.get_json()["state"] for i, a in zip(ids, answer, strict=True)
                      if a.status_code == 200}
            if len(states) == JOBS and all(s in ("done", "failed") for s in states.values()):
                break
            time.sleep(0.5)
        assert states and set(states.values()) == {"done"}, states
        assert runner.alive(), "a worker died in the outage"
        assert client.get("/readyz").status_code == 200
        verify = Store(url)
        for job_id in ids:
            job = verify.get_job(job_id)
            assert job.finished_at is not None and (tmp_path / "decks" /
                                                    f"{job_id}.pptx").is_file()
        verify.close()
    finally:
        runner.stop()
        store.close()
        proxy.stop()
