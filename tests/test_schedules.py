"""Scheduled regeneration: cron text checked, each run fired once across replicas (two stores
on the PostgreSQL at 127.0.0.1, ticking from threads), missed runs fired once, and archive
first against the fake Slides + Drive server: a deck is copied before it is updated, and a
deck any section of which failed is left exactly as it was, its archive copy gone and the
failure reported to a receiver on 127.0.0.1."""

import json
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from deckgen.config import Config, ScheduleSettings
from deckgen.schedules import ScheduleTicker, add_schedule, next_run
from deckgen.store import Store
from tests.samples import REQUEST_BRIEF as BRIEF
from tests.slides_fixtures import alt_text_template

MONDAY_6AM = "0 6 * * 1"


def items(*decks):
    return {"items": [{"presentation_id": d, "brief": BRIEF} for d in decks]}


def wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def count(store, table, where="1 = 1", args=()):
    with store.tx(readonly=True) as cur:
        cur.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", args)
        return int(cur.fetchone()["n"])


class Receiver:
    """An HTTP receiver for failure reports on 127.0.0.1: answers 503 to the first
    `refuse` posts (the reporter must retry), then 200, and keeps what it took."""

    def __init__(self, refuse=1):
        self.refuse, self.posts, self.taken = refuse, 0, []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/reports"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, environ, start_response):
        request = Request(environ)
        self.posts += 1
        if self.posts <= self.refuse:
            answer = Response("busy", status=503)
        else:
            self.taken.append((request.path, request.get_json()))
            answer = Response("{}", content_type="application/json")
        return answer(environ, start_response)

    def stop(self):
        self.server.shutdown()


# --- cron text --------------------------------------------------------------------------

@pytest.mark.parametrize("cron, named", [
    ("61 * * * *", "minute field '61'"),
    ("0 6 * * 8", "day-of-week field '8'"),
    ("0 6 * *", "has 4 fields"),
    ("0 0 30 2 *", "never fires"),
])
def test_bad_cron_text_is_a_422_naming_what_is_wrong(client, api_key, cron, named):
    answer = client.post("/v1/schedules", headers=api_key, json={
        "name": "weekly", "cron": cron, "source": items("deck1")})
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_schedule" and error["field"] == "cron"
    assert named in error["message"] and cron in error["message"]


def test_cron_days_of_the_week_count_from_sunday():
    friday = 1_800_000_000.0  # 2027-01-15 08:00 UTC, a Friday
    assert time.strftime("%a %H:%M", time.gmtime(next_run(MONDAY_6AM, "UTC", friday))) \
        == "Mon 06:00"
    assert time.strftime("%a", time.gmtime(next_run("0 6 * * 0", "UTC", friday))) == "Sun"
    paris = next_run("0 6 * * *", "Europe/Paris", friday)
    assert time.gmtime(paris).tm_hour == 5  # 06:00 in Paris is 05:00 UTC in winter


# --- exactly once ------------------------------------------------------------------------

