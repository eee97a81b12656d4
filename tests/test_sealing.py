"""Payloads at rest: a brief, its deck and its prompts are encrypted when a key is set, read
back with it, refused without it, and purged on request; on SQLite and PostgreSQL."""

import pytest
from cryptography.fernet import Fernet

from deckgen.config import Config
from deckgen.errors import ConfigError, DeckgenError
from deckgen.store import SealedValue, Store
from deckgen.store.sealing import configure

SECRET = "Quillfeather Maritime"
REQUEST = {"brief": {"client": SECRET, "notes": "412 million euro"}, "target": "pptx"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    yield str(tmp_path / "deckgen.sqlite3") if request.param == "sqlite" \
        else request.getfixturevalue("pg_url")
    configure(None)  # other tests' stores write plain text


def raw_rows(store):
    """Every stored text as the database holds it."""
    with store.tx(readonly=True) as cur:
        cur.execute("SELECT request, deck FROM jobs")
        jobs = cur.fetchall()
        cur.execute("SELECT prompt, output FROM generations")
        return repr(jobs + cur.fetchall())


def run_one(store):
    job, _ = store.create_job("key:crm", REQUEST, {"data": {"state": "queued"}})
    store.record_generations(job.id, "h", [{
        "section": "data", "status": "ok", "route": "local", "model": "m",
        "prompt": [{"role": "user", "content": f"Client: {SECRET}"}],
        "output": {"title": SECRET}, "prompt_tokens": 1, "completion_tokens": 1,
        "seconds": 0.1}])
    return job


def test_with_a_key_nothing_of_the_brief_is_stored_in_clear(url):
    key = Fernet.generate_key().decode()
    store = Store(url, key=key)
    job = run_one(store)
    assert SECRET not in raw_rows(store) and "fernet:" in raw_rows(store)
    assert store.get_job(job.id).request == REQUEST
    assert SECRET in store.generations(job.id)[0]["prompt"]
    store.close()
    for other, why in (("", "DECKGEN_STORE_KEY is not set"),
                       (Fernet.generate_key().decode(), "another key")):
        replica = Store(url, key=other)
        with pytest.raises(SealedValue, match=why):
            replica.get_job(job.id)
        replica.close()


def test_without_a_key_it_is_plain_and_a_purge_forgets_the_brief(url):
    store = Store(url, key="")
    job = run_one(store)
    assert SECRET in raw_rows(store)
    with pytest.raises(DeckgenError, match="cancel it or let it end"):
        store.purge_job(job.id)
    store.cancel_job(job.id)
    assert store.purge_job(job.id) == 1
    assert SECRET not in raw_rows(store)
    assert store.get_job(job.id).request == {"target": "pptx", "purged": True}
    assert store.generations(job.id)[0]["prompt"] is None
    store.close()


def test_a_bad_key_stops_the_service_at_start():
    with pytest.raises(ConfigError, match="Fernet key"):
        Config.from_env({"DECKGEN_STORE_KEY": "not-a-key"})
