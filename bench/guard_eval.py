"""The grounding guard (deckgen/guard.py) measured end to end through `deckgen eval` (issue 19).

    .venv/bin/python bench/guard_eval.py [--local N] [--profile gpt4-like] [--out DIR]
                                         [--reuse] [--skip-local] [--cost-runs 3]

(a) A fake GPT-4: an OpenAI-compatible server on 127.0.0.1 that answers every section of a
    solved case with that case's own reference section (grounded by construction), found by
    the client named in the prompt's brief turn. Variants:
      clean     the reference as it is (plants nothing: the guard must flag nothing);
      planted   one item of every section carries another solved case's contact name, its
                company, one of its figures and an invented figure; the grounding repair turn
                ("Your answer states things the brief does not support") gets the clean
                reference, as a model that follows the repair prompt would write it;
      stubborn  as planted, and the repair turn's answer plants them again (the guard must
                drop the item);
      everywhere  as stubborn, in every item and the title (nothing to drop: the guard must
                flag, cutting the foreign facts out and marking the invented figure).
    Each runs `deckgen eval --routes openai` (OPENAI_API_KEY=anything, OPENAI_BASE_URL=the
    fake) with the guard on; planted runs once more with DECKGEN_GROUNDING=0 to show what
    leaks without it. Answers are delayed like bench/model_server.py's profile (gpt4-like:
    0.8 s to the first token, 40 tokens/s). The fake logs every request, so the extra model
    turns the guard asked for are counted and timed.
(b) `deckgen eval --routes local --limit N` on the embedded llama.cpp model, guard on and off
    (DECKGEN_TEMPERATURE=0 for both, so the two runs see the same first answers).
(c) The guard's own cost: bench/grounding.py run `--cost-runs` times (its (a) false alarms on
    the solved cases and its (c) milliseconds per `check()`), medians across runs.

Prints Markdown tables (bench/RESULTS.md section 9) and writes DIR/summary.json."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tiktoken  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

from bench.grounding import INVENTED, _brief_quantities, _foreign_figure, _supported  # noqa: E402
from bench.model_server import PROFILES, Profile  # noqa: E402
from deckgen.budget import BUNDLED_TIKTOKEN  # noqa: E402
from deckgen.examples import Case, load_cases  # noqa: E402
from deckgen.sections import SectionSpec, load_specs  # noqa: E402

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

DECKGEN = [str(ROOT / ".venv" / "bin" / "deckgen")]
GROUND_TURN = "does not support"  # prompts/_ground.j2
MODES = ("clean", "planted", "stubborn", "everywhere")


@dataclass
class Logged:
    case: str
    section: str
    turn: str  # first | ground | other (schema repair, shorten)
    seconds: float
    prompt_tokens: int
    completion_tokens: int


def _fit(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:")


class FakeGPT4:
    """Answers each section with the solved case's reference section, planted or not."""

    def __init__(self, cases: list[Case], specs: dict[str, SectionSpec], profile: Profile,
                 mode: str = "clean") -> None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(BUNDLED_TIKTOKEN))
        self.cases, self.specs, self.profile, self.mode = cases, specs, profile, mode
        self.encoding = tiktoken.get_encoding("o200k_base")
        self.log: list[Logged] = []
        self.lock = threading.Lock()
        self.plants = {c.id: self._plant_for(i, c) for i, c in enumerate(cases)}
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def start(self) -> FakeGPT4:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _plant_for(self, i: int, case: Case) -> dict[str, str]:
        """Another case's contact, company and figure, and an invented figure this brief
        does not support (the same choice as bench/grounding.py's (b))."""
        other = self.cases[(i + 1) % len(self.cases)]
        own = _brief_quantities(case)
        planted = {"person": other.brief.contacts[0].name.split(",")[0],
                   "company": other.brief.client, "other": other.id,
                   "figure": next(f for f in INVENTED if not _supported(f, own))}
        foreign = _foreign_figure(other, own)
        if foreign:
            planted["foreign_figure"] = foreign
        return planted

    def _case(self, messages: list[dict[str, str]]) -> Case:
        """The case whose brief the request is about: the last user turn naming a client
        that is not a follow-up (a repair turn may name another client's facts)."""
        for m in reversed(messages):
            if m["role"] != "user" or GROUND_TURN in m["content"]:
                continue
            named = [c for c in self.cases if c.brief.client in m["content"]]
            if named:
                return max(named, key=lambda c: len(c.brief.client))
        raise LookupError("no solved case's client in the prompt")

    def content(self, case: Case, section: str, plant: bool) -> dict[str, Any]:
        reference = json.loads(json.dumps(case.sections[section]))
        if not plant:
            return reference
        spec, p = self.specs[section], self.plants[case.id]
        items = reference[spec.list_key]
        targets = [1 if len(items) > 1 else 0]
        if self.mode == "everywhere":
            targets = list(range(len(items)))
            reference["title"] = _fit(f"{p['company']}: {reference['title']}", spec.title_chars)
        for target in targets:
            self._plant(spec, items, target, p)
        return reference

    @staticmethod
    def _plant(spec: SectionSpec, items: list[Any], target: int, p: dict[str, str]) -> None:
        figures = " and ".join(p[k] for k in ("figure", "foreign_figure") if k in p)
        item = items[target]
        if isinstance(item, str):
            items[target] = _fit(f"{p['person']} of {p['company']} saw {figures}; {item}",
                                 spec.item_chars or 120)
        else:
            fields = spec.item_fields or {}
            last = list(fields)[-1]
            item = dict(item)
            if "name" in item:
                item["name"] = _fit(p["person"], fields["name"])
                item[last] = _fit(f"{p['company']} saw {figures}; {item[last]}", fields[last])
            else:
                item[last] = _fit(f"{p['person']} of {p['company']} saw {figures}; "
                                  f"{item[last]}", fields[last])
            items[target] = item

    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.path.rstrip("/").endswith("/models"):
            return Response(json.dumps({"data": [{"id": "gpt-4o"}]}),
                            content_type="application/json")
        start = time.monotonic()
        body = json.loads(request.get_data())
        messages = body["messages"]
        section = body["response_format"]["json_schema"]["name"]
        case = self._case(messages)
        last = messages[-1]["content"]
        turn = "ground" if GROUND_TURN in last else (
            "first" if case.brief.client in last else "other")  # schema repair, shorten
        plant = self.mode in ("stubborn", "everywhere") or (self.mode == "planted" and
                                                             turn == "first")
        text = json.dumps(self.content(case, section, plant), ensure_ascii=False)
        completion = len(self.encoding.encode(text))
        prompt = sum(len(self.encoding.encode(m["content"])) for m in messages)
        time.sleep(self.profile.ttft + completion / self.profile.tps)
        with self.lock:
            self.log.append(Logged(case.id, section, turn, time.monotonic() - start, prompt,
                                   completion))
        return Response(json.dumps({
            "id": "fake", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}), content_type="application/json")