def test_a_run_fires_exactly_once_across_two_replicas(pg_url):
    replicas = [Store(pg_url), Store(pg_url)]
    try:
        start = 1_800_000_000.0
        schedule = add_schedule(replicas[0], "key:crm", "every minute", "* * * * *",
                                items("deck1", "deck2"), now=start)
        tickers = [ScheduleTicker(s, {}) for s in replicas for _ in range(2)]
        rounds = 4
        fired = []
        for k in range(1, rounds + 1):
            now = start + 60 * k
            gate = threading.Barrier(len(tickers))
            results = [None] * len(tickers)

            def tick(i, now=now, gate=gate, results=results):
                gate.wait()
                results[i] = tickers[i].tick(now)

            threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(tickers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            this_round = [run for runs in results for run in runs]
            assert len(this_round) == 1, this_round
            fired += this_round
        store = replicas[1]
        assert count(store, "schedule_runs", "schedule_id = ?", (schedule.id,)) == rounds
        assert count(store, "batches", "owner = ?", ("key:crm",)) == rounds
        assert count(store, "jobs", "owner = ?", ("key:crm",)) == 2 * rounds
        assert len({run.batch_id for run in fired}) == rounds
        for run in fired:
            _, jobs = store.get_batch(run.batch_id)
            assert sorted(j.presentation_id for j in jobs) == ["deck1", "deck2"]
            assert all(j.request["archive"] is True and j.request["schedule_id"] ==
                       schedule.id for j in jobs)
    finally:
        for s in replicas:
            s.close()


def test_missed_runs_fire_once_when_the_service_is_back(store):
    created = 1_800_000_000.0
    schedule = add_schedule(store, "key:crm", "every 5 min", "*/5 * * * *", items("deck1"),
                            now=created)
    back = created + 3600 + 30  # down for an hour: twelve slots missed
    ticker = ScheduleTicker(store, {}, clock=lambda: back)
    ticker.start(every=0.02)
    try:
        assert wait_for(lambda: count(store, "schedule_runs") >= 1)
        ticks_seen = count(store, "schedule_runs")
        time.sleep(0.2)  # ten more ticks at the same time
    finally:
        ticker.stop()
    assert ticks_seen == count(store, "schedule_runs") == 1
    after = store.get_schedule(schedule.id)
    assert after.next_run_at == next_run("*/5 * * * *", "UTC", back) > back
    assert after.last_run_at == back
    (run,) = store.schedule_runs(schedule.id)
    assert run.due_at == schedule.next_run_at and run.batch_id is not None


def test_crm_entries_without_a_resolver_record_an_error_instead_of_firing(store):
    schedule = add_schedule(store, "key:crm", "opportunities", MONDAY_6AM,
                            {"crm_query": {"crm": "hubspot", "changed_since_last_run": True}},
                            now=1_800_000_000.0)
    reports = []
    (run,) = ScheduleTicker(store, {}, report=reports.append).tick(schedule.next_run_at)
    assert run.batch_id is None and run.error["code"] == "crm_not_configured"
    assert "no CRM resolver" in run.error["message"]
    assert count(store, "batches") == 0
    assert reports == [{"schedule_id": schedule.id, "job_id": None, "presentation_id": None,
                        "reason": run.error["message"], "code": "crm_not_configured"}]
    # with one registered, the next run fires what it resolves, told when the last one ran
    asked = []

    def resolver(schedule, since):
        asked.append(since)
        return [{"presentation_id": "deck9", "brief": BRIEF}]

    due = store.get_schedule(schedule.id).next_run_at
    (run,) = ScheduleTicker(store, {"crm": resolver}).tick(due)
    assert asked == [schedule.next_run_at] and run.error is None
    assert [j.presentation_id for j in store.get_batch(run.batch_id)[1]] == ["deck9"]


# --- archive first, end to end -----------------------------------------------------------

@pytest.fixture
def receiver():
    server = Receiver(refuse=1)
    yield server
    server.stop()


@pytest.fixture
def service(tmp_path, store, fake_router, google, service_account_file, receiver):
    """The service with Google behind the fake Slides + Drive server, an archive folder,
    and failure reports going to `receiver`; workers not started."""
    from deckgen.api import create_app

    config = Config.from_env({"DECKGEN_OUTPUT_DIR": str(tmp_path / "decks"),
                              "DECKGEN_WORKERS": "1",
                              "GOOGLE_APPLICATION_CREDENTIALS": service_account_file,
                              "DECKGEN_GOOGLE_API_ENDPOINT": google.url,
                              "DECKGEN_DRIVE_API_ENDPOINT": google.url})
    folder = google.add_folder("Deck archive")
    settings = ScheduleSettings(tick_seconds=3600, archive_folder_id=folder,
                                report_url=receiver.url)
    app = create_app(config, store=store, router=fake_router, start_workers=False,
                     schedule_settings=settings)
    app.folder = folder
    yield app
    app.extensions["deckgen"]["runner"].stop()


def run_schedule(app, headers, deck, **options):
    """Create a schedule over the API, fire its run, and run its job to its end."""
    answer = app.test_client().post("/v1/schedules", headers=headers, json={
        "name": "weekly refresh", "cron": MONDAY_6AM, "source": items(deck),
        "sections": ["current_state", "data"], **options})
    assert answer.status_code == 201, answer.get_json()
    schedule = answer.get_json()
    ticker = app.extensions["deckgen"]["schedules"]
    (run,) = ticker.tick(schedule["next_run_at"] + 1)
    store = app.extensions["deckgen"]["store"]
    (job,) = store.get_batch(run.batch_id)[1]
    runner = app.extensions["deckgen"]["runner"]
    runner.start()
    assert wait_for(lambda: store.get_job(job.id).state in ("done", "failed"))
    return store.get_job(job.id)


def texts(doc):
    return {e["objectId"]: "".join(t.get("textRun", {}).get("content", "")
                                   for t in e["shape"].get("text", {}).get("textElements", []))
            for slide in doc["slides"] for e in slide["pageElements"] if "shape" in e}


def test_archive_then_update(service, api_key, google):
    deck = google.add_presentation(alt_text_template(), owner_token="service-account")
    before = texts(google.presentations[deck])
    job = run_schedule(service, api_key, deck)
    assert job.state == "done", job.error
    (archived,) = google.copies(of=deck)
    assert job.result["archive_id"] == archived["id"]
    assert archived["parents"] == [service.folder]
    assert archived["name"].startswith("Pitch template (alt text) (archived 20")
    assert texts(google.presentations[archived["id"]]) == before  # the old version
    after = texts(google.presentations[deck])
    assert after["cs_body"] != before["cs_body"] and after["data_body"] != before["data_body"]
    assert after["fs_body"] == before["fs_body"]  # not asked for


def test_a_failed_section_leaves_the_deck_unchanged_and_is_reported(
        service, api_key, google, fake_openai, receiver):
    deck = google.add_presentation(alt_text_template(), owner_token="service-account")
    fake_openai.reply("data", *[{"status": 400, "code": "invalid_request_error",
                                 "message": "scripted: this section fails"}] * 6)
    before = json.dumps(google.presentations[deck], sort_keys=True)
    job = run_schedule(service, api_key, deck)
    assert job.state == "failed"
    assert job.error["code"] == "left_unchanged" and "data" in job.error["message"]
    assert job.error["details"] == {"sections": ["data"]}
    assert json.dumps(google.presentations[deck], sort_keys=True) == before  # byte for byte
    assert google.copies(of=deck) == []
    assert not [c for c in google.calls if c["path"].endswith(":batchUpdate")]
    assert wait_for(lambda: receiver.taken)
    ((path, report),) = receiver.taken
    assert path == "/reports"
    assert receiver.posts == 2  # refused once, then taken
    assert report == {"schedule_id": job.request["schedule_id"], "job_id": job.id,
                      "presentation_id": deck, "reason": job.error["message"],
                      "code": "left_unchanged"}


def test_a_failed_write_deletes_the_archive_copy(service, api_key, google):
    deck = google.add_presentation(alt_text_template(), owner_token="service-account")
    before = json.dumps(google.presentations[deck], sort_keys=True)

    def refuse_the_write(presentation_id):  # after the copy, the write is refused
        if google.copies(of=deck):
            google.fail_next(403, "The caller does not have permission")
            google.after_get = None

    google.after_get = refuse_the_write
    job = run_schedule(service, api_key, deck)
    assert job.state == "failed" and job.error["code"] == "deck_access_denied", job.error
    assert json.dumps(google.presentations[deck], sort_keys=True) == before
    copied = [c for c in google.calls if c["path"].endswith("/copy") and c["status"] == 200]
    deleted = [c for c in google.calls if c["method"] == "DELETE" and c["status"] == 204]
    assert len(copied) == 1 and len(deleted) == 1
    assert google.copies(of=deck) == []


# --- API and CLI -------------------------------------------------------------------------

def other_key(store):
    from deckgen.auth import new_key

    key, digest = new_key()
    store.add_key("other", digest)
    return {"Authorization": f"Bearer {key}"}


def test_schedules_over_the_api_are_the_callers_own(client, store, api_key):
    stranger = other_key(store)
    made = client.post("/v1/schedules", headers=api_key, json={
        "name": "weekly", "cron": MONDAY_6AM, "timezone": "Europe/Paris",
        "source": items("deck1", "deck2"), "route": "auto", "archive": False})
    assert made.status_code == 201, made.get_json()
    schedule = made.get_json()
    assert made.headers["Location"].endswith(schedule["id"])
    assert (schedule["paused"], schedule["archive"], schedule["runs"]) == (False, False, [])
    assert schedule["next_run_at"] == next_run(MONDAY_6AM, "Europe/Paris",
                                               schedule["created_at"])
    mine = client.get("/v1/schedules", headers=api_key).get_json()["schedules"]
    assert [s["id"] for s in mine] == [schedule["id"]]
    assert client.get("/v1/schedules", headers=stranger).get_json() == {"schedules": []}
    for method, path in (("get", ""), ("post", "/pause"), ("post", "/resume"),
                         ("delete", "")):
        answer = getattr(client, method)(f"/v1/schedules/{schedule['id']}{path}",
                                         headers=stranger)
        assert answer.status_code == 404 and \
            answer.get_json()["error"]["code"] == "schedule_not_found"

    paused = client.post(f"/v1/schedules/{schedule['id']}/pause", headers=api_key).get_json()
    assert paused["paused"] is True
    assert ScheduleTicker(store, {}).tick(schedule["next_run_at"] + 1) == []  # paused
    assert client.post(f"/v1/schedules/{schedule['id']}/resume",
                       headers=api_key).get_json()["paused"] is False
    ticked = ScheduleTicker(store, {}).tick(schedule["next_run_at"] + 1)
    assert len(ticked) == 1
    view = client.get(f"/v1/schedules/{schedule['id']}", headers=api_key).get_json()
    assert [r["batch_id"] for r in view["runs"]] == [ticked[0].batch_id]
    (job,) = store.get_batch(ticked[0].batch_id)[1][:1]
    assert job.request["archive"] is False  # the schedule turned it off

    gone = client.delete(f"/v1/schedules/{schedule['id']}", headers=api_key)
    assert gone.status_code == 200 and gone.get_json()["id"] == schedule["id"]
    assert client.get(f"/v1/schedules/{schedule['id']}", headers=api_key).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"source": {"items": [{"presentation_id": "deck1", "brief": {}}]}},
     "source.items[0].brief.client"),
    ({"source": {"items": [{"presentation_id": "deck1"}]}}, "source.items[0].brief"),
    ({"source": {"items": []}}, "source.items"),
    ({"source": items("deck1"), "timezone": "Mars/Olympus"}, "timezone"),
    ({"source": items("deck1"), "sections": ["nope"]}, "sections"),
])
def test_bad_schedules_are_a_422_naming_the_field(client, api_key, body, field):
    answer = client.post("/v1/schedules", headers=api_key,
                         json={"name": "n", "cron": MONDAY_6AM, **body})
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["field"] == field


