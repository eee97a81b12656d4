"""`deckgen dataset export`: the fine-tuning rows are the prompts the router sends."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from deckgen.store import Store
from tests.samples import PG

ROOT = Path(__file__).resolve().parent.parent


def export(tmp_path, *args, env=None):
    out = tmp_path / "train.jsonl"
    run = subprocess.run([sys.executable, "-m", "deckgen.cli", "dataset", "export", "--out",
                          str(out), *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DECKGEN_SELF_HOSTED_CONTEXT": "8192",
                              **(env or {})})
    assert run.returncode == 0, run.stderr
    read = [json.loads(line) for line in out.read_text().splitlines()]
    held = [json.loads(line) for line in out.with_suffix(".heldout.jsonl").read_text()
            .splitlines()]
    return read, held


def test_rows_are_the_serving_prompt_plus_the_reference_answer(tmp_path, cases, specs):
    train, held = export(tmp_path)
    assert len(train) + len(held) == len(cases) * len(specs)
    assert held and train
    assert not {r["meta"]["case"] for r in train} & {r["meta"]["case"] for r in held}
    by_id = {c.id: c for c in cases}
    for row in train + held:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system" and roles[-2:] == ["user", "assistant"]
        case, section = by_id[row["meta"]["case"]], row["meta"]["section"]
        answer = json.loads(row["messages"][-1]["content"])
        assert answer == case.sections[section]
        # leave-one-out: the case's own answer is not among its few-shot turns
        shots = [m["content"] for m in row["messages"][1:-1] if m["role"] == "assistant"]
        assert row["messages"][-1]["content"] not in shots and shots
        assert row["meta"]["prompt_tokens"] <= specs[section].max_prompt_tokens


def test_client_names_can_be_masked(tmp_path, cases):
    train, held = export(tmp_path, "--mask-clients")
    text = json.dumps(train + held)
    for case in cases:
        assert case.brief.client not in text
        for contact in case.brief.contacts:
            assert contact.name not in text
    assert "[CLIENT_1]" in text and "[PERSON_1]" in text


PROMPT = [{"role": "system", "content": "Write the section."},
          {"role": "user", "content": "Client: Harbor Logistics\nContacts:\n- Ana Ruiz, COO\n"
                                      "Discovery notes: trucks queue at the gates"},
          {"role": "assistant", "content": "{not json"},
          {"role": "user", "content": "Your answer does not match the required format"}]
WRITTEN = {
    "current_state": {"title": "Trucks wait hours at Harbor Logistics",
                      "bullets": ["Trucks queue", "Excel bookings", "No visibility"]},
    "stakeholders": {"title": "Who decides", "people": [
        {"name": "Ana Ruiz", "role": "COO", "cares_about": "waits"},
        {"name": "Tom Lee", "role": "CIO", "cares_about": "systems"}]},
    "data": {"title": "Data", "items": [{"dataset": "a", "source": "b", "use": "c"}] * 3},
    "skills": {"title": "Skills", "items": [{"skill": "a", "why": "b"}] * 3},
}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_reviewed_generations_become_rows(tmp_path, db):
    """A deck filled by job A, then read back by job B's write: what people kept is exported
    as written, what they edited as they left it (parsed back into the section's format)."""
    url = str(tmp_path / "db.sqlite3")
    if db == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        check_reviewed_export(tmp_path, url)
    finally:
        if db == "postgresql":
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def check_reviewed_export(tmp_path, url):
    store = Store(url)
    first, _ = store.create_job("me", {}, {}, presentation_id="deck-1")
    store.record_generations(first.id, "brief-1", [
        {"section": name, "status": "ok", "route": "self-hosted", "model": "m",
         "prompt": PROMPT, "prompt_base_turns": 2, "output": output, "prompt_tokens": 9,
         "completion_tokens": 9, "seconds": 1.0} for name, output in WRITTEN.items()])
    second, _ = store.create_job("me", {}, {}, presentation_id="deck-1")
    store.record_generations(second.id, "brief-1", [  # job B's own, not yet reviewed
        {"section": "skills", "status": "ok", "route": "self-hosted", "model": "m",
         "prompt": PROMPT[:2], "output": {"title": "B", "items": []}, "prompt_tokens": 1,
         "completion_tokens": 1, "seconds": 1.0}])
    store.record_feedback("deck-1", second.id, [
        {"section": "current_state", "part": "body", "state": "edited",
         "text": "Trucks wait 2.5 hours\n\nBookings live in Excel\nNobody sees the queue"},
        {"section": "current_state", "part": "title", "state": "kept", "text": "x"},
        {"section": "stakeholders", "part": "body", "state": "edited",
         "text": "Ana Ruiz, COO: shorter waits\nTom Lee, CIO, Harbor: one booking system"},
        {"section": "data", "part": "body", "state": "edited", "text": "a note, no format"},
        {"section": "skills", "part": "body", "state": "kept", "text": "..."}])
    store.close()
    env = {"DECKGEN_DATABASE_URL": url}
    train, held = export(tmp_path, "--since", "2020-01-01", "--no-examples", "--heldout", "0",
                         env=env)
    rows = {r["meta"]["section"]: r for r in train + held}
    assert set(rows) == {"current_state", "stakeholders", "skills"}  # data's edit left out
    cs = rows["current_state"]
    assert cs["meta"]["source"] == "edited" and cs["meta"]["case"] == "brief-1"
    assert cs["messages"][:2] == PROMPT[:2]  # the section's own prompt, not the repair turn
    assert json.loads(cs["messages"][-1]["content"]) == {
        "title": WRITTEN["current_state"]["title"],
        "bullets": ["Trucks wait 2.5 hours", "Bookings live in Excel", "Nobody sees the queue"]}
    assert json.loads(rows["stakeholders"]["messages"][-1]["content"])["people"] == [
        {"name": "Ana Ruiz", "role": "COO", "cares_about": "shorter waits"},
        {"name": "Tom Lee", "role": "CIO, Harbor", "cares_about": "one booking system"}]
    skills = rows["skills"]
    assert skills["meta"]["source"] == "kept"
    assert json.loads(skills["messages"][-1]["content"]) == WRITTEN["skills"]

    masked, _ = export(tmp_path, "--since", "2020-01-01", "--no-examples", "--mask-clients",
                       env=env)
    text = json.dumps(masked)
    assert "Harbor Logistics" not in text and "Ana Ruiz" not in text and "[NAME_1]" in text
    later, held = export(tmp_path, "--since", "2099-01-01", "--no-examples", env=env)
    assert later == held == []
