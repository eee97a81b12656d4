"""Evaluating models and prompts side by side on the solved cases (leave-one-out: a case is
never its own few-shot example), and writing the report (JSON, Markdown, HTML with charts).

Per section and overall: schema validity and repair rate, fit to the slide (item count and
length within the spec), grounding (names and numbers in the output found neither in the
brief nor in the section's instructions, as a rate: a hallucination signal), ROUGE-L overlap
with the reference section (rouge-score), duplicate items (a section saying one thing twice),
latency and tokens; optionally an LLM judge's rubric scores (deckgen/judge.py), labelled as a
model's opinion."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import re
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deckgen import __version__
from deckgen.deck import Generator, SectionResult, generate_deck
from deckgen.errors import FieldError
from deckgen.examples import Case
from deckgen.grounding import Grounding
from deckgen.judge import CRITERIA, Judge
from deckgen.prices import Prices, cost_usd
from deckgen.sections import SectionSpec

_ENTITY = re.compile(r"\d[\d,.]*%?|\b[A-Z][A-Za-z&'-]{1,}\b")
_PUNCTUATION = re.compile(r"[^\w\s]")
METRICS = ("valid", "repaired", "fits", "ungrounded_rate", "leaked", "guard_repaired",
           "guard_dropped", "guard_flagged", "rouge_l", "duplicate_items", "seconds",
           "prompt_tokens", "cached_tokens", "completion_tokens")
JUDGE_METRICS = tuple(f"judge_{c}" for c in CRITERIA)


def metrics_in(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The metrics the rows carry: cost only where a price table priced a model, the
    judge's only when a judge ran."""
    judged = any(m in r for r in rows for m in JUDGE_METRICS)
    priced = any(r.get("cost_usd") is not None for r in rows)
    return METRICS + (("cost_usd",) if priced else ()) + (JUDGE_METRICS if judged else ())


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


@dataclass(frozen=True)
class Variant:
    """One column of the report: a route, and the prompts directory it is asked with."""

    name: str
    route: str
    prompts_dir: Path


def pick_cases(cases: list[Case], ids: list[str] | None) -> list[Case]:
    """The named cases, in the order named (all of them when `ids` is None); an id no case
    has fails before any model time, naming the ids there are."""
    if ids is None:
        return cases
    by_id = {c.id: c for c in cases}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise FieldError(f"unknown case(s) {', '.join(unknown)}; the solved cases are: "
                         f"{', '.join(by_id) or 'none'}", "cases")
    return [by_id[i] for i in dict.fromkeys(ids)]


def entities(text: str) -> set[str]:
    """Numbers and capitalised words: what a hallucinated fact is made of."""
    return {m.group(0).rstrip(".,") for m in _ENTITY.finditer(text)}