def test_cli_adds_lists_pauses_and_removes_schedules(tmp_path, monkeypatch, capsys):
    from deckgen.cli import main

    url = str(tmp_path / "deckgen.sqlite3")
    monkeypatch.setenv("DECKGEN_DATABASE_URL", url)  # the CLI reads its store from here

    def deckgen(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    listed = tmp_path / "decks.json"
    listed.write_text(json.dumps(items("deck1", "deck2")["items"]))
    code, out, err = deckgen("schedules", "add", "monday refresh", "--cron", MONDAY_6AM,
                             "--items", listed, "--no-archive", "--route", "openai")
    assert code == 0, err
    schedule_id = out.strip()
    code, _, err = deckgen("schedules", "add", "broken", "--cron", "0 6 * *", "--items",
                           listed)
    assert code == 2 and "has 4 fields" in err
    assert deckgen("schedules", "pause", schedule_id)[0] == 0
    rows = deckgen("schedules", "list")[1].splitlines()
    assert len(rows) == 1 and rows[0].startswith(f"{schedule_id}  monday refresh  '0 6 * * 1'")
    assert "decks 2" in rows[0] and rows[0].endswith("PAUSED")
    store = Store(url)
    try:
        stored = store.get_schedule(schedule_id)
    finally:
        store.close()
    assert stored.options["archive"] is False and stored.options["route"] == "openai"
    assert stored.paused
    assert deckgen("schedules", "remove", schedule_id)[0] == 0
    assert deckgen("schedules", "list")[1] == ""
    code, _, err = deckgen("schedules", "remove", schedule_id)
    assert code == 2 and schedule_id in err
