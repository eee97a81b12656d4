"""All of deckgen's benchmarks; writes bench/RESULTS.md.   make bench   (or: python bench/run.py)

1. deck latency against its limit (the slowest section's model time) and our own overhead
2. sections one after another (the first version's way) against concurrently
3. batch throughput (.pptx and Slides decks) against a model capped at N streams, and the
   share of the batch the model server spent at its cap (`--only batch` runs just this)
4. service overhead: POST /v1/preview under gunicorn's default settings, zero-latency model
5. token budget fitting of a 100 KB brief, before and after counting the notes once
6. one deck on the embedded local model on this machine
8. `deckgen --help` start time, and deckgen's own time per deck (7 is bench/scheduler.py's)
Benchmarks are not tests: nothing here fails on a number."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from openai import OpenAI  # noqa: E402

from bench.model_server import PROFILES, ModelServer, Profile  # noqa: E402
from deckgen.brief import MAX_NOTES_BYTES, load_brief, parse_brief  # noqa: E402
from deckgen.budget import TiktokenCounter, fit_budget  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.container import make_generator  # noqa: E402
from deckgen.deck import generate_deck, generate_section  # noqa: E402
from deckgen.examples import select_examples  # noqa: E402
from deckgen.llm.client import ModelRoute  # noqa: E402
from deckgen.llm.local import free_port  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402
from deckgen.writers.pptx import write_pptx  # noqa: E402

BRIEF_FILE = ROOT / "examples" / "briefs" / "harbor-logistics.json"
WARMUP_FILE = ROOT / "examples" / "briefs" / "retail-bank-complaints.json"
OUT: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    OUT.append(line)


def table(head: list[str], rows: list[list[object]]) -> None:
    emit("| " + " | ".join(head) + " |")
    emit("|" + "|".join(" --- " for _ in head) + "|")
    for row in rows:
        emit("| " + " | ".join(str(c) for c in row) + " |")
    emit()


def generator_on(url: str, model: str = "bench", context: int = 8192):
    route = ModelRoute("self-hosted", model, context, TiktokenCounter("gpt-4o"),
                       OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600),
                       "json_schema")
    return make_generator(Config.from_env({}), Router(lambda n: route, ["self-hosted"]))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def deck_latency() -> None:
    emit("## 1. Deck latency against the limit\n")
    emit("The limit for one deck is its slowest section's model time; `ratio` = deck wall "
         "time / that. Overhead is deckgen's own time per deck (all five sections' example "
         "selection, rendering, token counting, parsing, and writing the .pptx).\n")
    brief = load_brief(BRIEF_FILE.read_text())
    rows, steps = [], []
    for name in ("gpt4-like", "vllm-like"):
        server = ModelServer(PROFILES[name]).start()
        gen = generator_on(server.url)
        specs = list(gen.specs.values())
        # warm up connections and templates on another brief: the measured deck's own
        # brief must not be in the token-count cache already
        generate_deck(gen, load_brief(WARMUP_FILE.read_text()), specs)
        deck = generate_deck(gen, brief, specs)
        start = time.perf_counter()
        write_pptx(deck, Path(tempfile.mkdtemp()) / "deck.pptx")
        writing = time.perf_counter() - start
        slowest = max(s.timings["model"] for s in deck.sections)
        sums = {k: sum(s.timings[k] for s in deck.sections)
                for k in ("select", "render", "count", "parse")}
        overhead = sum(sums.values()) + writing
        rows.append([name, f"{deck.seconds:.2f}", f"{slowest:.2f}",
                     f"{deck.seconds / slowest:.3f}", ms(overhead)])
        steps.append([name, *(ms(sums[k]) for k in ("select", "render", "count", "parse")),
                      ms(writing)])
        server.stop()
    table(["profile", "deck wall (s)", "slowest section's model time (s)", "ratio",
           "deckgen overhead (ms)"], rows)
    table(["profile", "select examples (ms)", "render prompts (ms)", "count tokens (ms)",
           "parse (ms)", "write .pptx (ms)"], steps)


def sequential_vs_concurrent() -> None:
    emit("## 2. Sequential against concurrent sections (gpt4-like)\n")
    brief = load_brief(BRIEF_FILE.read_text())
    server = ModelServer(PROFILES["gpt4-like"]).start()
    gen = generator_on(server.url)
    specs = list(gen.specs.values())
    start = time.perf_counter()
    for spec in specs:
        generate_section(gen, spec, brief)
    sequential = time.perf_counter() - start
    concurrent = generate_deck(gen, brief, specs).seconds
    server.stop()
    table(["mode", "deck wall (s)"], [["one section after another", f"{sequential:.2f}"],
                                      ["concurrent", f"{concurrent:.2f}"],
                                      ["speed-up", f"{sequential / concurrent:.2f}x"]])


class LoggedServer(ModelServer):
    """The bench model server, also logging when each request starts and ends, so the time
    at its cap is measured between the first request and the last one."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.log: list[tuple[float, int, int]] = []  # (time, change, in flight after it)

    def _busy(self, delta: int) -> None:
        super()._busy(delta)
        with self.lock:
            self.log.append((time.monotonic(), delta, self.in_flight))

    def share_at_cap(self) -> float:
        with self.lock:
            log = list(self.log)
        starts = [t for t, delta, _ in log if delta > 0]
        first, last = starts[0], starts[-1]
        at_cap, since = 0.0, None
        for t, _, n in log:
            t = min(max(t, first), last)
            if since is not None:
                at_cap += t - since
                since = None
            if n >= self.profile.concurrency:
                since = t
        return at_cap / (last - first) if last > first else 0.0


