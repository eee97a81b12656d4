"""Where one deck's time goes on the embedded model (issue 20): reading the prompt, writing,
and everything else, per request, from llama.cpp's own timing lines; then one prompt sent
again with and without the JSON-schema grammar. Prints the table of bench/RESULTS.md 6c.

    .venv/bin/python bench/local_phases.py [--brief examples/briefs/harbor-logistics.json]

Run it on a quiet machine: it times a CPU-bound model."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from deckgen.brief import load_brief  # noqa: E402
from deckgen.config import Config  # noqa: E402
from deckgen.container import make_generator  # noqa: E402
from deckgen.deck import generate_deck  # noqa: E402
from deckgen.llm.local import LocalServer  # noqa: E402
from deckgen.llm.router import Router  # noqa: E402

PERF = re.compile(r"(prompt eval|\s+eval|\s+total) time =\s+([\d.]+) ms /\s+(\d+)")
PREFIX = re.compile(r"Llama.generate: (\d+) prefix-match hit")


def requests_in(log: str) -> list[dict[str, float]]:
    """One row per request from the server's log: prefix reused, read, written, total."""
    rows: list[dict[str, float]] = []
    prefix = 0.0
    for line in log.splitlines():
        if m := PREFIX.search(line):
            prefix = float(m.group(1))
        elif m := PERF.search(line):
            kind = m.group(1).strip()
            if kind == "prompt eval":
                rows.append({"prefix": prefix, "read_s": float(m.group(2)) / 1000,
                             "read_tokens": float(m.group(3))})
                prefix = 0.0
            elif kind == "eval":
                rows[-1].update(write_s=float(m.group(2)) / 1000, tokens=float(m.group(3)))
            else:
                rows[-1]["total_s"] = float(m.group(2)) / 1000
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brief", default=str(ROOT / "examples/briefs/harbor-logistics.json"))
    parser.add_argument("--full-grammar", action="store_true",
                        help="llama-cpp-python's own server (grammar on the whole vocabulary)")
    args = parser.parse_args()
    config = Config.from_env({})
    assert config.local_model_path is not None, "no embedded model installed"
    module = "llama_cpp.server" if args.full_grammar else "deckgen.llm.lazy_grammar"
    server = LocalServer(config.local_model_path, config.local_context, config.local_threads,
                         server_module=module)
    url = server.start()
    try:
        cfg = Config.from_env({"DECKGEN_LOCAL_URL": url})
        generator = make_generator(cfg, Router.from_config(cfg))
        brief = load_brief(Path(args.brief).read_bytes(), args.brief)
        started = time.perf_counter()
        deck = generate_deck(generator, brief, list(generator.specs.values()), "local")
        seconds = time.perf_counter() - started
        rows = requests_in(Path(server.log.name).read_text(errors="replace"))
        print(f"deck {seconds:.1f} s; per request (seconds):")
        print("| request | prefix reused | read (tokens) | written | writing | total |")
        for i, r in enumerate(rows, 1):
            print(f"| {i} | {r['prefix']:.0f} | {r['read_s']:.2f} ({r['read_tokens']:.0f}) | "
                  f"{r.get('tokens', 0):.0f} | {r.get('write_s', 0):.2f} | "
                  f"{r.get('total_s', 0):.2f} |")
        # the same prompt again, with the grammar and without it
        result = next(s for s in deck.sections if s.prompt_messages)
        messages = result.prompt_messages[: result.prompt_base_turns or None]
        schema = generator.specs[result.section].json_schema()
        client = OpenAI(base_url=url, api_key="local")
        before = len(rows)
        for label, extra in (("grammar", {"response_format": {"type": "json_object",
                                                               "schema": schema}}),
                             ("no grammar", {})):
            client.chat.completions.create(model=config.local_model_path.stem,
                                           messages=messages, max_tokens=220,
                                           temperature=0.3, **extra)  # type: ignore[call-overload]
            row = requests_in(Path(server.log.name).read_text(errors="replace"))[before]
            before += 1
            other = row["total_s"] - row["read_s"] - row["write_s"]
            print(f"{label}: {row['tokens']:.0f} tokens, writing {row['write_s']:.2f} s, "
                  f"other {other:.2f} s ({1000 * other / max(row['tokens'], 1):.1f} ms/token)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
