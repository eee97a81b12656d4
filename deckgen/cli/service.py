"""The commands that operate the service: `deckgen serve` (the development HTTP server),
`keys` (API keys for CRM callers), `jobs purge` and `schedules` (sets of decks regenerated
on cron text, deckgen/schedules.py). Each opens the store, does one thing, closes it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deckgen.errors import DeckgenError
from deckgen.llm.policy import ROUTES

# Imported where used, so `deckgen --help` does not pay for Flask or the store's drivers.
if TYPE_CHECKING:
    from deckgen.config import Config


def add_parsers(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service (development server; use "
                           "gunicorn in production, see the README)")
    serve.set_defaults(run=cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)

    keys = sub.add_parser("keys", help="manage API keys for CRM callers")
    keys.set_defaults(run=cmd_keys)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("name", help="who the key is for, e.g. salesforce-prod")
    keys_sub.add_parser("list", help="list keys: id, name, created, revoked (never the key)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key; it stops working on the next "
                                 "request, on every replica")
    revoke.add_argument("key", metavar="NAME_OR_ID")

    jobs = sub.add_parser("jobs", help="operate on stored jobs")
    jobs.set_defaults(run=cmd_jobs)
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    purge = jobs_sub.add_parser("purge", help="forget a finished job's brief, generated deck, "
                                "prompts and outputs (state and timings stay)")
    purge.add_argument("job_id", metavar="JOB_ID")
    add_schedules_parser(sub)


def add_schedules_parser(sub: argparse._SubParsersAction) -> None:
    """`deckgen schedules ...`: regenerate sets of decks on cron text (deckgen/schedules.py)."""
    sched = sub.add_parser("schedules", help="regenerate sets of decks on a schedule")
    sched.set_defaults(run=cmd_schedules)
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
