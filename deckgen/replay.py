"""`deckgen eval --replay`: what production wrote, written again by a new route, model or
prompt variant, and the two side by side in the same kind of report `deckgen eval` writes.

Every generation a job made is in the store (deckgen/store/generations.py: section, route,
model, policy, prompt, output, tokens, seconds), and the job holds the brief it came from.
Replay picks the newest recorded briefs (`since`, `limit`), runs each again through each
variant, and scores both answers with evaluation.py's own metric functions: validity, fit to
the section's limits, grounding (ungrounded names and numbers), leaked (other clients'
facts on the slide), length, tokens and cost. The recorded answer is the reference for the
new one's ROUGE-L. A brief that was confidential (by the policy recorded with its
generations, or by today's configuration) is replayed on internal routes only: a variant
whose route could send it outside is skipped for it, and the report counts and says so.

Replay does not know the template boxes the recorded sections were fitted to, so both
answers are measured against the section's own limits; and the guard's actions and the
repair rate of the recorded run were not recorded, so their old cells are empty."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deckgen.brief import MARKABLE, Brief, parse_brief
from deckgen.content import SectionResult
from deckgen.deck import Generator, generate_deck
from deckgen.errors import DeckgenError
from deckgen.evaluation import (
    LABELS,
    Variant,
    code_version,
    guard_metrics,
    metrics_in,
    prompts_digest,
    section_metrics,
    summarise,
    write_files,
)
from deckgen.examples import Case
from deckgen.grounding import Grounding
from deckgen.prices import Prices, cost_usd
from deckgen.privacy import EXTERNAL_ROUTES, INTERNAL_ONLY, OPEN
from deckgen.sections import SectionSpec

RECORDED = "recorded"
LENGTH = ("items", "chars")
LENGTH_LABELS = {"items": "items", "chars": "length, characters (title and items)"}
NOT_RECORDED = ("repaired", "guard_repaired", "guard_dropped", "guard_flagged", "rouge_l")


@dataclass
class Recorded:
    """One brief as production ran it: the job, its brief (privacy applied) and the newest
    generation of each section."""

    job_id: str
    owner: str
    brief: Brief
    confidential: bool
    created_at: float
    sections: dict[str, dict[str, Any]]  # section -> its generation row, opened


def recorded_briefs(store: Any, privacy: Any, since: float | None = None,
                    limit: int | None = None) -> tuple[list[Recorded], int]:
    """The newest recorded briefs first (at most `limit`, generated at or after `since`,
    epoch seconds), and how many were left out because they were purged."""
    query = ("SELECT job_id, MAX(created_at) AS newest FROM generations WHERE job_id IS NOT "
             "NULL AND created_at >= ? GROUP BY job_id ORDER BY newest DESC, job_id")
    with store.tx(readonly=True) as cur:
        cur.execute(query, (since or 0.0,))
        jobs = [(r["job_id"], float(r["newest"])) for r in cur.fetchall()]
    out: list[Recorded] = []
    purged = 0
    for job_id, at in jobs:
        if limit is not None and len(out) >= limit:
            break
        job = store.get_job(job_id)
        rows = [r for r in store.generations(job_id) if r["output"] is not None or
                r["status"] == "failed"]
        if job.request.get("purged") or "brief" not in job.request or not rows:
            purged += 1
            continue
        newest: dict[str, dict[str, Any]] = {}
        for row in sorted(rows, key=lambda r: r["created_at"]):
            newest[row["section"]] = {**row, "prompt": json.loads(row["prompt"] or "[]"),
                                      "output": json.loads(row["output"] or "null")}
        brief = privacy.apply(parse_brief(job.request["brief"]), job.owner)
        was_confidential = any(r["policy"] != OPEN for r in newest.values())
        if was_confidential and not brief.is_confidential:
            brief = brief.marked(frozenset(MARKABLE))  # confidential then: confidential now
        out.append(Recorded(job_id, job.owner, brief, brief.is_confidential, at, newest))
    return out, purged


def _as_result(spec: SectionSpec, row: dict[str, Any]) -> SectionResult:
    content = row["output"] if isinstance(row["output"], dict) else None
    return SectionResult(spec.name, spec.label, status=row["status"], content=content,
                         lines=spec.lines(content) if content else [], route=row["route"],
                         model=row["model"], prompt_tokens=int(row["prompt_tokens"] or 0),
                         completion_tokens=int(row["completion_tokens"] or 0),
                         seconds=float(row["seconds"] or 0.0), policy=row["policy"],
                         prompt_messages=row["prompt"] or [])


def _metrics(spec: SectionSpec, result: SectionResult, record: Recorded,
             reference: dict[str, Any] | None, index: Grounding, scorer: Any,
             prices: Prices) -> dict[str, Any]:
    """evaluation.py's metrics for one answer; the recorded answer is the reference."""
    case = Case(f"replay:{record.job_id}", record.brief,
                {spec.name: reference or {"title": "", spec.list_key: []}})
    system = result.prompt_messages[0]["content"] if result.prompt_messages else ""
    row: dict[str, Any] = section_metrics(spec, result, case, system, scorer)
    row.update(guard_metrics(index, spec, result, case))
    if reference is None:
        row["rouge_l"] = None
    row["items"] = float(len(result.lines)) if result.content else None
    row["chars"] = float(len(" ".join([result.title, *result.lines]))) \
        if result.content else None
    price = prices.get(result.model)
    if price:
        row["cost_usd"] = cost_usd(price, result.prompt_tokens, result.completion_tokens,
                                   result.cached_tokens)
    return row