def _normalised(text: str) -> str:
    """How two items are compared: case-folded, punctuation gone, spaces collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def duplicate_share(items: list[str]) -> float | None:
    """The share of items that repeat another item of the same section: the same words once
    case, spacing and punctuation are ignored, or wholly contained, as whole words, in
    another item ("SAP TM" in "SAP TM plans the loads"). Of equal items the first is the
    original and the others repeat it. None for a section without items."""
    texts = [_normalised(i) for i in items]
    padded = [f" {t} " for t in texts]
    repeats = sum(
        bool(text) and any(j != i and padded[i] in padded[j] and (text != texts[j] or j < i)
                           for j in range(len(texts)))
        for i, text in enumerate(texts))
    return repeats / len(texts) if texts else None


def section_metrics(spec: SectionSpec, result: SectionResult, case: Case,
                    instructions: str, scorer: Any) -> dict[str, float | None]:
    reference = case.sections[spec.name]
    ref_text = " ".join([str(reference["title"]), *spec.lines(reference)])
    row: dict[str, float | None] = {
        "valid": float(result.status != "failed"), "repaired": float(result.repaired),
        "seconds": result.seconds, "prompt_tokens": float(result.prompt_tokens),
        "cached_tokens": float(result.cached_tokens),
        "completion_tokens": float(result.completion_tokens)}
    if result.content is None:
        # a failed section has no items: its duplicates are unknown ('-'), not none
        return {**row, "fits": 0.0, "ungrounded_rate": 1.0, "rouge_l": 0.0,
                "duplicate_items": None}
    items = result.content.get(spec.list_key, [])
    limit = spec.item_chars or sum((spec.item_fields or {}).values()) + 6
    fits = spec.min_items <= len(items) <= spec.max_items and all(
        len(line) <= limit for line in result.lines)
    text = " ".join([result.title, *result.lines])
    source = (json.dumps(case.brief.to_dict(), ensure_ascii=False) + " " + instructions).lower()
    found = entities(text)
    ungrounded = [e for e in found if e.lower() not in source]
    return {**row, "fits": float(fits),
            "ungrounded_rate": len(ungrounded) / len(found) if found else 0.0,
            "rouge_l": scorer.score(ref_text, text)["rougeL"].fmeasure,
            "duplicate_items": duplicate_share(result.lines)}


def guard_metrics(index: Grounding, spec: SectionSpec, result: SectionResult,
                  case: Case) -> dict[str, float]:
    """What reached the slide from other clients' cases (`leaked`: must be 0 with the guard
    on), and what the guard did to the section."""
    action = (result.grounding or {}).get("action")
    row = {f"guard_{a}": float(action == a) for a in ("repaired", "dropped", "flagged")}
    if result.content is None:
        return {**row, "leaked": 0.0}
    claims = index.check(result.content, case.brief, spec, exclude_case=case.id)
    return {**row, "leaked": float(sum(c.reason.startswith("from another") for c in claims))}


def evaluate(cases: list[Case], variants: list[Variant],
             generator_for: Callable[[Variant], Generator], sections: list[str] | None = None,
             progress: Callable[[str], None] | None = None,
             judge: Judge | None = None,
             prices: Prices | None = None) -> dict[str, Any]:
    """Run every case through every variant and collect per-section metrics (and, with a
    judge, its rubric scores for every generated section)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    version = code_version()  # at the start: the code that runs, not what is checked out after
    rows: list[dict[str, Any]] = []
    prompts: dict[str, str] = {}
    models: dict[str, set[str]] = {}
    total, done = len(cases) * len(variants), 0
    for variant in variants:
        gen = generator_for(variant)
        leak_index = gen.grounding or Grounding.from_cases(gen.cases)
        specs = [s for s in gen.specs.values() if not sections or s.name in sections]
        prompts[variant.name] = prompts_digest(variant.prompts_dir)
        for case in cases:
            deck = generate_deck(gen, case.brief, specs, variant.route, exclude_case=case.id)
            for spec, result in zip(specs, deck.sections, strict=True):
                assert case.id not in result.examples_used  # leave-one-out holds
                system = result.prompt_messages[0]["content"] if result.prompt_messages else ""
                metrics: dict[str, Any] = section_metrics(spec, result, case, system, scorer)
                metrics.update(guard_metrics(leak_index, spec, result, case))
                price = (prices or {}).get(result.model)
                if price:
                    metrics["cost_usd"] = cost_usd(price, result.prompt_tokens,
                                                   result.completion_tokens,
                                                   result.cached_tokens)
                if judge is not None:
                    scores = judge.score(case.brief, spec.label, "\n".join(
                        [result.title, *result.lines])) if result.content else {}
                    metrics.update({f"judge_{c}": scores.get(c) for c in CRITERIA})
                rows.append({"variant": variant.name, "case": case.id, "section": spec.name,
                             "model": result.model, "error": result.error, **metrics})
                if result.model:
                    models.setdefault(variant.name, set()).add(result.model)
            done += 1
            if progress:
                progress(f"[{done}/{total}] {variant.name}: {case.id} "
                         f"({deck.seconds:.1f}s)")
    return {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "code_version": version, "variants": [
                {"name": v.name, "route": v.route, "prompts_dir": str(v.prompts_dir),
                 "prompts_sha256": prompts[v.name], "models": sorted(models.get(v.name, []))}
                for v in variants],
            "cases": [c.id for c in cases], "rows": rows,
            "prices": {m: list(p) for m, p in (prices or {}).items()},
            "judge": None if judge is None else {
                "route": judge.route, "models": sorted(judge.models),
                "rubric": "prompts/_judge.j2", "unusable_verdicts": judge.failures},
            "summary": summarise(rows, [v.name for v in variants])}


