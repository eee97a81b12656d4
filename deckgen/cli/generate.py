"""`deckgen generate`: reads the brief, builds the generator from configuration, shows
progress per section on stderr, writes the deck and prints a timing table. A deck with
failed sections exits 1, one written but not all right exits 3."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deckgen.errors import ConfigError, DeckgenError
from deckgen.llm.policy import ROUTES

# Imported where used, so `deckgen --help` does not pay for openai, Flask or Google's client.
if TYPE_CHECKING:
    from deckgen.config import Config
    from deckgen.content import DeckContent, SectionResult
    from deckgen.sections import SectionSpec

# exit codes of `deckgen generate`, by Filled.status (2 is a usage error, from main)
EXIT_CODES = {"ok": 0, "failed": 1, "incomplete": 3}


def add_parser(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="write a deck's sections from a brief")
    gen.set_defaults(run=cmd_generate)
    gen.add_argument("brief", type=Path, help="the brief, a JSON file ('-' for stdin)")
    gen.add_argument("--out", type=Path, help="the .pptx to write (default out/<brief>.pptx)")
    gen.add_argument("--pptx-template", type=Path,
                     help="a .pptx template marked with {{tokens}} (default: the built-in one)")
    gen.add_argument("--presentation", metavar="ID",
                     help="fill this Google Slides deck instead of writing a .pptx")
    gen.add_argument("--template", metavar="ID",
                     help="copy this Google Slides template first (with --title), then fill")
    gen.add_argument("--title", help="the title of the deck copied from --template")
    gen.add_argument("--keep-edits", action="store_true",
                     help="leave alone sections a person edited in the deck since the last fill")
    gen.add_argument("--sections", help="comma-separated sections (default: all)")
    gen.add_argument("--route", choices=ROUTES, help="which model serves the sections "
                     "(default DECKGEN_ROUTE or auto)")
    gen.add_argument("--no-fit", action="store_true",
                     help="do not fit the text to the template's boxes (measure nothing)")
    gen.add_argument("--json", type=Path, help="also write the sections and timings as JSON")
    gen.add_argument("--no-sources", action="store_true",
                     help="do not list each item's supporting words from the brief in the "
                          "speaker notes (default: listed, unless DECKGEN_SOURCES_IN_NOTES=0)")


class ProgressPrinter:
    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.lock = threading.Lock()

    def __call__(self, event: str, spec: SectionSpec, result: SectionResult | None) -> None:
        with self.lock:
            if event == "started":
                print(f"  ... {spec.name}", file=self.stream, flush=True)
                return
            self.done += 1
            assert result is not None
            from deckgen.guard import describe

            if result.status == "failed":
                state = f"FAILED: {result.error['message']}" if result.error else "FAILED"
            else:
                state = "ok" if result.status == "ok" else "written, claims marked"
                if said := describe(result.grounding):
                    state += f"; grounding: {said}"
            print(f"  [{self.done}/{self.total}] {spec.name}: {state} ({result.seconds:.1f}s)",
                  file=self.stream, flush=True)


def fit_cell(result: SectionResult) -> str:
    """Lines used / available in the section's box: "7/9", or "12/9 -> 8/9 shortened"."""
    fit = result.fit
    if not fit or "lines_used" not in fit:
        return "-"
    final = f"{fit['lines_used']}/{fit['lines_available']}"
    if fit["first_answer"] == final and not fit["shortened"]:
        return final
    done = [w for w, on in (("shortened", fit["shortened"]),
                            (f"{fit['items_dropped']} dropped", fit["items_dropped"]),
                            ("OVERFLOWS", fit["overflows"])) if on]
    return f"{fit['first_answer']} -> {final} {', '.join(done)}"


def table(deck: DeckContent, where: dict[str, str] | None = None) -> str:
    """The run as a table; `where` (box key -> box|placeholder|cell|group|inline|notes)
    says where in the template each section's box was found."""
    where = where or {}
    head = ("section", "route", "model", "prompt tok", "cached", "completion tok", "seconds",
            "retries", "waited s", "box", "lines (box)")
    rows = [(s.section, s.route, s.model, str(s.prompt_tokens), str(s.cached_tokens),
             str(s.completion_tokens),
             f"{s.seconds:.2f}", str(s.retries), f"{s.wait_seconds:.2f}",
             where.get(s.section, "-"), fit_cell(s))
            for s in deck.sections]
    rows.append(("deck", "", "", str(sum(s.prompt_tokens for s in deck.sections)),
                 str(sum(s.cached_tokens for s in deck.sections)),
                 str(sum(s.completion_tokens for s in deck.sections)), f"{deck.seconds:.2f}",
                 str(sum(s.retries for s in deck.sections)),
                 f"{sum(s.wait_seconds for s in deck.sections):.2f}", "", ""))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def cmd_generate(args: argparse.Namespace, config: Config) -> int:
    import json

    from deckgen.brief import load_brief
    from deckgen.container import Container
    from deckgen.fill import FillRequest, PptxTarget, SlidesTarget, Target

    source = "stdin" if str(args.brief) == "-" else str(args.brief)
    try:
        text = sys.stdin.read() if source == "stdin" else args.brief.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeckgenError(f"cannot read the brief {source}: {exc.strerror}") from None
    brief = config.privacy.apply(load_brief(text, source))
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else None
    if args.template and not args.title:
        raise ConfigError("--template needs --title for the new deck")
    target: Target
    if args.presentation or args.template:
        target = SlidesTarget(args.presentation, args.template, args.title, args.keep_edits,
                              user_token=config.google_token)
    else:
        stem = Path(source).stem if source != "stdin" else "deck"
        target = PptxTarget(args.out or Path("out") / f"{stem}.pptx", args.pptx_template)
    container = Container.build(config)
    filler, router = container.filler, container.router
    try:
        route = args.route or config.route
        first = router.resolve(route)
        # a bad template, a deck we cannot read, or no marks fail here, before model time
        prepared = filler.prepare(FillRequest(
            brief, target, wanted, route, fit=not args.no_fit,
            sources=config.sources_in_notes and not args.no_sources))
        for name in prepared.skipped:
            print(f"  {name}: the template has no box for it; not generated", file=sys.stderr)
        print(f"deckgen: {brief.client}: {len(prepared.specs)} sections, route {route} "
              f"(starting on {first})", file=sys.stderr, flush=True)
        started = time.monotonic()
        router.route(first)  # start the route (and the local server) before the clock runs
        print(f"  model ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
        deck = filler.generate(prepared, ProgressPrinter(len(prepared.specs)))
    finally:
        container.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(deck.to_dict(), indent=2, ensure_ascii=False))
    print(table(deck, prepared.check.where if prepared.check else None))
    filled = filler.write(prepared, deck, on_copied=lambda presentation_id: print(
        f"  copied {args.template} to {presentation_id}", file=sys.stderr))
    for warning in filled.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {filled.path}")
    if filled.status != "ok":
        print(f"deckgen: {filled.status}: {filled.summary()}", file=sys.stderr)
    return EXIT_CODES[filled.status]
