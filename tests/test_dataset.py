"""`deckgen dataset export`: the fine-tuning rows are the prompts the router sends."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(tmp_path, *args):
    out = tmp_path / "train.jsonl"
    run = subprocess.run([sys.executable, "-m", "deckgen.cli", "dataset", "export", "--out",
                          str(out), *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DECKGEN_SELF_HOSTED_CONTEXT": "8192"})
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