def run_eval(out: Path, env: dict[str, str], args: list[str], reuse: bool) -> dict[str, Any]:
    """`deckgen eval ARGS --out OUT` in a clean process; its report.json."""
    report = out / "report.json"
    if not (reuse and report.is_file()):
        command = [*DECKGEN, "eval", *args, "--out", str(out)]
        print("$ " + " ".join(f"{k}={v}" for k, v in env.items()) + " deckgen "
              + " ".join(command[1:]), file=sys.stderr, flush=True)
        start = time.monotonic()
        done = subprocess.run(command, env={**os.environ, **env}, cwd=ROOT,
                              capture_output=True, text=True)
        (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"deckgen eval failed ({done.returncode}):\n{done.stderr[-3000:]}")
        print(f"  took {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return json.loads(report.read_text())


def columns(report: dict[str, Any]) -> dict[str, Any]:
    """What the report says, summed over every section of every case."""
    rows = report["rows"]

    def total(metric: str) -> float:
        return sum(r.get(metric) or 0.0 for r in rows)

    leaky = sorted({f"{r['case']}/{r['section']}" for r in rows if r.get("leaked")})
    return {"sections": len(rows), "valid": total("valid"),
            "leaked": total("leaked"), "sections_leaking": len(leaky), "leaking": leaky,
            "ungrounded_rate": statistics.fmean(r["ungrounded_rate"] for r in rows),
            "repaired": total("guard_repaired"), "dropped": total("guard_dropped"),
            "flagged": total("guard_flagged"),
            "seconds_per_section": statistics.fmean(r["seconds"] for r in rows),
            "seconds_per_section_median": statistics.median(r["seconds"] for r in rows),
            "models": sorted({r["model"] for r in rows if r.get("model")}),
            "cases": report["cases"], "code_version": report["code_version"]}


def turns(log: list[Logged]) -> dict[str, Any]:
    ground = [entry for entry in log if entry.turn == "ground"]
    return {"requests": len(log), "first": sum(e.turn == "first" for e in log),
            "ground_turns": len(ground),
            "other_turns": sum(e.turn == "other" for e in log),
            "ground_seconds_total": sum(e.seconds for e in ground),
            "ground_seconds_mean": statistics.fmean(e.seconds for e in ground) if ground else 0,
            "ground_prompt_tokens_mean": statistics.fmean(e.prompt_tokens for e in ground)
            if ground else 0}


def fake_gpt4(cases: list[Case], specs: dict[str, SectionSpec], profile: Profile,
              out: Path, reuse: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, mode, guard in (("clean", "clean", "1"), ("planted", "planted", "1"),
                              ("stubborn", "stubborn", "1"),
                              ("everywhere", "everywhere", "1"), ("planted, guard off",
                                                              "planted", "0")):
        server = FakeGPT4(cases, specs, profile, mode).start()
        try:
            folder = out / f"openai-{mode}-guard{guard}"
            report = run_eval(folder, {"OPENAI_API_KEY": "anything",
                                       "OPENAI_BASE_URL": server.url,
                                       # the fake has no quota: pacing to OpenAI's default
                                       # 30k TPM would only add waits
                                       "DECKGEN_OPENAI_TPM": "off", "DECKGEN_OPENAI_RPM": "off",
                                       "DECKGEN_GROUNDING": guard},
                              ["--routes", "openai"], reuse)
        finally:
            server.stop()
        log = server.log
        if reuse and not log and (folder / "requests.json").is_file():
            log = [Logged(**e) for e in json.loads((folder / "requests.json").read_text())]
        else:
            (folder / "requests.json").write_text(json.dumps([e.__dict__ for e in log]))
        results[name] = {**columns(report), **turns(log)}
    results["plants"] = FakeGPT4(cases, specs, profile).plants
    return results


def local(n: int, out: Path, reuse: bool) -> dict[str, Any]:
    results = {}
    for guard in ("1", "0"):
        report = run_eval(out / f"local-guard{guard}",
                          {"DECKGEN_GROUNDING": guard, "DECKGEN_TEMPERATURE": "0"},
                          ["--routes", "local", "--limit", str(n)], reuse)
        results["guard on" if guard == "1" else "guard off"] = columns(report)
    return results


_ROW = re.compile(r"^\| (.+?) \| (.+?) \| (.+?) \|$")


def guard_cost(runs: int) -> dict[str, Any]:
    """bench/grounding.py `runs` times: its table rows, timings as medians across runs."""
    tables: list[dict[str, str]] = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "grounding.py")],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        tables.append({m.group(1): m.group(2) for line in done.stdout.splitlines()
                       if (m := _ROW.match(line)) and m.group(1) not in ("measure", "---")})
    out: dict[str, Any] = {"runs": runs, "rows": tables[-1]}
    for label in tables[-1]:
        if label.startswith("(c)"):
            values = [[float(v) for v in t[label].split(" / ")] for t in tables]
            out[label] = [statistics.median(col) for col in zip(*values, strict=True)]
            out[label + " (all runs)"] = [t[label] for t in tables]
    return out


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| run | sections | leaked (claims) | sections leaking | ungrounded (mean) | "
             "repaired | dropped | flagged | extra model turns (guard) | seconds / section "
             "(mean) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in summary.get("openai", {}).items():
        if name == "plants":
            continue
        lines.append(f"| fake GPT-4, {name} | {r['sections']} | {r['leaked']:.0f} | "
                     f"{r['sections_leaking']} | {r['ungrounded_rate']:.3f} | "
                     f"{r['repaired']:.0f} | {r['dropped']:.0f} | {r['flagged']:.0f} | "
                     f"{r['ground_turns']} ({r['ground_seconds_total']:.1f} s) | "
                     f"{r['seconds_per_section']:.2f} |")
    for name, r in summary.get("local", {}).items():
        lines.append(f"| local (embedded), {name} | {r['sections']} | {r['leaked']:.0f} | "
                     f"{r['sections_leaking']} | {r['ungrounded_rate']:.3f} | "
                     f"{r['repaired']:.0f} | {r['dropped']:.0f} | {r['flagged']:.0f} | "
                     f"0 | {r['seconds_per_section']:.2f} |")
    cost = summary.get("cost")
    if cost:
        lines += ["", "| bench/grounding.py | result |", "| --- | --- |"]
        for label, value in cost["rows"].items():
            shown = value
            if label.startswith("(c)"):
                shown = " / ".join(f"{v:.2f}" for v in cost[label]) + \
                    f" (median of {cost['runs']} runs: {'; '.join(cost[label + ' (all runs)'])})"
            lines.append(f"| {label} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local", type=int, default=3, metavar="N",
                        help="cases for the local route (default 3: ~1 min each here)")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpt4-like")
    parser.add_argument("--cost-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/guard_eval"))
    parser.add_argument("--reuse", action="store_true",
                        help="read a run's report.json from --out where it exists")
    args = parser.parse_args()
    specs = load_specs(ROOT / "prompts")
    cases = load_cases(ROOT / "examples", specs)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    summary: dict[str, Any] = {"profile": args.profile,
                               "load_before": os.getloadavg()}
    summary["openai"] = fake_gpt4(cases, specs, PROFILES[args.profile], args.out, args.reuse)
    if not args.skip_local:
        summary["local"] = local(args.local, args.out, args.reuse)
    summary["cost"] = guard_cost(args.cost_runs)
    summary["load_after"] = os.getloadavg()
    summary["seconds"] = time.monotonic() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(markdown(summary))
    print(f"\nload average before {summary['load_before']}, after {summary['load_after']}; "
          f"{summary['seconds']:.0f} s; {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
