"""`python -m training.train`: trains the LoRA adapter that vLLM serves as deckgen's self-hosted
model.

This module owns the training side of the quality loop: reading the chat rows that
`deckgen dataset export` writes, tokenizing them with the base model's own chat template so the
loss falls on the assistant turn only, training a LoRA adapter with trl's SFTTrainer (peft
underneath), and writing the adapter, `training_summary.json` and the `vllm serve` command that
serves it under the model name deckgen routes to.

Rows longer than --max-length are skipped (or, with --overlong truncate, cut from the front of
the prompt) and counted in the output and the summary, never dropped silently. torch,
transformers, peft and trl are imported inside functions, so bad input is reported in a moment
without loading them."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVED_NAME = "deckgen"  # what DECKGEN_SELF_HOSTED_MODEL names (deploy/docker-compose.yml)
# vLLM's --max-lora-rank accepts only these values (vllm/config/lora.py, MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
PROBE_ROWS = 8  # training rows whose loss is measured before and after training
IGNORE = -100  # label that the loss ignores (transformers' convention)
Messages = list[dict[str, str]]


class TrainingError(Exception):
    """Bad input or setup: reported as one line, without a traceback."""


# ---------------------------------------------------------------------------------------------
# data


def read_rows(path: Path) -> list[Messages]:
    """The `messages` of every row of a `deckgen dataset export` file."""
    if not path.is_file():
        raise TrainingError(f"{path}: no such file (write it with "
                            f"`deckgen dataset export --out {path}`)")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue  # blank lines carry nothing (a trailing newline, a hand edit)
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TrainingError(f"{where}: not valid JSON ({e.msg} at column {e.colno})"
                                    ) from None
            rows.append(_messages(row, where))
    if not rows:
        raise TrainingError(f"{path}: no rows")
    return rows


def _messages(row: Any, where: str) -> Messages:
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or len(messages) < 2:
        raise TrainingError(f'{where}: expected {{"messages": [...]}} with at least a prompt and '
                            "the assistant's answer")
    for i, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise TrainingError(f"{where}: message {i} needs a string 'role' and 'content'")
    if messages[-1]["role"] != "assistant":
        raise TrainingError(f"{where}: the last message is the answer to learn, so it must be "
                            f"the assistant's, not {messages[-1]['role']!r}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


@dataclass
class Encoded:
    """Token ids with labels that are IGNORE over the prompt, plus what did not fit."""

    rows: list[dict[str, list[int]]]
    read: int
    truncated: int
    skipped: int

    def counts(self) -> dict[str, int]:
        return {"read": self.read, "truncated": self.truncated, "skipped": self.skipped,
                "used": len(self.rows)}


def _chat_ids(tokenizer: Any, messages: Messages, generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            add_generation_prompt=generation_prompt)
    return list(encoded["input_ids"])


def encode(tokenizer: Any, rows: list[Messages], max_length: int, overlong: str) -> Encoded:
    """Tokenize with the chat template; only the assistant turn (and its end-of-turn token)
    is learned. A row over `max_length` is skipped, or with `overlong="truncate"` loses the
    front of its prompt; a row whose answer alone is over `max_length` is always skipped."""
    out: list[dict[str, list[int]]] = []
    truncated = skipped = 0
    for messages in rows:
        prompt = _chat_ids(tokenizer, messages[:-1], generation_prompt=True)
        full = _chat_ids(tokenizer, messages, generation_prompt=False)
        # The answer starts where the two diverge; with a template that renders the prompt
        # the same way alone and followed by an answer, that is right after the prompt.
        start = 0
        while start < min(len(prompt), len(full)) and prompt[start] == full[start]:
            start += 1
        labels = [IGNORE] * start + full[start:]
        if len(full) > max_length:
            if overlong == "skip" or len(full) - start > max_length:
                skipped += 1
                continue
            full, labels = full[-max_length:], labels[-max_length:]
            truncated += 1
        out.append({"input_ids": full, "labels": labels})
    return Encoded(out, len(rows), truncated, skipped)


def usable(encoded: Encoded, path: Path, args: argparse.Namespace) -> Encoded:
    if not encoded.rows:
        what = ("the answers of all {} rows are" if args.overlong == "truncate"
                else "all {} rows are").format(encoded.read)
        hint = "" if args.overlong == "truncate" else ", or pass --overlong truncate"
        raise TrainingError(f"{path}: no usable rows: {what} longer than --max-length "
                            f"{args.max_length} tokens (raise it{hint})")
    if args.limit:
        encoded.rows = encoded.rows[:args.limit]
    return encoded


# ---------------------------------------------------------------------------------------------
# model


def split_gguf(base: str, gguf_file: str | None) -> tuple[str, str | None]:
    """`--base dir/x.gguf` is shorthand for `--base dir --gguf-file x.gguf`."""
    if gguf_file is None and base.endswith(".gguf"):
        path = Path(base)
        return str(path.parent), path.name
    return base, gguf_file


def convert_gguf(base: str, gguf_file: str, cache_dir: Path) -> Path:
    """A plain transformers checkpoint of a GGUF model, made once and cached: trainable, and a
    base vLLM can serve the adapter on (it is the exact weights the adapter was trained on)."""
    source = Path(base) / gguf_file
    if not source.is_file():
        raise TrainingError(f"{source}: no such GGUF file")
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    target = cache_dir / f"{source.stem}-{key.hexdigest()[:12]}"
    if (target / "config.json").is_file():
        print(f"base: {target} (converted from {source} earlier)", flush=True)
        return target
    print(f"base: converting {source} to {target} (once; it is dequantized to float32)",
          flush=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base, gguf_file=gguf_file)
    # transformers marks a model read from GGUF as quantized (it is, on disk) and Trainer refuses
    # to train quantized weights; in memory they are plain float32 tensors.
    model.config.quantization_config = None
    model.hf_quantizer = None
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)  # whole or absent: an interrupted conversion is never reused
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(partial)  # another run converted it meanwhile
    return target


def load_model(path: str, args: argparse.Namespace, cuda: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if not args.qlora:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        return model.to("cuda") if cuda else model
    if not cuda:
        raise TrainingError("--qlora needs a CUDA GPU (bitsandbytes 4-bit)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TrainingError("--qlora needs bitsandbytes: pip install bitsandbytes") from None
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                      bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map={"": 0},
                                                 quantization_config=quantization)
    return prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=args.gradient_checkpointing)


# ---------------------------------------------------------------------------------------------
# training


def vllm_rank(rank: int) -> int:
    fits = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fits:
        raise TrainingError(f"--rank {rank}: vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}")
    return fits[0]


def serve_command(base: str, adapter: Path, rank: int) -> str:
    return shlex.join(["vllm", "serve", base, "--enable-lora", "--lora-modules",
                       f"{SERVED_NAME}={adapter.resolve()}", "--max-lora-rank",
                       str(vllm_rank(rank))])


def train(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    vllm_rank(args.rank)  # refuse an adapter vLLM could not serve before spending time on it
    train_rows = read_rows(args.data)
    eval_rows = read_rows(args.eval) if args.eval else None

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # datasets forks after tokenizing
    # OpenMP threads that spin while they wait collapse when the cores are shared (another job,
    # a CI neighbour): one training step on 2 busy cores measured 7-20 s spinning, 2 s passive.
    # libgomp reads this once, when torch loads it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import datasets
    import torch
    import transformers
    from peft import LoraConfig
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda:
        # torch counts the machine's cores; a container or CI runner may let this process use
        # fewer (its affinity), and threads beyond those only wait for each other.
        torch.set_num_threads(args.threads)

    base, gguf_file = split_gguf(args.base, args.gguf_file)
    source = str(Path(base) / gguf_file) if gguf_file else base
    if gguf_file:
        base = str(convert_gguf(base, gguf_file, args.cache_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as e:  # not a directory, not a model id, no network
        raise TrainingError(f"--base {base}: cannot load its tokenizer ({e})") from None
    encoded = usable(encode(tokenizer, train_rows, args.max_length, args.overlong),
                     args.data, args)
    report_rows("train", encoded, args)
    held = None
    if eval_rows is not None:
        held = usable(encode(tokenizer, eval_rows, args.max_length, args.overlong),
                      args.eval, args)
        report_rows("eval", held, args)

    model = load_model(base, args, cuda)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha or 2 * args.rank,
                      lora_dropout=args.dropout, task_type="CAUSAL_LM",
                      target_modules=(args.target_modules if args.target_modules == "all-linear"
                                      else args.target_modules.split(",")))
    train_set = datasets.Dataset.from_list(encoded.rows)
    evals = {"probe": datasets.Dataset.from_list(encoded.rows[:PROBE_ROWS])}
    if held is not None:
        evals["heldout"] = datasets.Dataset.from_list(held.rows)
    config = SFTConfig(
        output_dir=str(args.out),
        max_steps=args.steps or -1,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        max_length=args.max_length,
        # trl turns on bf16 autocast and activation checkpointing by default; they are for the
        # GPU (with --qlora, prepare_model_for_kbit_training set checkpointing up). On the CPU
        # checkpointing only adds a recompute, and bf16 is fast on some CPUs and emulated on
        # others: float32 behaves the same on every machine.
        bf16=cuda and torch.cuda.is_bf16_supported(),
        activation_checkpointing=cuda and args.gradient_checkpointing and not args.qlora,
        use_cpu=not cuda,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",  # evaluated explicitly, before and after
        report_to=[],
        disable_tqdm=True,
        seed=args.seed,
    )

    losses: list[float] = []

    class Progress(TrainerCallback):
        def on_log(self, _args: Any, state: Any, _control: Any, logs: Any = None,
                   **_: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                print(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                      f"lr {logs.get('learning_rate', 0):.2e}", flush=True)

    trainer = SFTTrainer(model=model, args=config, train_dataset=train_set, eval_dataset=evals,
                         processing_class=tokenizer, peft_config=lora, callbacks=[Progress()])
    trainer.remove_callback(PrinterCallback)  # Progress prints one line a step instead
    trainable, total = trainer.model.get_nb_trainable_parameters()
    print(f"LoRA r={args.rank} on {args.target_modules}: {trainable:,} of {total:,} parameters "
          f"train, on {'cuda' if cuda else f'cpu ({args.threads} threads)'}", flush=True)

    before = trainer.evaluate()
    print(f"loss before: {before['eval_probe_loss']:.4f} on {len(evals['probe'])} training rows"
          + (f", {before['eval_heldout_loss']:.4f} held out" if held else ""), flush=True)
    train_started = time.monotonic()
    trainer.train()
    train_seconds = time.monotonic() - train_started
    after = trainer.evaluate()

    args.out.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(args.out)
    command = serve_command(base, args.out, args.rank)
    summary = {
        "base": base,
        "base_source": source,
        "adapter": str(args.out.resolve()),
        "served_model": SERVED_NAME,
        "data": str(args.data),
        "eval": str(args.eval) if args.eval else None,
        "rows": {"train": encoded.counts(), **({"eval": held.counts()} if held else {})},
        "max_length": args.max_length,
        "overlong": args.overlong,
        "lora": {"rank": args.rank, "alpha": lora.lora_alpha, "dropout": args.dropout,
                 "target_modules": args.target_modules},
        "qlora": args.qlora,
        "steps": trainer.state.global_step,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "learning_rate": args.lr,
        # loss_first/loss_last: the same probe rows before and after training, so the two
        # compare; step_losses are per batch and vary with the batch.
        "probe_rows": len(evals["probe"]),
        "loss_first": before["eval_probe_loss"],
        "loss_last": after["eval_probe_loss"],
        "eval_loss_first": before.get("eval_heldout_loss"),
        "eval_loss_last": after.get("eval_heldout_loss"),
        "step_losses": losses,
        "device": "cuda" if cuda else "cpu",
        "train_seconds": round(train_seconds, 1),
        "seconds": round(time.monotonic() - started, 1),
        "vllm_command": command,
    }
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"loss: {summary['loss_first']:.4f} -> {summary['loss_last']:.4f} "
          f"(final/initial {summary['loss_last'] / summary['loss_first']:.3f}) on the probe rows")
    if held is not None:
        print(f"held-out loss: {summary['eval_loss_first']:.4f} -> "
              f"{summary['eval_loss_last']:.4f}")
    print(f"{summary['steps']} steps in {train_seconds:.0f}s; adapter and training_summary.json "
          f"in {args.out}")
    print(f"serve it:\n  {command}\nthen point deckgen at it:\n"
          f"  DECKGEN_SELF_HOSTED_URL=http://<host>:8000/v1 "
          f"DECKGEN_SELF_HOSTED_MODEL={SERVED_NAME}")
    return summary


def report_rows(name: str, encoded: Encoded, args: argparse.Namespace) -> None:
    print(f"{name} rows: {encoded.read} read, {encoded.truncated} truncated and "
          f"{encoded.skipped} skipped (longer than --max-length {args.max_length}), "
          f"{len(encoded.rows)} used" + (f" (--limit {args.limit})" if args.limit else ""),
          flush=True)


# ---------------------------------------------------------------------------------------------
# command line


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deckgen" / "training"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="train.jsonl from dataset export")
    p.add_argument("--eval", type=Path, help="held-out rows (train.heldout.jsonl)")
    p.add_argument("--base", required=True,
                   help="base model: a Hugging Face id, a directory, or a .gguf file")
    p.add_argument("--gguf-file", help="GGUF file name inside --base (converted once, cached)")
    p.add_argument("--cache-dir", type=Path, default=default_cache(),
                   help="where converted GGUF bases are kept")
    p.add_argument("--out", type=Path, required=True, help="adapter directory to write")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive, help="optimizer steps (overrides --epochs)")
    length.add_argument("--epochs", type=float, default=3.0, help="passes over the data")
    p.add_argument("--max-length", type=positive, default=8192,
                   help="tokens per row (deckgen fits prompts to DECKGEN_SELF_HOSTED_CONTEXT)")
    p.add_argument("--overlong", choices=("skip", "truncate"), default="skip",
                   help="rows over --max-length: skip them, or cut the front of the prompt")
    p.add_argument("--limit", type=positive, help="use only the first N usable rows of each file")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    p.add_argument("--rank", type=positive, default=16, help="LoRA rank")
    p.add_argument("--alpha", type=positive, help="LoRA alpha (default: 2 x rank)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    p.add_argument("--target-modules", default="all-linear",
                   help="comma-separated module names, or all-linear")
    p.add_argument("--batch-size", type=positive, default=1)
    p.add_argument("--grad-accum", type=positive, default=4, help="batches per optimizer step")
    p.add_argument("--qlora", action="store_true",
                   help="load the base in 4 bits (CUDA and bitsandbytes only)")
    p.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing",
                   action="store_false", help="on a GPU: faster, more memory")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    p.add_argument("--threads", type=positive, default=len(os.sched_getaffinity(0)),
                   help="CPU threads")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        train(args)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
