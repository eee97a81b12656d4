"""Section-level scheduling across decks (deckgen/admission.py, the routes' priority gates in
deckgen/llm/limits.py): a model server capped at N streams is kept at N while many decks
are queued, decks still end exactly once and can be cancelled mid-batch, and a person's
sections take a saturated route's next free slots before batch sections.

The model is a real HTTP server on 127.0.0.1 with a fixed cap and latency that logs when
each request starts and ends; the busy share is computed from that log."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from deckgen.admission import Admission, default_ceiling
from deckgen.budget import TiktokenCounter
from deckgen.config import Config, RetryPolicy, RouteLimits
from deckgen.deck import Generator
from deckgen.errors import ConfigError
from deckgen.fill import Filler
from deckgen.jobs import JobRunner, initial_progress
from deckgen.llm.client import ModelRoute
from deckgen.llm.limits import Pacer, RouteLoad, SlotGate
from deckgen.llm.router import Router
from tests.fake_openai import instance_of

PERSON = "Quillfeather Person Co"  # the interactive job's client, found in its prompts


class CappedServer:
    """An OpenAI-compatible server serving at most `cap` requests at once, each for a fixed
    time per section (between `fastest` and `slowest` seconds: sections finish unevenly),
    logging every start and end."""

    def __init__(self, cap: int, fastest: float, slowest: float) -> None:
        self.cap, self.fastest, self.slowest = cap, fastest, slowest
        self.slots = threading.BoundedSemaphore(cap)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.events: list[tuple[float, int]] = []  # (time, in flight after the change)
        self.arrivals: list[tuple[float, bool, str]] = []  # (time, a person's?, section)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> CappedServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()

    def latency(self, section: str) -> float:
        spread = zlib.crc32(section.encode()) % 1000 / 999
        return self.fastest + (self.slowest - self.fastest) * spread

    def _change(self, delta: int) -> None:
        with self.lock:
            self.in_flight += delta
            self.events.append((time.monotonic(), self.in_flight))

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        if request.path.rstrip("/").endswith("/models"):
            return Response(json.dumps({"data": [{"id": "capped"}]}),
                            content_type="application/json")
        body = json.loads(request.get_data())
        schema = body["response_format"]["json_schema"]
        person = PERSON in json.dumps(body["messages"])
        with self.slots:
            with self.lock:
                self.arrivals.append((time.monotonic(), person, schema["name"]))
            self._change(+1)
            try:
                time.sleep(self.latency(schema["name"]))
            finally:
                self._change(-1)
        content = json.dumps(instance_of(schema["schema"]))
        return Response(json.dumps({
            "id": "capped", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}),
            content_type="application/json")

    def share_at_cap(self) -> float:
        """Of the time between the first request and the last one, the share the server
        spent serving `cap` requests at once."""
        with self.lock:
            events, last = list(self.events), self.arrivals[-1][0]
        start, at_cap, prev_t, prev_n = events[0][0], 0.0, events[0][0], events[0][1]
        for t, n in events[1:]:
            if t > last:
                break
            if prev_n >= self.cap:
                at_cap += t - prev_t
            prev_t, prev_n = t, n
        if prev_n >= self.cap:
            at_cap += last - prev_t
        return at_cap / (last - start) if last > start else 0.0


def build_runner(server: CappedServer, cap: int, store: Any, specs: Any, cases: Any,
                 renderer: Any, out: Path, finished: list[str],
                 workers: int = 1) -> tuple[JobRunner, Router]:
    route = ModelRoute("self-hosted", "capped", 8192, TiktokenCounter("gpt-4o"),
                       OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60),
                       "json_schema")
    router = Router(lambda name: route, ["self-hosted"], RetryPolicy(deadline=120),
                    limits={"self-hosted": RouteLimits(None, None, cap)})
    generator = Generator(specs, cases, renderer, router, temperature=0.0)
    runner = JobRunner(store, Filler(generator), out, workers=workers, poll_seconds=0.1,
                       on_finish=lambda job, deck: finished.append(job.id))
    return runner, router


def request(client: str) -> dict[str, Any]:
    return {"brief": {"client": client, "notes": "Trucks queue at the gates each morning."},
            "sections": None, "route": "auto", "target": "pptx"}


def queue_batch(store: Any, specs: Any, decks: int) -> list[str]:
    items = [(request(f"Harbor Logistics {i}"), initial_progress(list(specs.values())), None)
             for i in range(decks)]
    _, jobs, _ = store.create_batch_with_jobs("ops", items)
    return [j.id for j in jobs]


def wait_for(check: Any, seconds: float = 120.0) -> None:
    """Poll `check` until true (a generous limit: the test waits on state, not on time)."""
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "the jobs did not get there"
        time.sleep(0.05)


def ended(store: Any, ids: list[str]) -> bool:
    return all(store.get_job(i).state not in ("queued", "running") for i in ids)


def test_a_capped_server_stays_at_its_cap_while_decks_are_queued(store, specs, cases,
                                                                 renderer, tmp_path):
    # one worker: one deck at a time (the old way) would give the server 5 sections of 6
    cap, finished = 6, []
    with CappedServer(cap, 0.6, 1.4) as server:
        runner, _ = build_runner(server, cap, store, specs, cases, renderer,
                                 tmp_path / "decks", finished)
        ids = queue_batch(store, specs, 10)
        runner.start()
        try:
            wait_for(lambda: ended(store, ids))
        finally:
            runner.stop()
    share = server.share_at_cap()
    assert share >= 0.8, f"the server was at its cap {share:.0%} of the batch"
    jobs = [store.get_job(i) for i in ids]
    assert [j.state for j in jobs] == ["done"] * len(ids)
    assert Counter(finished) == Counter(ids)  # each job ended once
    assert all(j.attempts == 1 for j in jobs)
    assert all((tmp_path / "decks" / f"{i}.pptx").is_file() for i in ids)
    assert len(server.arrivals) == 5 * len(ids)  # one call per section, none repeated
    assert runner.admission.decks == 0


def test_cancelling_a_batch_mid_way_ends_every_deck_once(store, specs, cases, renderer,
                                                          tmp_path):
    cap, finished = 6, []
    with CappedServer(cap, 0.3, 0.6) as server:
        runner, _ = build_runner(server, cap, store, specs, cases, renderer,
                                 tmp_path / "decks", finished)
        ids = queue_batch(store, specs, 16)
        runner.start()
        try:
            wait_for(lambda: sum(store.get_job(i).state == "done" for i in ids) >= 2
                     and sum(store.get_job(i).state == "running" for i in ids) >= 2)
            running = [i for i in ids if store.get_job(i).state == "running"]
            batch = store.get_job(ids[0]).batch_id
            store.cancel_batch(batch)
            wait_for(lambda: ended(store, ids) and runner.admission.decks == 0)
        finally:
            runner.stop()
    states = {i: store.get_job(i).state for i in ids}
    assert set(states.values()) <= {"done", "cancelled"}
    assert "cancelled" in states.values()
    # a deck generating when cancelled ends cancelled, unwritten, once
    stopped = [i for i in running if states[i] == "cancelled"]
    assert stopped, "no deck in generation was cancelled"
    assert not any((tmp_path / "decks" / f"{i}.pptx").exists() for i in stopped)
    counts = Counter(finished)
    assert all(n == 1 for n in counts.values())
    assert set(counts) >= {i for i, s in states.items() if s == "done"}
    assert all(store.get_job(i).attempts <= 1 for i in ids)


def test_a_persons_sections_take_the_next_free_slots_of_a_saturated_route(
        store, specs, cases, renderer, tmp_path):
    cap, finished = 1, []
    with CappedServer(cap, 0.3, 0.3) as server:
        runner, router = build_runner(server, cap, store, specs, cases, renderer,
                                      tmp_path / "decks", finished, workers=2)
        ids = queue_batch(store, specs, 8)
        runner.start()
        try:
            def batch_waiting() -> int:
                load = router.load().get("self-hosted")
                return load.waiting_by_priority.get(1, 0) if load else 0

            wait_for(lambda: batch_waiting() >= 4)
            person, _ = store.create_job("person", request(PERSON),
                                         initial_progress(list(specs.values())))
            # the person's sections reach the route while batch sections wait there
            snapshot: dict[str, Any] = {}

            def person_waiting() -> bool:
                load = router.load()["self-hosted"]
                if load.waiting_by_priority.get(0, 0) == 0:
                    return False
                snapshot.update(batch=load.waiting_by_priority.get(1, 0),
                                seen=len(server.arrivals))
                return True

            wait_for(person_waiting)
            wait_for(lambda: store.get_job(person.id).state == "done")
            store.cancel_batch(store.get_job(ids[0]).batch_id)
            wait_for(lambda: ended(store, ids) and runner.admission.decks == 0)
        finally:
            runner.stop()
    after = server.arrivals[snapshot["seen"]:]
    last_person = max(n for n, (_, mine, _) in enumerate(after) if mine)
    overtaking = sum(1 for _, mine, _ in after[:last_person] if not mine)
    assert snapshot["batch"] >= 3  # first come, first served would serve these first
    assert sum(1 for _, mine, _ in after if mine) == 5
    # at most the call granted as the person's sections arrived went before them
    assert overtaking <= cap, f"{overtaking} batch sections went before the person's"


def test_a_job_handed_out_again_while_its_first_run_goes_on_ends_once(store, specs,
                                                                      fake_generator,
                                                                      tmp_path):
    finished: list[str] = []
    runner = JobRunner(store, Filler(fake_generator), tmp_path / "decks", workers=1,
                       on_finish=lambda job, deck: finished.append(job.id))
    job, _ = store.create_job("crm", request("Harbor Logistics"),
                              initial_progress(list(specs.values())))
    first = store.claim_job(runner.worker_id)
    # its heartbeat went stale (the store was away while its deck thread went on): the
    # sweep hands it out again, to this same process
    assert store.requeue_stale(-1) == [job.id]
    again = store.claim_job(runner.worker_id)
    assert again.attempts == 2
    assert runner.run(again) == "done"
    assert runner.run(first) == "gone"  # the first run ends late: the job is not ended twice
    assert finished == [job.id]
    assert store.get_job(job.id).state == "done"


def test_a_route_gives_its_freed_slot_to_the_best_waiting_call():
    pacer = Pacer(None, None, 1, time.monotonic, time.sleep)
    pacer.acquire(1)  # the route is full
    order: list[str] = []

    def call(name: str, priority: int) -> None:
        pacer.acquire(1, priority=priority)
        order.append(name)
        pacer.release()

    threads = []
    for name, priority in (("batch-1", 1), ("batch-2", 1), ("person", 0), ("batch-3", 1)):
        threads.append(threading.Thread(target=call, args=(name, priority)))
        threads[-1].start()
        wait_for(lambda: pacer.load().waiting == len(threads), 10)
    assert pacer.load().waiting_by_priority == {1: 3, 0: 1}
    assert pacer.load().in_flight == 1
    pacer.release()
    for t in threads:
        t.join(10)
    assert order == ["person", "batch-1", "batch-2", "batch-3"]
    assert pacer.load().in_flight == 0 and pacer.load().waiting == 0


def test_a_call_that_gives_up_waiting_leaves_the_line():
    gate = SlotGate(1)
    assert gate.acquire()
    assert not gate.acquire(priority=0, timeout=0.05)  # gave up: out of the line
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(priority=1, timeout=10)))
    waiter.start()
    gate.release()
    waiter.join(10)
    assert got == [True]  # the one who gave up does not hold the line
    gate.release()
    with pytest.raises(ValueError):
        gate.release()


def test_admission_takes_decks_while_the_route_has_room_up_to_the_ceiling():
    load = {"self-hosted": RouteLoad(0, 4)}
    admission = Admission(lambda: load, ceiling=4, deck_sections=5)
    assert admission.room()  # nothing in generation
    admission.admit("a")
    # a deck on its way to an idle route of 4: 5 sections ready, 4 free slots
    assert admission.room()
    admission.admit("b")
    assert not admission.room()  # 10 ready: more than a deck's worth beyond 4 free slots
    assert admission.room(person=True)  # a person's deck is not held back by the load
    load["self-hosted"] = RouteLoad(4, 4, {1: 2})  # 4 in flight, 2 waiting
    for _ in range(4):
        admission.section_done("a")
    admission.sized("b", 2)
    assert admission.room()  # 1 + 2 sections of ours, 2 waiting: under a deck's worth
    admission.admit("c")
    # the routes would take a fourth batch deck, but the last one is kept for a person
    assert not admission.room()
    assert admission.room(person=True)
    admission.admit("person")
    assert not admission.room(person=True)  # the ceiling holds for everyone
    admission.ended("a")
    assert admission.decks == 3
    one = Admission(lambda: load, ceiling=1, deck_sections=5)
    assert one.room()  # a ceiling of one keeps nothing back
    one.admit("x")
    assert not one.room() and not one.room(person=True)


def test_the_ceiling_is_sized_from_the_routes_caps_unless_set(store, specs, cases, renderer,
                                                             tmp_path):
    assert default_ceiling([16]) == 18 and default_ceiling([8, 2], floor=20) == 20
    config = Config.from_env({"DECKGEN_SELF_HOSTED_CONCURRENCY": "12"})
    router = Router(lambda name: None, ["self-hosted"], limits=config.limits,  # type: ignore
                    table={"data": ("self-hosted", "openai")})
    generator = Generator(specs, cases, renderer, router)
    runner = JobRunner(store, Filler(generator), tmp_path, workers=2)
    assert runner.admission.ceiling == 12 + config.limits["openai"].concurrency + 2
    assert Config.from_env({"DECKGEN_MAX_DECKS_IN_FLIGHT": "3"}).max_decks_in_flight == 3
    assert Config.from_env({}).max_decks_in_flight is None
    with pytest.raises(ConfigError):
        Config.from_env({"DECKGEN_MAX_DECKS_IN_FLIGHT": "many"})