def _internal_only(gen: Generator, route: str, sections: list[str]) -> bool:
    """Whether `route` serves a confidential brief on internal routes: pinned to an
    internal route, or `auto` with an internal route in every section's plan."""
    if route in EXTERNAL_ROUTES:
        return False
    return all(gen.router.plan(s, route, INTERNAL_ONLY) for s in sections)


def replay(records: list[Recorded], variants: list[Variant],
           generator_for: Callable[[Variant], Generator], sections: list[str] | None = None,
           prices: Prices | None = None,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the recorded briefs through every variant; the report, old and new side by side
    (the recorded answers are the variant named "recorded")."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    version = code_version()
    prices = prices or {}
    rows: list[dict[str, Any]] = []
    models: dict[str, set[str]] = {RECORDED: set()}
    skipped: dict[str, list[str]] = {v.name: [] for v in variants}
    replayed: set[str] = set()
    total, done = len(records) * len(variants), 0
    base: Generator | None = None  # the first variant's: the recorded answers' specs
    for variant in variants:
        gen = generator_for(variant)
        base = base or gen
        # confidential text never leaves: no redacted detour to an external model in replay
        gen = replace(gen, privacy=replace(gen.privacy, redact=False))
        index = gen.grounding or Grounding.from_cases(gen.cases)
        for record in records:
            done += 1
            specs = [gen.specs[s] for s in record.sections if s in gen.specs
                     and (not sections or s in sections)]
            if not specs:
                continue
            if record.confidential and not _internal_only(gen, variant.route,
                                                          [s.name for s in specs]):
                skipped[variant.name].append(record.job_id)
                if progress:
                    progress(f"[{done}/{total}] {variant.name}: {record.job_id} skipped "
                             "(confidential brief, external route)")
                continue
            deck = generate_deck(gen, record.brief, specs, variant.route)
            replayed.add(record.job_id)
            for spec, result in zip(specs, deck.sections, strict=True):
                old = record.sections[spec.name].get("output")
                reference = old if isinstance(old, dict) else None
                metrics = _metrics(spec, result, record, reference, index, scorer, prices)
                rows.append({"variant": variant.name, "case": record.job_id,
                             "section": spec.name, "model": result.model,
                             "error": result.error, **metrics})
                if result.model:
                    models.setdefault(variant.name, set()).add(result.model)
            if progress:
                progress(f"[{done}/{total}] {variant.name}: {record.job_id} "
                         f"({deck.seconds:.1f}s)")
    for record in records:
        if record.job_id not in replayed or base is None:
            continue
        index = base.grounding or Grounding.from_cases(base.cases)
        for name, generation in record.sections.items():
            known = base.specs.get(name)
            if known is None or (sections and name not in sections):
                continue
            old = _as_result(known, generation)
            metrics = _metrics(known, old, record, None, index, scorer, prices)
            metrics.update(dict.fromkeys(NOT_RECORDED))
            rows.append({"variant": RECORDED, "case": record.job_id, "section": name,
                         "model": old.model, "route": old.route, "error": None, **metrics})
            if old.model:
                models[RECORDED].add(old.model)
    names = [RECORDED, *(v.name for v in variants)]
    return {"kind": "replay",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "code_version": version,
            "variants": [{"name": RECORDED, "route": "as recorded", "prompts_dir": "as recorded",
                          "prompts_sha256": "-", "models": sorted(models[RECORDED])}] + [
                {"name": v.name, "route": v.route, "prompts_dir": str(v.prompts_dir),
                 "prompts_sha256": prompts_digest(v.prompts_dir),
                 "models": sorted(models.get(v.name, []))} for v in variants],
            "cases": [r.job_id for r in records if r.job_id in replayed],
            "recorded": [{"job": r.job_id, "generated_at": r.created_at,
                          "confidential": r.confidential} for r in records],
            "skipped_confidential": skipped,
            "rows": rows, "prices": {m: list(p) for m, p in prices.items()}, "judge": None,
            "summary": _summary(rows, names)}


def _summary(rows: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """evaluation.summarise, with the length metrics beside its own."""
    out = summarise(rows, variants)
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        for section, values in out[variant]["sections"].items():
            these = [r for r in mine if r["section"] == section]
            values.update({m: _mean([r.get(m) for r in these]) for m in LENGTH})
        if mine:
            out[variant]["overall"].update({m: _mean([r.get(m) for r in mine]) for m in LENGTH})
    return out


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _label(metric: str) -> str:
    return LENGTH_LABELS.get(metric) or LABELS[metric]


def replay_table(report: dict[str, Any]) -> str:
    """Overall, one column per variant: recorded first."""
    variants = [v["name"] for v in report["variants"]]
    lines = ["| metric (overall) | " + " | ".join(variants) + " |",
             "|---|" + "---:|" * len(variants)]
    for metric in (*metrics_in(report["rows"]), *LENGTH):
        cells = [_cell(report["summary"][v]["overall"].get(metric)) for v in variants]
        lines.append(f"| {_label(metric)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_replay_report(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json, report.md and report.html (charts as `deckgen eval` draws them)."""
    out.mkdir(parents=True, exist_ok=True)
    skipped = {v: len(ids) for v, ids in report["skipped_confidential"].items() if ids}
    header = [f"# deckgen replay, {report['created']}", "",
              f"Code {report['code_version']}; {len(report['cases'])} recorded briefs replayed "
              f"(of {len(report['recorded'])} selected). Old = what production wrote "
              "(recorded), new = the same brief now. ungrounded = share of names and numbers "
              "found neither in the brief nor in the section's instructions; ROUGE-L = the "
              "new text against the recorded one; '-' = not recorded.", ""]
    for variant, count in skipped.items():
        header.append(f"- **{variant}**: {count} confidential brief(s) skipped: its route "
                      "could send them outside our hardware")
    for v in report["variants"]:
        header.append(f"- **{v['name']}**: route `{v['route']}`, models "
                      f"{', '.join(v['models']) or '-'}, prompts `{v['prompts_dir']}`")
    variants = [v["name"] for v in report["variants"]]
    metrics = [*metrics_in(report["rows"]), *LENGTH]
    body = ["", replay_table(report), "", "## Per section, old and new", "",
            "| section | variant | " + " | ".join(_label(m) for m in metrics) + " |",
            "|---|---|" + "---:|" * len(metrics)]
    sections = dict.fromkeys(r["section"] for r in report["rows"])
    for name in sections:
        for v in variants:
            values = report["summary"][v]["sections"].get(name, {})
            body.append(f"| {name} | {v} | " + " | ".join(_cell(values.get(m))
                                                          for m in metrics) + " |")
    return write_files(report, "\n".join(header + body) + "\n", out, "deckgen replay")


def replay_command(store: Any, privacy: Any, variants: list[Variant],
                   generator_for: Callable[[Variant], Generator], *, since: float | None,
                   limit: int | None, sections: list[str] | None,
                   prices: Prices, out: Path,
                   progress: Callable[[str], None]) -> tuple[dict[str, Any], list[Path], str]:
    """What `deckgen eval --replay` does: select, replay, write; the report, its files and
    a line saying what was selected and skipped."""
    records, purged = recorded_briefs(store, privacy, since, limit)
    if not records:
        when = "" if since is None else " since " + time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(since))
        raise DeckgenError(f"no recorded generations to replay{when} in the store"
                           + (f" ({purged} purged)" if purged else ""))
    report = replay(records, variants, generator_for, sections, prices, progress)
    paths = write_replay_report(report, out)
    skipped = sum(len(ids) for ids in report["skipped_confidential"].values())
    line = (f"deckgen: replayed {len(report['cases'])} of {len(records)} recorded briefs"
            + (f"; {skipped} confidential brief run(s) skipped on external routes"
               if skipped else "") + (f"; {purged} purged briefs left out" if purged else ""))
    return report, paths, line
