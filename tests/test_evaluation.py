"""`deckgen eval`: leave-one-out runs of the solved cases, compared across prompt variants."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deckgen.content import SectionResult
from deckgen.evaluation import duplicate_share, entities, section_metrics, summarise

ROOT = Path(__file__).resolve().parent.parent


def variant_of(prompts_dir, tmp_path):
    """The shipped overlay variant: only its _base.j2 differs from prompts/."""
    variant = prompts_dir / "variants" / "plain"
    assert sorted(p.name for p in variant.iterdir()) == ["_base.j2"]
    return variant


def run_eval(*args, env):
    return subprocess.run([sys.executable, "-m", "deckgen.cli", "eval", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=900)


def test_eval_compares_two_prompt_variants_leave_one_out(config, specs, cases, fake_openai,
                                                         tmp_path):
    env = {"DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m"}
    run = run_eval("--routes", "self-hosted", "--prompts-variant",
                   variant_of(config.prompts_dir, tmp_path), "--limit", 3,
                   "--out", tmp_path / "report", env=env)
    assert run.returncode == 0, run.stderr
    assert "[6/6]" in run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    names = [v["name"] for v in report["variants"]]
    assert names == ["self-hosted:prompts", "self-hosted:plain"]
    systems = {b["messages"][0]["content"] for b in fake_openai.requests}
    assert any("plain words" in s for s in systems) and any("Be specific" in s for s in systems)
    assert report["variants"][0]["prompts_sha256"] != report["variants"][1]["prompts_sha256"]
    assert report["variants"][0]["models"] == ["m"]
    assert len(report["rows"]) == 2 * 3 * 5
    for row in report["rows"]:
        assert row["valid"] == 1.0 and 0 <= row["rouge_l"] <= 1
        assert 0 <= row["ungrounded_rate"] <= 1
        # the fake answers "bullets first", "bullets second", ... but object items all alike
        spec = specs[row["section"]]
        alike = (spec.min_items - 1) / spec.min_items if spec.item_fields else 0.0
        assert row["duplicate_items"] == pytest.approx(alike)
    # leave-one-out: no request shows a case its own finished section as an example
    by_id = {c.id: c for c in cases}
    for body in fake_openai.requests:
        brief_turn = body["messages"][-1]["content"]
        case = next(c for c in cases[:3] if c.brief.client in brief_turn)
        answers = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
        own = json.dumps(by_id[case.id].sections[body["response_format"]["json_schema"]["name"]],
                         ensure_ascii=False)
        assert own not in answers
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<img") == 14  # one chart per metric, the guard's four included
    assert "names/figures from other clients" in html  # the leaked column
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| metric (overall) | self-hosted:prompts | self-hosted:plain |" in markdown
    assert "| metric (overall)" in run.stdout


def test_grounding_flags_names_and_numbers_the_brief_never_gave(specs, cases):
    from rouge_score import rouge_scorer

    case = next(c for c in cases if c.id == "logistics-freight-visibility")
    spec = specs["current_state"]
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def metrics(bullets):
        content = {"title": "Status today", "bullets": bullets}
        result = SectionResult(spec.name, spec.label, content=content,
                               lines=spec.lines(content))
        return section_metrics(spec, result, case, "", scorer)

    grounded = metrics(["12,000 shipments a day", "4 regional trackers", "SAP TM plans"])
    invented = metrics(["Acme Corp lost 97 trucks", "Zurich office", "SAP TM plans"])
    assert grounded["ungrounded_rate"] == 0.0
    assert invented["ungrounded_rate"] > 0.5
    assert grounded["fits"] == 1.0 and grounded["valid"] == 1.0
    assert entities("Acme lost 97.5% in Q3.") >= {"Acme", "97.5%"}


@pytest.mark.slow
def test_eval_on_the_real_local_model(config, tmp_path, local_url):
    run = run_eval("--routes", "local", "--prompts-variant",
                   variant_of(config.prompts_dir, tmp_path), "--limit", 1,
                   "--sections", "skills", "--out", tmp_path / "report",
                   env={"DECKGEN_LOCAL_URL": local_url})
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(report["rows"]) == 2
    assert all(r["model"].startswith("SmolLM2") for r in report["rows"] if r["valid"])


def test_an_llm_judge_scores_each_section_and_is_labelled(cases, fake_openai, tmp_path):
    verdict = {"relevance": 4, "specificity": 2, "tone": 5, "reason": "specific enough"}
    fake_openai.reply("judge", json.dumps(verdict),
                      json.dumps({**verdict, "relevance": 7}),  # outside the rubric
                      "I would rate this highly")  # not a verdict
    env = {"DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m",
           "DECKGEN_PRICES": "m=2.5/10/1.25,other=1/1"}
    run = run_eval("--routes", "self-hosted", "--judge", "self-hosted", "--limit", 3,
                   "--sections", "skills", "--out", tmp_path / "report", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["judge"] == {"route": "self-hosted", "models": ["m"],
                               "rubric": "prompts/_judge.j2", "unusable_verdicts": 2}
    scored = [r for r in report["rows"] if r["judge_relevance"] is not None]
    assert len(report["rows"]) == 3 and len(scored) == 1
    overall = report["summary"]["self-hosted"]["overall"]
    assert (overall["judge_relevance"], overall["judge_specificity"]) == (4.0, 2.0)
    asks = fake_openai.bodies("judge")
    assert len(asks) == 3
    first = asks[0]["messages"][-1]["content"]
    assert cases[0].brief.client in first and '<<<' in first  # the brief, fenced
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "LLM judge: relevance (1-5)" in markdown and "not a measurement" in markdown
    # a price table turns tokens into cost, per model as the server named it; the prompt
    # tokens the server's cache served cost the cached price
    for row in report["rows"]:
        expected = ((row["prompt_tokens"] - row["cached_tokens"]) * 2.5
                    + row["cached_tokens"] * 1.25 + row["completion_tokens"] * 10) / 1e6
        assert row["cost_usd"] == pytest.approx(expected) and expected > 0
    assert "cost, US$ (priced models)" in markdown
    assert (tmp_path / "report" / "report.html").read_text().count("<img") == 18


def test_duplicate_items_are_repeats_and_items_inside_others(specs, cases):
    from rouge_score import rouge_scorer

    case = next(c for c in cases if c.id == "logistics-freight-visibility")
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def share(name, items):
        spec = specs[name]
        content = {"title": "Status today", spec.list_key: items}
        result = SectionResult(spec.name, spec.label, content=content,
                               lines=spec.lines(content))
        return section_metrics(spec, result, case, "", scorer)["duplicate_items"]

    # the second is the first again (case, spacing, punctuation); "EDI 214" is inside
    # the third; the first and the third are originals
    assert share("current_state", ["SAP TM plans the loads", "sap tm  plans the loads.",
                                   "Carriers send EDI 214 late", "EDI 214"]) == 0.5
    # contained as whole words only: "4 regional" is not inside "14 regional"
    assert share("current_state", ["4 regional trackers", "14 regional trackers",
                                   "SAP TM plans"]) == 0.0
    # object items compare as the line the slide shows
    row = {"dataset": "Carrier status", "source": "EDI 214", "use": "ETAs"}
    assert share("data", [row, {k: v.upper() for k, v in row.items()},
                          {**row, "use": "detention charges"}]) == pytest.approx(1 / 3)
    assert duplicate_share(["same", "same", "same", "other"]) == 0.5
    assert duplicate_share(["Data-driven ops", "data driven OPS!"]) == 0.5
    assert duplicate_share([]) is None

    failed = SectionResult("current_state", "Current state", status="failed")
    failed_row = section_metrics(specs["current_state"], failed, case, "", scorer)
    assert failed_row["duplicate_items"] is None  # unknown, not "no duplicates"
    rows = [{"variant": "v", "section": "current_state", **failed_row},
            {"variant": "v", "section": "current_state", "duplicate_items": 0.25}]
    assert summarise(rows, ["v"])["v"]["overall"]["duplicate_items"] == 0.25


def test_eval_runs_only_the_named_cases_with_limit(cases, fake_openai, tmp_path):
    named = [cases[5].id, cases[2].id, cases[9].id]
    repeated = {"title": "Status today", "bullets": [
        "customer service chases carriers by phone", "Customer service chases carriers  by "
        "phone!", "regional trackers are kept by hand", "trackers are kept by hand"]}
    fake_openai.reply("current_state", *[json.dumps(repeated)] * 2)
    env = {"DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m"}
    run = run_eval("--routes", "self-hosted", "--cases", ",".join(named), "--limit", 2,
                   "--sections", "current_state", "--out", tmp_path / "report", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["cases"] == named[:2]  # in the order named, then the first N
    assert [r["case"] for r in report["rows"]] == named[:2]
    clients = {c.id: c.brief.client for c in cases}
    briefs = [b["messages"][-1]["content"] for b in fake_openai.bodies("current_state")]
    assert len(briefs) == 2
    assert {i for i in named for brief in briefs if clients[i] in brief} == set(named[:2])
    # still leave-one-out over every case: the others remain few-shot examples
    assert all(any(m["role"] == "assistant" for m in b["messages"])
               for b in fake_openai.bodies("current_state"))
    assert [r["duplicate_items"] for r in report["rows"]] == [0.5, 0.5]
    assert report["summary"]["self-hosted"]["overall"]["duplicate_items"] == 0.5
    assert "| duplicate items (share; lower is better) | 0.5 |" in run.stdout
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "duplicate items (share; lower is better)" in markdown.split("## Per section")[1]


def test_unknown_case_ids_fail_before_any_model_time(cases, tmp_path):
    env = {"DECKGEN_LOCAL_URL": "http://127.0.0.1:9/v1"}  # nothing listens there
    run = run_eval("--cases", f"{cases[0].id},no-such-case,nor-this", "--out",
                   tmp_path / "report", env=env)
    assert run.returncode == 2, run.stderr
    first = run.stderr.strip().splitlines()[0]
    assert first.startswith("deckgen: error: unknown case(s) no-such-case, nor-this; ")
    assert all(c.id in first for c in cases)  # it names the ids there are
    assert "Traceback" not in run.stderr and not (tmp_path / "report").exists()
    replay = run_eval("--replay", "--cases", cases[0].id, env=env)
    assert replay.returncode == 2 and "--replay takes recorded briefs" in replay.stderr


def test_examples_names_another_folder_and_cases_pick_within_it(config, cases, fake_openai,
                                                                tmp_path):
    folder = tmp_path / "examples"
    (folder / "cases").mkdir(parents=True)
    for case in cases[:3]:
        name = f"{case.id}.yaml"
        (folder / "cases" / name).symlink_to(config.examples_dir / "cases" / name)
    env = {"DECKGEN_SELF_HOSTED_URL": fake_openai.url, "DECKGEN_SELF_HOSTED_MODEL": "m"}
    run = run_eval("--routes", "self-hosted", "--examples", folder, "--cases", cases[1].id,
                   "--sections", "skills", "--out", tmp_path / "again", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "again" / "report.json").read_text())["cases"] == \
        [cases[1].id]
    outside = run_eval("--routes", "self-hosted", "--examples", folder, "--cases", cases[4].id,
                       "--out", tmp_path / "none", env=env)
    assert outside.returncode == 2 and f"unknown case(s) {cases[4].id};" in outside.stderr
