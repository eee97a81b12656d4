"""`deckgen eval --replay`: generations recorded in a real SQLite store by the fill use case
(the job runner, on the fake OpenAI server), replayed on another fake route whose answers
differ, and the report's old (recorded) and new columns side by side."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai import OpenAI

from deckgen.budget import TiktokenCounter
from deckgen.config import RetryPolicy
from deckgen.deck import Generator
from deckgen.evaluation import Variant
from deckgen.fill import Filler
from deckgen.jobs import JobRunner, initial_progress
from deckgen.llm.client import ModelRoute
from deckgen.llm.router import Router
from deckgen.privacy import PrivacyPolicy
from deckgen.replay import RECORDED, recorded_briefs, replay_command
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["current_state", "skills"]
NEW_TEXT = "Replayed: trucks queue at the gates for hours every single morning"


def brief(client, confidential=False):
    data = {"client": client, "industry": "Logistics",
            "notes": f"{client}: trucks queue at the gates for hours."}
    return {**data, "confidential": ["notes"]} if confidential else data


def new_answer(body):
    """The new route's model: longer items than the recorded ones."""
    schema = body["response_format"]["json_schema"]["schema"]
    key = next(k for k, v in schema["properties"].items() if v.get("type") == "array")
    items = schema["properties"][key]
    one = items["items"]
    item = ({f: NEW_TEXT[: v.get("maxLength", 200)] for f, v in one["properties"].items()}
            if one.get("type") == "object" else NEW_TEXT[: one.get("maxLength", 200)])
    return json.dumps({"title": "Replayed title", key: [item] * items.get("minItems", 1)})


@pytest.fixture
def new_server():
    server = FakeOpenAI().start()
    for _ in range(100):
        server.reply(None, {"dynamic": new_answer})
    yield server
    server.stop()


def record(store, generator, specs, tmp_path, *briefs, owner="crm"):
    """Run the fill use case as the service does (a job, its generations recorded)."""
    runner = JobRunner(store, Filler(generator), tmp_path / "decks", workers=1,
                       poll_seconds=0.02)
    ids = []
    runner.start()
    try:
        for data in briefs:
            job, _ = store.create_job(owner, {"brief": data, "sections": SECTIONS,
                                              "route": "auto", "target": "pptx"},
                                      initial_progress([specs[s] for s in SECTIONS]))
            deadline = time.monotonic() + 60
            while store.get_job(job.id).state not in ("done", "failed"):
                assert time.monotonic() < deadline, "the recording job did not finish"
                time.sleep(0.02)
            assert store.get_job(job.id).state == "done"
            ids.append(job.id)
    finally:
        runner.stop()
    return ids


def routes_to(server, specs, cases, renderer):
    """generator_for: every variant's route is a fake on `server` (model "new-model")."""
    client = OpenAI(base_url=server.url, api_key="k", max_retries=0, timeout=10)

    def build(name):
        return ModelRoute(name, "new-model", 8192, TiktokenCounter("gpt-4o"), client,
                          "json_schema")

    router = Router(build, ["self-hosted", "openai"],
                    RetryPolicy(deadline=5, backoff_initial=0.01, backoff_max=0.05))
    return lambda variant: Generator(specs, cases, renderer, router, temperature=0.0)


def clients_asked(server):
    asked = set()
    for body in server.requests:
        turn = body["messages"][-1]["content"]
        asked |= {c for c in ("Alpha Freight", "Beta Ports", "Gamma Rail", "Secret Co")
                  if c in turn}
    return asked


def run(store, generator_for, tmp_path, routes, since=None, limit=None,
        prices=None):
    variants = [Variant(r, r, ROOT / "prompts") for r in routes]
    return replay_command(store, PrivacyPolicy(), variants, generator_for, since=since,
                          limit=limit, sections=SECTIONS, prices=prices or {},
                          out=tmp_path / "report", progress=lambda line: None)


