"""`deckgen eval` (routes and prompt variants on the solved cases, or `--replay` on the briefs
production recorded) and `deckgen dataset export` (fine-tuning rows): the offline work on
models, measuring them and the data to train them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deckgen.errors import ConfigError
from deckgen.llm.policy import ROUTES

# Imported where used, so `deckgen --help` does not pay for openai, Flask or Google's client.
if TYPE_CHECKING:
    from collections.abc import Callable

    from deckgen.config import Config
    from deckgen.deck import Generator
    from deckgen.evaluation import Variant


def _since(text: str) -> float:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="compare routes and prompt variants on the solved cases")
    ev.set_defaults(run=cmd_eval)
    ev.add_argument("--cases", metavar="ID[,ID...]",
                    help="only these solved cases, by id as in examples/cases/ (default: all; "
                         "with --limit, the first N of them)")
    ev.add_argument("--examples", type=Path, metavar="DIR",
                    help="the examples folder (default DECKGEN_EXAMPLES_DIR)")
    ev.add_argument("--routes", default="local", help="comma-separated routes (default local)")
    ev.add_argument("--judge", choices=ROUTES, metavar="ROUTE",
                    help="also have the model on ROUTE score every section on a rubric "
                         "(relevance, specificity, tone; prompts/_judge.j2)")
    ev.add_argument("--prompts-variant", type=Path, action="append", default=[],
                    help="a folder of prompt files that replace the default ones "
                    "(e.g. prompts/variants/plain); repeatable")
    ev.add_argument("--sections", help="comma-separated sections (default: all)")
    ev.add_argument("--limit", type=int, help="use only the first N cases (with --replay: "
                    "the N newest recorded briefs)")
    ev.add_argument("--replay", action="store_true",
                    help="re-run the briefs production recorded (DECKGEN_DATABASE_URL) through "
                         "--routes / --prompts-variant and compare old and new side by side; "
                         "confidential briefs only on internal routes")
    ev.add_argument("--since", metavar="DATE", type=_since,
                    help="with --replay: briefs generated since DATE (YYYY-MM-DD or ISO time, "
                         "UTC)")
    ev.add_argument("--out", type=Path, default=Path("report"), help="report folder")

    data = sub.add_parser("dataset", help="fine-tuning data")
    data_sub = data.add_subparsers(dest="dataset_command", required=True)
    export = data_sub.add_parser("export", help="write chat-format JSONL from the solved cases")
    export.set_defaults(run=cmd_dataset)
    export.add_argument("--out", type=Path, default=Path("train.jsonl"))
    export.add_argument("--heldout", type=float, default=0.15,
                        help="share of cases kept out for evaluation (default 0.15)")
    export.add_argument("--since", metavar="DATE", type=_since,
                        help="also export generations people kept or edited since DATE "
                             "(YYYY-MM-DD or ISO time, UTC), from DECKGEN_DATABASE_URL")
    export.add_argument("--no-examples", action="store_true",
                        help="leave out the solved cases in examples/")
    export.add_argument("--mask-clients", action="store_true",
                        help="replace client and contact names with placeholders")


def examples_and_ids(args: argparse.Namespace, config: Config) -> tuple[Path, list[str] | None]:
    """The examples folder and the case ids asked for (None: all)."""
    examples = args.examples or config.examples_dir
    if args.cases is None:
        return examples, None
    ids = [i.strip() for i in args.cases.split(",") if i.strip()]
    if not ids:
        raise ConfigError("--cases needs at least one case id")
    if args.replay:
        raise ConfigError("--cases picks solved cases; --replay takes recorded briefs "
                          "(choose them with --since and --limit)")
    return examples, ids


def cmd_eval(args: argparse.Namespace, config: Config) -> int:
    from deckgen.container import route_options
    from deckgen.deck import Generator
    from deckgen.evaluation import Variant, evaluate, pick_cases, summary_table, write_report
    from deckgen.examples import load_cases
    from deckgen.llm.router import Router
    from deckgen.prompts import PromptRenderer
    from deckgen.sections import load_specs, pick_sections

    examples, ids = examples_and_ids(args, config)
    dirs = [config.prompts_dir, *args.prompts_variant]
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    variants = [Variant(r if len(dirs) == 1 else f"{r}:{d.name}", r, d)
                for r in routes for d in dirs]
    specs = load_specs(config.prompts_dir)
    wanted = [s.strip() for s in args.sections.split(",")] if args.sections else None
    pick_sections(specs, wanted)
    # every case stays in the pool of few-shot examples; only the named ones are run
    cases = pick_cases(load_cases(examples, specs), ids)[: args.limit]
    if args.since is not None and not args.replay:
        raise ConfigError("--since goes with --replay")
    if args.replay and args.judge:
        raise ConfigError("--judge does not apply to --replay")
    router = Router.from_config(config)

    def generator_for(variant: Variant) -> Generator:
        # a variant folder holds only the prompt files it changes (an overlay)
        own = (variant.prompts_dir / "sections.yaml").is_file()
        variant_specs = load_specs(variant.prompts_dir if own else config.prompts_dir)
        overlay = None if variant.prompts_dir == config.prompts_dir else variant.prompts_dir
        variant_cases = load_cases(examples, variant_specs)
        return Generator(variant_specs, variant_cases,
                         PromptRenderer(config.prompts_dir, overlay), router,
                         temperature=config.temperature, privacy=config.privacy,
                         **route_options(config, variant_cases))

    judge = None
    try:
        for route in routes + ([args.judge] if args.judge else []):
            router.route(router.resolve(route))  # configuration errors before any work
        if args.replay:
            return _replay(args, config, variants, generator_for, wanted)
        if args.judge:
            from deckgen.judge import Judge

            judge = Judge(router, router.resolve(args.judge), PromptRenderer(config.prompts_dir))
        report = evaluate(cases, variants, generator_for, wanted,
                          progress=lambda line: print(line, file=sys.stderr, flush=True),
                          judge=judge, prices=config.prices)
    finally:
        router.close()
    paths = write_report(report, args.out)
    print(summary_table(report))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _replay(args: argparse.Namespace, config: Config, variants: list[Variant],
            generator_for: Callable[[Variant], Generator], wanted: list[str] | None) -> int:
    """`deckgen eval --replay`: deckgen/replay.py on the store's recorded briefs."""
    from deckgen.container import open_store
    from deckgen.replay import replay_command, replay_table

    store = open_store(config)
    try:
        report, paths, line = replay_command(
            store, config.privacy, variants, generator_for, since=args.since,
            limit=args.limit, sections=wanted, prices=config.prices, out=args.out,
            progress=lambda text: print(text, file=sys.stderr, flush=True))
    finally:
        store.close()
    print(replay_table(report))
    print(line, file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_dataset(args: argparse.Namespace, config: Config) -> int:
    from deckgen.container import make_generator
    from deckgen.dataset import case_rows, export
    from deckgen.llm.router import Router
    from deckgen.llm.tokens import TiktokenCounter

    if not 0 <= args.heldout < 1:
        raise ConfigError("--heldout must be at least 0 and below 1")
    gen = make_generator(config, Router.from_config(config))
    specs = gen.specs
    # the self-hosted model is what gets fine-tuned: fit prompts to its budget
    model = config.self_hosted_model or "self-hosted"
    rows = [] if args.no_examples else case_rows(gen, TiktokenCounter(model),
                                                 config.self_hosted_context, args.mask_clients)
    reviewed = ""
    if args.since is not None:
        from deckgen.container import open_store
        from deckgen.dataset import reviewed_rows

        store = open_store(config)
        try:
            found, skipped = reviewed_rows(store.reviewed_generations(args.since), specs,
                                           args.mask_clients)
        finally:
            store.close()
        kinds = {k: sum(r["meta"]["source"] == k for r in found) for k in ("kept", "edited")}
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(args.since))
        reviewed = (f"; from people's reviews since {since}: {kinds['kept']} kept, "
                    f"{kinds['edited']} edited, {skipped['edited_off_format']} edits left out "
                    "(no longer in the section's format)")
        rows += found
    counts = export(rows, args.out, args.heldout)
    print(f"wrote {args.out} ({counts['train']} rows) and "
          f"{args.out.with_suffix('.heldout.jsonl')} ({counts['heldout']} rows); "
          f"{counts['duplicates']} duplicates dropped{reviewed}")
    return 0