def _serve_logged(profile: Profile, conn: Any) -> None:
    """In a process of its own: a LoggedServer until told to stop, then its measures."""
    server = LoggedServer(profile)
    server.start()
    conn.send(server.url)
    conn.recv()
    server.stop()
    conn.send((server.share_at_cap(), server.saturated_seconds(), server.requests))


class ServerProcess:
    """The bench model server in a process of its own, so its CPU (tokenizing answers,
    HTTP) does not take the GIL from the deckgen process being measured."""

    def __init__(self, profile: Profile) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve_logged, args=(profile, child),
                                       daemon=True)
        self.process.start()
        self.url: str = self.conn.recv()

    def stop(self) -> tuple[float, float, int]:
        """(share at its cap first to last request, seconds at its cap, requests)."""
        self.conn.send("stop")
        measures: tuple[float, float, int] = self.conn.recv()
        self.process.join(10)
        return measures


def _decks_in_flight(runner: object) -> int:
    """Decks in generation (a runner from before deckgen/admission.py: not counted, 0)."""
    admission = getattr(runner, "admission", None)
    return admission.decks if admission is not None else 0


def batch_run(decks: int, cap: int, workers: int, route_cap: int | None,
              target: str = "pptx") -> list[object]:
    """One batch of `decks` decks (.pptx, or into the fake Slides server) through POST
    /v1/batches, the model server in its own process; its table row."""
    from deckgen.api import create_app
    from deckgen.auth import new_key
    from deckgen.jobs import initial_progress
    from deckgen.store import Store
    from tests.fake_google import FakeGoogle
    from tests.slides_fixtures import realistic_template

    tmp = Path(tempfile.mkdtemp(prefix="deckgen-bench-"))
    google = FakeGoogle().start()
    sa = tmp / "sa.json"
    sa.write_text(json.dumps(google.service_account_info()))
    ids = [google.add_presentation(realistic_template(), owner_token="service-account")
           for _ in range(decks if target == "slides" else 0)]
    profile = Profile(PROFILES["vllm-like"].ttft, PROFILES["vllm-like"].tps, cap)
    server = ServerProcess(profile)
    env = {"DECKGEN_OUTPUT_DIR": str(tmp / "decks"), "DECKGEN_WORKERS": str(workers),
           "GOOGLE_APPLICATION_CREDENTIALS": str(sa), "DECKGEN_GOOGLE_API_ENDPOINT": google.url,
           "DECKGEN_DRIVE_API_ENDPOINT": google.url,
           "DECKGEN_SLIDES_WRITES_PER_MINUTE": "1000000"}
    if route_cap:
        env["DECKGEN_SELF_HOSTED_CONCURRENCY"] = str(route_cap)
    config = Config.from_env(env)
    route = ModelRoute("self-hosted", "bench", 8192, TiktokenCounter("gpt-4o"),
                       OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=600),
                       "json_schema")
    store = Store(str(tmp / "db.sqlite3"))
    # the self-hosted route's production limits (16 requests in flight unless route_cap)
    router = Router(lambda n: route, ["self-hosted"], limits=config.limits)
    app = create_app(config, store=store, router=router)
    runner = app.extensions["deckgen"]["runner"]
    api_key, digest = new_key()
    store.add_key("bench", digest)
    headers = {"Authorization": f"Bearer {api_key}"}
    client = app.test_client()
    brief = {"client": "Harbor Logistics", "notes": "Trucks queue at the gates."}
    peak = [0]
    start = time.monotonic()
    if target == "slides":
        batch = client.post("/v1/batches", headers=headers, json={"items": [
            {"presentation_id": d, "brief": brief} for d in ids]}).get_json()["id"]
    else:  # POST /v1/batches takes Slides decks only: the same batch, made in the store
        request = {"brief": brief, "sections": None, "route": "auto", "keep_edits": False,
                   "target": "pptx"}
        progress = initial_progress(list(runner.generator.specs.values()))
        batch = store.create_batch_with_jobs("bench", [(request, progress, None)] * decks)[0]
    while True:
        lane = store.lane_stats()["batch"]
        if sum(lane[k] for k in ("queued", "generating", "generated", "writing")) == 0:
            break
        for _ in range(4):
            peak[0] = max(peak[0], _decks_in_flight(runner))
            time.sleep(0.05)
    wall = time.monotonic() - start
    done = sum(job.state == "done" for job in store.get_batch(batch)[1])
    runner.stop()
    share, saturated, requests_served = server.stop()
    google.stop()
    return [target, workers, config.limits["self-hosted"].concurrency,
            getattr(getattr(runner, "admission", None), "ceiling", f"{workers} (one per worker)"),
            peak[0], decks, done, f"{wall:.1f}", f"{decks / wall * 60:.1f}",
            requests_served, f"{share:.0%}", f"{saturated / wall:.0%}"]


