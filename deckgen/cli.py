"""The command line: `deckgen generate BRIEF.json --out deck.pptx`.

A thin shell over the core: it reads the brief, builds the generator from configuration,
shows progress per section on stderr, writes the deck and prints a timing table. Errors a
user can cause print one line and exit 2; a deck with failed sections exits 1."""

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
    from collections.abc import Callable

    from deckgen.config import Config
    from deckgen.content import DeckContent, SectionResult
    from deckgen.deck import Generator
    from deckgen.evaluation import Variant
    from deckgen.sections import SectionSpec


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deckgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a deck's sections from a brief")
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

    ev = sub.add_parser("eval", help="compare routes and prompt variants on the solved cases")
    ev.add_argument("--cases", type=Path, help="the examples folder (default DECKGEN_EXAMPLES_DIR)")
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

    serve = sub.add_parser("serve", help="run the HTTP service (development server; use "
                           "gunicorn in production, see the README)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)

    keys = sub.add_parser("keys", help="manage API keys for CRM callers")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("name", help="who the key is for, e.g. salesforce-prod")
    jobs = sub.add_parser("jobs", help="operate on stored jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    purge = jobs_sub.add_parser("purge", help="forget a finished job's brief, generated deck, "
                                "prompts and outputs (state and timings stay)")
    purge.add_argument("job_id", metavar="JOB_ID")
    keys_sub.add_parser("list", help="list keys: id, name, created, revoked (never the key)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key; it stops working on the next "
                                 "request, on every replica")
    revoke.add_argument("key", metavar="NAME_OR_ID")
    add_schedules_parser(sub)
    return parser


def add_schedules_parser(sub: argparse._SubParsersAction) -> None:
    """`deckgen schedules ...`: regenerate sets of decks on cron text (deckgen/schedules.py)."""
    sched = sub.add_parser("schedules", help="regenerate sets of decks on a schedule")
    sched_sub = sched.add_subparsers(dest="schedules_command", required=True)
    add = sched_sub.add_parser("add", help="add a schedule; prints its id")
    add.add_argument("name", help="a name for it, unique per owner")
    add.add_argument("--cron", required=True, help='five-field cron text: minute hour '
                     'day-of-month month day-of-week, e.g. "0 6 * * 1" (Mondays at 06:00)')
    add.add_argument("--items", type=Path, required=True, metavar="FILE.json",
                     help='the decks: a JSON list of {"presentation_id", "brief"} (or '
                     '{"presentation_id", "crm", "opportunity_id"}), or a whole source '
                     '{"items": [...]} or {"crm_query": {"crm": ..., '
                     '"changed_since_last_run": true}}')
    add.add_argument("--timezone", default="UTC", help="IANA time zone of the cron text "
                     "(default UTC)")
    add.add_argument("--route", choices=ROUTES, default="auto")
    add.add_argument("--sections", help="comma-separated sections (default: all)")
    add.add_argument("--keep-edits", action="store_true",
                     help="leave alone sections a person edited since the last fill")
    add.add_argument("--no-archive", action="store_true",
                     help="do not copy each deck before updating it")
    add.add_argument("--owner", default="operator", help="whose schedule it is: key:NAME "
                     "makes it that API key's (listed and managed over the API too); "
                     "default operator")
    sched_sub.add_parser("list", help="every schedule: id, name, cron, next run, state")
    for verb, what in (("remove", "forget a schedule (the batches it made stay)"),
                       ("pause", "stop a schedule firing until it is resumed"),
                       ("resume", "let a paused schedule fire again from its next slot")):
        sched_sub.add_parser(verb, help=what).add_argument("schedule_id", metavar="ID")


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
    head = ("section", "route", "model", "prompt tok", "completion tok", "seconds",
            "retries", "waited s", "box", "lines (box)")
    rows = [(s.section, s.route, s.model, str(s.prompt_tokens), str(s.completion_tokens),
             f"{s.seconds:.2f}", str(s.retries), f"{s.wait_seconds:.2f}",
             where.get(s.section, "-"), fit_cell(s))
            for s in deck.sections]
    rows.append(("deck", "", "", str(sum(s.prompt_tokens for s in deck.sections)),
                 str(sum(s.completion_tokens for s in deck.sections)), f"{deck.seconds:.2f}",
                 str(sum(s.retries for s in deck.sections)),
                 f"{sum(s.wait_seconds for s in deck.sections):.2f}", "", ""))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


# exit codes of `deckgen generate`, by Filled.status (2 is a usage error, from main)
EXIT_CODES = {"ok": 0, "failed": 1, "incomplete": 3}


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


def cmd_eval(args: argparse.Namespace, config: Config) -> int:
    from deckgen.container import route_options
    from deckgen.deck import Generator
    from deckgen.evaluation import Variant, evaluate, summary_table, write_report
    from deckgen.examples import load_cases
    from deckgen.llm.router import Router
    from deckgen.prompts import PromptRenderer
    from deckgen.sections import load_specs, pick_sections

    examples = args.cases or config.examples_dir
    dirs = [config.prompts_dir, *args.prompts_variant]
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    variants = [Variant(r if len(dirs) == 1 else f"{r}:{d.name}", r, d)
                for r in routes for d in dirs]
    specs = load_specs(config.prompts_dir)
    wanted = [s.strip() for s in args.sections.split(",")] if args.sections else None
    pick_sections(specs, wanted)
    cases = load_cases(examples, specs)[: args.limit]
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
    if args.since is not None and not args.replay:
        raise ConfigError("--since goes with --replay")
    if args.replay and args.judge:
        raise ConfigError("--judge does not apply to --replay")
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


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from deckgen.api import create_app

    app = create_app(config)
    print(f"deckgen: serving on http://{args.host}:{args.port} (store {config.database_url})",
          file=sys.stderr, flush=True)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def cmd_jobs(args: argparse.Namespace, config: Config) -> int:
    from deckgen.container import open_store

    store = open_store(config)
    try:
        purged = store.purge_job(args.job_id)
    finally:
        store.close()
    print(f"deckgen: purged job {args.job_id}: its brief, deck and {purged} generation(s)' "
          "prompts and outputs are gone", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace, config: Config) -> int:
    from deckgen.auth import new_key
    from deckgen.container import open_store

    store = open_store(config)
    try:
        if args.keys_command == "list":
            for key in store.list_keys():
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
                print(f"{key.id}  {key.name}  created {when} UTC"
                      + ("  REVOKED" if key.revoked else ""))
            return 0
        if args.keys_command == "revoke":
            key = store.revoke_key(args.key)
            print(f"deckgen: revoked API key {key.name!r} ({key.id})", file=sys.stderr)
            return 0
        secret, digest = new_key()
        store.add_key(args.name, digest)
    finally:
        store.close()
    print(secret)
    print(f"deckgen: created API key {args.name!r}; it is shown only this once. Send it as "
          "'Authorization: Bearer <key>'.", file=sys.stderr)
    return 0


def cmd_schedules(args: argparse.Namespace, config: Config) -> int:
    import json

    from deckgen.container import open_store
    from deckgen.schedules import add_schedule, next_run
    from deckgen.sections import load_specs

    def when(at: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at)) if at else "-"

    store = open_store(config)
    try:
        command = args.schedules_command
        if command == "add":
            try:
                source = json.loads(args.items.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DeckgenError(f"cannot read the items file {args.items}: {exc}") from None
            wanted = [s.strip() for s in args.sections.split(",") if s.strip()] \
                if args.sections else None
            schedule = add_schedule(
                store, args.owner, args.name, args.cron,
                {"items": source} if isinstance(source, list) else source,
                timezone=args.timezone, route=args.route, sections=wanted,
                keep_edits=args.keep_edits, archive=not args.no_archive,
                specs=load_specs(config.prompts_dir))
            print(schedule.id)
            print(f"deckgen: schedule {schedule.name!r} first runs {when(schedule.next_run_at)}",
                  file=sys.stderr)
        elif command == "list":
            for s in store.list_schedules():
                decks = len(s.source["items"]) if "items" in s.source else "crm query"
                print(f"{s.id}  {s.name}  {s.cron!r} {s.timezone}  next {when(s.next_run_at)}"
                      f"  last {when(s.last_run_at)}  decks {decks}  owner {s.owner}"
                      + ("  PAUSED" if s.paused else ""))
        elif command == "remove":
            store.delete_schedule(args.schedule_id)
            print(f"deckgen: removed schedule {args.schedule_id}", file=sys.stderr)
        else:
            schedule = store.get_schedule(args.schedule_id)
            following = next_run(schedule.cron, schedule.timezone, time.time())
            store.pause_schedule(args.schedule_id, command == "pause", following)
            print(f"deckgen: {command}d schedule {args.schedule_id}", file=sys.stderr)
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from deckgen.config import Config

        config = Config.from_env()
        command = {"generate": cmd_generate, "eval": cmd_eval, "dataset": cmd_dataset,
                   "serve": cmd_serve, "keys": cmd_keys, "jobs": cmd_jobs,
                   "schedules": cmd_schedules}
        return command[args.command](args, config)
    except DeckgenError as exc:
        print(f"deckgen: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deckgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