def summarise(rows: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metrics = metrics_in(rows)
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        by_section: dict[str, dict[str, float | None]] = {}
        for section in dict.fromkeys(r["section"] for r in mine):
            these = [r for r in mine if r["section"] == section]
            by_section[section] = {m: _mean([r.get(m) for r in these]) for m in metrics}
        overall = {m: _mean([r.get(m) for r in mine]) for m in metrics} if mine else {}
        out[variant] = {"overall": overall, "sections": by_section}
    return out


def prompts_digest(prompts_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(prompts_dir.glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def code_version() -> str:
    """The package version and git commit, marked `.dirty` when tracked files differ from
    that commit (the report then does not name exactly the code that ran)."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5)

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode == 0:
            dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
            return f"{__version__}+g{rev.stdout.strip()}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


LABELS = {"valid": "schema valid", "repaired": "repaired", "fits": "fits the slide",
          "ungrounded_rate": "ungrounded names/numbers",
          "leaked": "names/figures from other clients' cases on the slide (must be 0)",
          "guard_repaired": "share repaired by the guard", "guard_dropped": "share with "
          "items dropped by the guard", "guard_flagged": "share flagged (claims marked)",
          "rouge_l": "ROUGE-L vs reference",
          "duplicate_items": "duplicate items (share; lower is better)",
          "seconds": "seconds", "prompt_tokens": "prompt tokens",
          "cached_tokens": "of which cached (server prefix cache)",
          "completion_tokens": "completion tokens",
          "cost_usd": "cost, US$ (priced models)",
          **{f"judge_{c}": f"LLM judge: {c} (1-5)" for c in CRITERIA}}


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def summary_table(report: dict[str, Any]) -> str:
    variants = [v["name"] for v in report["variants"]]
    lines = ["| metric (overall) | " + " | ".join(variants) + " |",
             "|---|" + "---:|" * len(variants)]
    for metric in metrics_in(report["rows"]):
        cells = [_cell(report["summary"][v]["overall"].get(metric)) for v in variants]
        lines.append(f"| {LABELS[metric]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _charts(report: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v["name"] for v in report["variants"]]
    charts = {}
    for metric in metrics_in(report["rows"]):
        fig, ax = plt.subplots(figsize=(5, 2.6), dpi=100)
        values = [report["summary"][v]["overall"].get(metric) or 0 for v in variants]
        ax.bar(variants, values, color="#138d90")
        ax.set_title(LABELS[metric])
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        charts[metric] = base64.b64encode(buffer.getvalue()).decode()
    return charts


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    header = [f"# deckgen evaluation, {report['created']}", "",
              f"Code {report['code_version']}; {len(report['cases'])} cases, leave-one-out. "
              "ungrounded = share of names and numbers in the output found neither in the "
              "brief nor in the section's instructions (lower is better). duplicate items = "
              "share of a section's items that repeat another of its items: the same words "
              "ignoring case, spacing and punctuation, or contained in another item (lower is "
              "better; '-' where the section failed).", ""]
    for v in report["variants"]:
        header.append(f"- **{v['name']}**: route `{v['route']}`, models "
                      f"{', '.join(v['models']) or '-'}, prompts `{v['prompts_dir']}` "
                      f"(sha256 {v['prompts_sha256']})")
    judge = report.get("judge")
    if judge:
        header.append(f"- **LLM judge** (a model's opinion, not a measurement): route "
                      f"`{judge['route']}`, models {', '.join(judge['models']) or '-'}, rubric "
                      f"`{judge['rubric']}`; {judge['unusable_verdicts']} unusable verdicts "
                      "left out of the means")
    sections = ["", summary_table(report), "", "## Per section", ""]
    variants = [v["name"] for v in report["variants"]]
    metrics = metrics_in(report["rows"])
    sections.append("| section | variant | " + " | ".join(LABELS[m] for m in metrics) + " |")
    sections.append("|---|---|" + "---:|" * len(metrics))
    for name in report["summary"][variants[0]]["sections"]:
        for v in variants:
            values = report["summary"][v]["sections"].get(name, {})
            sections.append(f"| {name} | {v} | " + " | ".join(
                _cell(values.get(m)) for m in metrics) + " |")
    return write_files(report, "\n".join(header + sections) + "\n", out, "deckgen evaluation")


def write_files(report: dict[str, Any], markdown: str, out: Path, title: str) -> list[Path]:
    """report.json, report.md (the tables) and report.html (the tables and the charts)."""
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(report, indent=2, ensure_ascii=False))
    paths[1].write_text(markdown)
    images = "".join(f'<img alt="{html.escape(LABELS[m])}" src="data:image/png;base64,{png}">'
                     for m, png in _charts(report).items())
    paths[2].write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style>"
        f"<pre>{html.escape(markdown)}</pre><h2>Charts</h2>{images}")
    return paths