def batch_throughput(decks: int, cap: int, settings: list[tuple[int, int | None]],
                     targets: list[str]) -> None:
    emit(f"## 3. Batch throughput: {decks} decks through POST /v1/batches\n")
    rows = [batch_run(decks, cap, workers, route_cap, target) for target in targets
            for workers, route_cap in settings]
    emit(f"Model: vllm-like ({PROFILES['vllm-like'].ttft} s to first token, "
         f"{PROFILES['vllm-like'].tps:.0f} tok/s per stream), capped at {cap} concurrent "
         "streams, in a process of its own; decks written as .pptx (model-bound) or to the "
         "fake Slides server (in this process). Sections are scheduled across "
         "decks (deckgen/admission.py): a worker takes another deck while the route has "
         "fewer than one deck's worth of sections waiting beyond its free slots, up to the "
         "ceiling (DECKGEN_MAX_DECKS_IN_FLIGHT; default: the routes' caps + 2, the last deck "
         "kept for a person's). `at its cap` "
         "is the share of the time between the first and the last model request that the "
         "server served its cap; `over the wall` is the old measure (at cap / whole batch "
         "wall time, from POST to the last deck written).\n")
    table(["output", "workers", "route concurrency", "decks in flight, ceiling", "decks in flight, "
           "peak", "decks", "done", "wall (s)", "decks / minute", "model requests",
           "server at its cap (first to last request)", "at its cap over the wall"], rows)