def test_a_replay_puts_recorded_and_new_answers_side_by_side(
        store, fake_generator, specs, cases, renderer, new_server, tmp_path):
    jobs = record(store, fake_generator, specs, tmp_path, brief("Alpha Freight"),
                  brief("Beta Ports"))
    prices = {"deckgen-test": (1.0, 2.0), "new-model": (3.0, 4.0)}
    report, paths, line = run(store, routes_to(new_server, specs, cases, renderer), tmp_path,
                              ["self-hosted"], prices=prices)
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    assert sorted(report["cases"]) == sorted(jobs) and "replayed 2 of 2" in line
    assert clients_asked(new_server) == {"Alpha Freight", "Beta Ports"}
    old = [r for r in report["rows"] if r["variant"] == RECORDED]
    new = [r for r in report["rows"] if r["variant"] == "self-hosted"]
    assert len(old) == len(new) == 2 * len(SECTIONS)
    recorded = {(j, g["section"]): g for j in jobs for g in store.generations(j)}
    for row in old:  # the old column is what the store holds, priced as recorded
        generation = recorded[(row["case"], row["section"])]
        assert row["model"] == "deckgen-test"
        assert row["prompt_tokens"] == generation["prompt_tokens"] > 0
        assert row["cost_usd"] == pytest.approx(
            (generation["prompt_tokens"] * 1 + generation["completion_tokens"] * 2) / 1e6)
        assert row["rouge_l"] is None and row["guard_flagged"] is None
        assert NEW_TEXT not in json.dumps(json.loads(generation["output"]))
    for row in new:
        assert row["model"] == "new-model" and row["valid"] == 1.0
        assert row["cost_usd"] == pytest.approx(
            (row["prompt_tokens"] * 3 + row["completion_tokens"] * 4) / 1e6)
        assert 0 <= row["rouge_l"] < 1  # against the recorded text, which differs
    summary = report["summary"]
    for section in SECTIONS:
        before, after = summary[RECORDED]["sections"][section], \
            summary["self-hosted"]["sections"][section]
        assert after["chars"] > before["chars"]
        assert after["ungrounded_rate"] > before["ungrounded_rate"]  # "Replayed" is invented
        assert before["valid"] == after["valid"] == 1.0
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| metric (overall) | recorded | self-hosted |" in markdown
    assert "| current_state | recorded |" in markdown and "| skills | self-hosted |" in markdown
    assert "length, characters" in markdown and "cost, US$" in markdown
    assert "<img" in (tmp_path / "report" / "report.html").read_text()


def test_a_confidential_brief_is_never_sent_to_an_external_route(
        store, fake_generator, specs, cases, renderer, new_server, tmp_path):
    jobs = record(store, fake_generator, specs, tmp_path, brief("Secret Co", True),
                  brief("Alpha Freight"))
    assert {g["policy"] for g in store.generations(jobs[0])} == {"confidential:internal-only"}
    generator_for = routes_to(new_server, specs, cases, renderer)
    report, _, line = run(store, generator_for, tmp_path, ["openai"])
    assert clients_asked(new_server) == {"Alpha Freight"}
    assert report["skipped_confidential"] == {"openai": [jobs[0]]}
    assert report["cases"] == [jobs[1]] and "1 confidential brief run(s) skipped" in line
    assert "1 confidential brief(s) skipped" in (tmp_path / "report" / "report.md").read_text()
    # on an internal route it is replayed
    report, _, _ = run(store, generator_for, tmp_path, ["self-hosted"])
    assert "Secret Co" in clients_asked(new_server)
    assert sorted(report["cases"]) == sorted(jobs)


def test_since_and_limit_select_the_newest_recorded_briefs(
        store, fake_generator, specs, cases, renderer, new_server, tmp_path):
    first = record(store, fake_generator, specs, tmp_path, brief("Alpha Freight"))
    time.sleep(0.01)
    cut = time.time()
    later = record(store, fake_generator, specs, tmp_path, brief("Beta Ports"),
                   brief("Gamma Rail"))
    privacy = PrivacyPolicy()
    assert [r.job_id for r in recorded_briefs(store, privacy)[0]] == [*reversed(later),
                                                                     *first]
    assert [r.job_id for r in recorded_briefs(store, privacy, since=cut)[0]] == \
        list(reversed(later))
    assert [r.job_id for r in recorded_briefs(store, privacy, limit=1)[0]] == [later[-1]]
    report, _, _ = run(store, routes_to(new_server, specs, cases, renderer), tmp_path,
                       ["self-hosted"], since=cut, limit=1)
    assert report["cases"] == [later[-1]] and clients_asked(new_server) == {"Gamma Rail"}
    store.purge_job(later[-1])  # a purged brief cannot be replayed: it is left out, counted
    records, purged = recorded_briefs(store, privacy, since=cut)
    assert [r.job_id for r in records] == [later[0]] and purged == 1


def test_the_command_line_replays_the_store(store, fake_generator, specs, new_server,
                                            tmp_path):
    jobs = record(store, fake_generator, specs, tmp_path, brief("Alpha Freight"))
    env = {**os.environ, "DECKGEN_DATABASE_URL": str(tmp_path / "deckgen.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": new_server.url, "DECKGEN_SELF_HOSTED_MODEL": "new-model",
           "DECKGEN_PRICES": "new-model=3/4"}
    run_cli = subprocess.run(
        [sys.executable, "-m", "deckgen.cli", "eval", "--replay", "--routes", "self-hosted",
         "--sections", ",".join(SECTIONS), "--since", "2020-01-01", "--out",
         str(tmp_path / "cli-report")], cwd=ROOT, capture_output=True, text=True, env=env,
        timeout=600)
    assert run_cli.returncode == 0, run_cli.stderr
    assert "| metric (overall) | recorded | self-hosted |" in run_cli.stdout
    assert "replayed 1 of 1 recorded briefs" in run_cli.stderr
    report = json.loads((tmp_path / "cli-report" / "report.json").read_text())
    assert report["cases"] == jobs
    assert {r["model"] for r in report["rows"]} == {"deckgen-test", "new-model"}
    bad = subprocess.run([sys.executable, "-m", "deckgen.cli", "eval", "--since",
                          "2020-01-01"], cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "--since goes with --replay" in bad.stderr