def service_overhead(seconds: float, clients: int) -> None:
    emit("## 4. Service overhead: POST /v1/preview under gunicorn, zero-latency model\n")
    server = ModelServer(PROFILES["zero"]).start()
    tmp = Path(tempfile.mkdtemp(prefix="deckgen-svc-"))
    env = {**os.environ, "DECKGEN_DATABASE_URL": str(tmp / "db.sqlite3"),
           "DECKGEN_SELF_HOSTED_URL": server.url, "DECKGEN_SELF_HOSTED_MODEL": "zero",
           "DECKGEN_OUTPUT_DIR": str(tmp / "decks")}
    key = subprocess.run([sys.executable, "-m", "deckgen.cli", "keys", "create", "bench"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    gunicorn = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
         "deckgen.api:create_app()"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=open(tmp / "gunicorn.log", "wb"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(f"{url}/healthz", timeout=5).ok:
                break
        except requests.RequestException:  # not listening yet, or still importing
            time.sleep(0.1)
    body = {"brief": {"client": "Harbor Logistics", "notes": "Trucks queue at the gates."}}
    headers = {"Authorization": f"Bearer {key}"}
    requests.post(f"{url}/v1/preview", json=body, headers=headers, timeout=60)  # warm
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            t = time.perf_counter()
            answer = session.post(f"{url}/v1/preview", json=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - t
            if answer.status_code == 200:
                with lock:
                    latencies.append(elapsed)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    gunicorn.terminate()
    gunicorn.wait(10)
    server.stop()
    lat = sorted(latencies)

    def q(p: float) -> str:
        return ms(lat[min(len(lat) - 1, int(p * len(lat)))])

    emit(f"gunicorn with its defaults (1 sync worker), {clients} client threads for "
         f"{seconds:.0f} s; each preview writes all five sections (five model calls).\n")
    table(["requests", "requests / s", "p50 (ms)", "p95 (ms)", "p99 (ms)"],
          [[len(lat), f"{len(lat) / wall:.1f}", q(0.5), q(0.95), q(0.99)]])


def budget_fitting(repeats: int) -> None:
    emit("## 5. Token budget fitting of a 100 KB brief\n")
    from deckgen import budget
    from deckgen.llm import tokens
    from deckgen.llm.local import LlamaCounter
    from tests.test_budget import recounting_fit

    config = Config.from_env({})
    gen = generator_on("http://127.0.0.1:9/v1")
    specs = list(gen.specs.values())

    def brief_of(line: str):
        notes = (line * (MAX_NOTES_BYTES // len(line) + 1))[:MAX_NOTES_BYTES]
        brief = parse_brief({"client": "Harbor Logistics", "industry": "Logistics",
                             "notes": notes})
        return brief, {s.name: [c.case for c in select_examples(brief, gen.cases, s.name)]
                       for s in specs}

    measured = brief_of("Discovery call: dispatch rebuilds the plan in Excel each morning "
                        "because the TMS plan is stale; carriers miss slots, detention fees "
                        "grow at the DCs. ")
    # "warm": another 100 KB brief was fitted first, so the instructions and examples are
    # already counted, as they are from a process's second deck on
    other = brief_of("Site visit: the yard has 40 doors, gate check-in takes 12 minutes, and "
                     "drivers wait for paper bills of lading before unloading. ")
    for spec in specs:  # compile the templates outside the timings
        gen.renderer.render_prompt(spec, other[0], [])

    def fit_deck(fit, counter, context: int, brief_examples) -> list[int]:
        brief, examples = brief_examples
        return [fit(lambda ex, b, spec=spec: gen.renderer.render_prompt(spec, b, ex), brief,
                    examples[spec.name], counter,
                    min(spec.max_prompt_tokens, context - spec.max_completion_tokens))
                .prompt_tokens for spec in specs]

    def new_counter(kind: str):
        tokens._token_count.cache_clear()  # tiktoken's per-text cache: start cold
        budget._HEADS.clear()
        if kind == "tiktoken":
            return TiktokenCounter("gpt-4o")
        return LlamaCounter(config.local_model_path)  # its own cache starts empty

    rows = []
    for label, kind, context in (
            ("gpt-4o (tiktoken o200k), context 128000", "tiktoken", 128000),
            (f"local SmolLM2 (llama.cpp vocab), context {config.local_context}", "llama",
             config.local_context),
            ("local SmolLM2 (llama.cpp vocab), context 2048", "llama", 2048)):
        cells: list[object] = [label]
        for fit in (recounting_fit, fit_budget):
            for warm in (False, True):
                times = []
                for _ in range(repeats):
                    counter = new_counter(kind)
                    if warm:
                        fit_deck(fit, counter, context, other)
                    start = time.perf_counter()
                    fitted = fit_deck(fit, counter, context, measured)
                    times.append(time.perf_counter() - start)
                cells.append(ms(sorted(times)[len(times) // 2]))
        counter = new_counter(kind)
        tracemalloc.start()
        fit_deck(fit_budget, counter, context, measured)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        cells += [f"{peak / 2**20:.1f}", f"{min(fitted)}-{max(fitted)}"]
        rows.append(cells)
    emit(f"Five sections' `fit_budget` (example selection not included), median of {repeats} "
         "runs, each with a fresh counter. Before: every search step counts the whole prompt "
         "(`recounting_fit` in tests/test_budget.py, the previous algorithm). After: the notes "
         "are counted once, piece by piece as far as the budget reaches, the cut is bisected "
         "on those counts, and whole prompts are counted only where it lands (3 per section "
         "here: no notes, the cut, one word more). llama.cpp prompts are counted in parts "
         "between special tokens, and the parts seen before (instructions, examples) come "
         "from a cache. Cold: nothing counted yet in the process; "
         "warm: another 100 KB brief was fitted first.\n")
    table(["counter", "before, cold (ms)", "before, warm (ms)", "after, cold (ms)",
           "after, warm (ms)", "after: peak Python memory (MiB)",
           "prompt tokens after fitting"], rows)


def start_and_overhead(repeats: int) -> None:
    emit("## 8. CLI start and deckgen's own time per deck\n")
    cli = Path(sys.executable).parent / "deckgen"
    runs = {"`deckgen --help`": [str(cli), "--help"],
            "`python -c pass` (the interpreter alone)": [sys.executable, "-c", "pass"]}
    rows = []
    for label, command in runs.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        times.sort()
        rows.append([label, f"{times[len(times) // 2]:.3f}", f"{times[0]:.3f}",
                     f"{times[-1]:.3f}"])
    table(["command", "median (s)", "fastest (s)", "slowest (s)"], rows)
    server = ModelServer(PROFILES["zero"]).start()
    gen = generator_on(server.url)
    specs = list(gen.specs.values())
    generate_deck(gen, load_brief(WARMUP_FILE.read_text()), specs)
    briefs = sorted((ROOT / "examples" / "briefs").glob("*.json"))
    rows = []
    for mode in ("sections one after another", "sections concurrently (generate_deck)"):
        fitting, selecting = [], []
        for i in range(repeats):
            brief = load_brief(briefs[i % len(briefs)].read_text())
            if mode.startswith("sections one"):
                sections = [generate_section(gen, spec, brief) for spec in specs]
            else:
                sections = generate_deck(gen, brief, specs).sections
            fitting.append(sum(s.timings[k] for s in sections
                               for k in ("render", "count", "parse")))
            selecting.append(sum(s.timings["select"] for s in sections))
        fitting.sort()
        rows.append([mode, repeats, ms(fitting[len(fitting) // 2]), ms(fitting[0]),
                     ms(fitting[-1]), ms(sorted(selecting)[len(selecting) // 2])])
    server.stop()
    emit("Per deck on a zero-latency fake model with tiktoken counting (gpt-4o's o200k): "
         "rendering, token counting and fitting, and parsing, summed over the five "
         "sections; model time not included; decks over the example briefs after one "
         "warm-up deck. Example selection is shown apart. Run concurrently, a section's "
         "timings also hold the time it waits for the GIL while the other four work, so "
         "those sums overstate the work; one after another they are deckgen's own time.\n")
    table(["mode", "decks", "render + count + fit + parse, median (ms)", "fastest (ms)",
           "slowest (ms)", "example selection, median (ms)"], rows)


def local_model() -> None:
    emit("## 6. One deck on the embedded local model\n")
    config = Config.from_env({})
    router = Router.from_config(config)
    try:
        start = time.perf_counter()
        router.route("local")
        ready = time.perf_counter() - start
        gen = make_generator(config, router)
        deck = generate_deck(gen, load_brief(BRIEF_FILE.read_text()),
                             list(gen.specs.values()))
    finally:
        router.close()
    table(["model start (s)", "deck (s)", "slowest section (s)", "sum of sections (s)",
           "completion tokens"],
          [[f"{ready:.1f}", f"{deck.seconds:.1f}",
            f"{max(s.seconds for s in deck.sections):.1f}",
            f"{sum(s.seconds for s in deck.sections):.1f}",
            sum(s.completion_tokens for s in deck.sections)]])
    emit("llama.cpp's server runs one request at a time: the sections queue for it, each "
         "section's seconds include that wait, and the deck takes the sum of the model "
         "times, not the slowest one.\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decks", type=int, default=200)
    parser.add_argument("--cap", type=int, default=16)
    parser.add_argument("--workers", type=int, action="append",
                        help="deck workers for section 3, one run each (default: 4)")
    parser.add_argument("--target", choices=["pptx", "slides"], action="append",
                        help="section 3: decks written as .pptx and/or into fake Slides "
                             "(default: both)")
    parser.add_argument("--route-concurrency", type=int, action="append",
                        help="section 3: the route's concurrency for each run (default: the "
                             "route's production limit, the server's cap of 16)")
    parser.add_argument("--load-seconds", type=float, default=15)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs per measurement in sections 5 and 8 (medians reported)")
    parser.add_argument("--only", choices=["fit", "start", "batch"], action="append",
                        help="run just these sections and print them (RESULTS.md untouched)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    workers = args.workers or [4]
    route_caps = args.route_concurrency or [None] * len(workers)
    batch_settings = list(zip(workers, route_caps, strict=True))
    targets = args.target or ["pptx", "slides"]
    if args.only:
        if "batch" in args.only:
            batch_throughput(args.decks, args.cap, batch_settings, targets)
        if "fit" in args.only:
            budget_fitting(args.repeats)
        if "start" in args.only:
            start_and_overhead(args.repeats)
        return
    started = time.monotonic()
    emit("# deckgen benchmark results\n")
    emit(f"Written by `make bench` (`python bench/run.py`) on "
         f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, "
         f"{os.cpu_count()} CPUs, Python {platform.python_version()}. The model servers are "
         "bench/model_server.py on 127.0.0.1 unless said otherwise.\n")
    deck_latency()
    sequential_vs_concurrent()
    batch_throughput(args.decks, args.cap, batch_settings, targets)
    service_overhead(args.load_seconds, 8)
    budget_fitting(args.repeats)
    if not args.skip_local:
        local_model()
    start_and_overhead(args.repeats)
    emit(f"All benchmarks took {time.monotonic() - started:.0f} s.")
    results = ROOT / "bench" / "RESULTS.md"
    new = "\n".join(OUT) + "\n"
    kept = kept_sections(results.read_text() if results.exists() else "", new)
    results.write_text(new + "".join("\n" + block for block in kept))


def kept_sections(old: str, new: str) -> list[str]:
    """The sections of the previous RESULTS.md this run does not write (the other benches'
    and the hand-measured ones: a heading not in `new`), in their order, so that `make
    bench` refreshes its own numbers without erasing theirs."""
    blocks: list[list[str]] = []
    for line in old.splitlines():
        if line.startswith(("## ", "### ")):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    return ["\n".join(block).rstrip() + "\n" for block in blocks if block[0] not in new]


if __name__ == "__main__":
    main()
