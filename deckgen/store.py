"""The durable store: jobs, batches, API keys and every generation, in SQLite (a file, WAL
mode, the default) or PostgreSQL (`DECKGEN_DATABASE_URL=postgresql://...`).

One schema for both, created and upgraded by numbered migrations. Queries are written once
with `?` placeholders and translated for psycopg. The store is the source of truth: a job's
state lives here, not in the worker that runs it, so a killed process loses nothing and its
running jobs are picked up again once their heartbeat goes stale."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deckgen.errors import ConfigError, DeckgenError

MIGRATIONS = [
    # 1: jobs, batches, keys, generations
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        request TEXT NOT NULL,
        presentation_id TEXT,
        batch_id TEXT,
        idempotency_key TEXT,
        progress TEXT NOT NULL,
        result TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        heartbeat_at DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX jobs_queue ON jobs (state, created_at);
    CREATE INDEX jobs_batch ON jobs (batch_id);
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        total INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE generations (
        id TEXT PRIMARY KEY,
        job_id TEXT,
        brief_hash TEXT NOT NULL,
        section TEXT NOT NULL,
        status TEXT NOT NULL,
        route TEXT,
        model TEXT,
        prompt TEXT,
        output TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        seconds DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX generations_job ON generations (job_id);
    """,
    # 2: the privacy policy each section was generated under, for audits
    """
    ALTER TABLE generations ADD COLUMN policy TEXT NOT NULL DEFAULT 'open'
    """,
    # 3: what people did with a fill (kept or edited), read back at the next write
    """
    CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        presentation_id TEXT NOT NULL,
        job_id TEXT,
        section TEXT NOT NULL,
        part TEXT NOT NULL,
        state TEXT NOT NULL,
        text TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX feedback_deck ON feedback (presentation_id, section)
    """,
    # 4: how many prompt messages are the section's own prompt (the rest a repair or shorten
    # turn), so fine-tuning pairs that prompt with the final answer
    """
    ALTER TABLE generations ADD COLUMN prompt_base_turns INTEGER
    """,
]

STATES = ("queued", "running", "done", "failed", "cancelled")
JSON_COLUMNS = ("request", "progress", "result", "error")


class JobNotFound(DeckgenError):
    code = "job_not_found"
    http_status = 404


@dataclass
class Job:
    id: str
    owner: str
    state: str
    request: dict[str, Any]
    presentation_id: str | None
    batch_id: str | None
    idempotency_key: str | None
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    worker: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        data = dict(row)
        for col in JSON_COLUMNS:
            data[col] = json.loads(data[col]) if data[col] else None
        data["cancel_requested"] = bool(data["cancel_requested"])
        return cls(**data)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Store:
    """Thread-safe access to the database; one connection per thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_pg = url.startswith(("postgresql://", "postgres://"))
        if not self.is_pg:
            path = url.removeprefix("sqlite:///") if url.startswith("sqlite:") else url
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.path = path
        self._local = threading.local()
        self.migrate()

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.is_pg:
            import psycopg
            from psycopg.rows import dict_row

            try:
                # autocommit: every statement runs inside an explicit transaction() block
                return psycopg.connect(self.url, row_factory=dict_row, autocommit=True)
            except psycopg.OperationalError as exc:
                raise ConfigError(f"cannot connect to DECKGEN_DATABASE_URL: {exc}") from None
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.is_pg else sql

    @contextmanager
    def tx(self, lock: bool = False, readonly: bool = False) -> Iterator[Any]:
        """A transaction; `lock` serialises it against other locking transactions
        (PostgreSQL: a transaction-level advisory lock). On SQLite every writing transaction
        takes the write lock up front (BEGIN IMMEDIATE): a deferred one that reads first
        and writes later can fail at once with "database is locked" instead of waiting."""
        conn = self._conn()
        if self.is_pg:
            with conn.transaction():
                cur = conn.cursor()
                if lock:
                    cur.execute("SELECT pg_advisory_xact_lock(4242)")
                yield _Cursor(cur, self)
            return
        conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
        try:
            yield _Cursor(conn.cursor(), self)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def ping(self) -> bool:
        try:
            with self.tx(readonly=True) as cur:
                cur.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            return False

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> int:
        with self.tx(lock=True) as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            version = row["version"] if row else 0
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (0)")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(None, (s.strip() for s in script.split(";"))):
                    cur.execute(statement)
                cur.execute("UPDATE schema_version SET version = ?", (number,))
            return len(MIGRATIONS)

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, owner: str, request: dict[str, Any], progress: dict[str, Any],
                   presentation_id: str | None = None, batch_id: str | None = None,
                   idempotency_key: str | None = None) -> tuple[Job, bool]:
        """A new queued job, or the existing one with the same idempotency key (and False)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            if idempotency_key:
                cur.execute("SELECT * FROM jobs WHERE owner = ? AND idempotency_key = ?",
                            (owner, idempotency_key))
                row = cur.fetchone()
                if row:
                    return Job.from_row(row), False
            job_id = new_id("job")
            cur.execute(
                "INSERT INTO jobs (id, owner, state, request, presentation_id, batch_id, "
                "idempotency_key, progress, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job_id, owner, json.dumps(request), presentation_id, batch_id,
                 idempotency_key, json.dumps(progress), now, now))
        return self.get_job(job_id), True

    def get_job(self, job_id: str) -> Job:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return Job.from_row(row)

    def claim_job(self, worker: str) -> Job | None:
        """Take the oldest queued job whose deck no running job is writing (per-deck lock)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute(
                "SELECT j.id FROM jobs j WHERE j.state = 'queued' AND (j.presentation_id IS NULL "
                "OR NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running' AND "
                "r.presentation_id = j.presentation_id)) ORDER BY j.created_at, j.id LIMIT 1")
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                "started_at = ?, heartbeat_at = ?, updated_at = ? WHERE id = ? "
                "AND state = 'queued'", (worker, now, now, now, row["id"]))
        return self.get_job(row["id"])

    def claim_job_id(self, job_id: str, worker: str, stale_after: float) -> Job | str:
        """Take one given job (the Celery path): the Job, or why not: "locked" when another
        running job is writing its deck (try later), "gone" when it is not waiting to run
        (finished, cancelled, or running with a live heartbeat)."""
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
            row = cur.fetchone()
            if row is None:
                return "gone"
            stale = row["state"] == "running" and (row["heartbeat_at"] or 0) < now - stale_after
            if row["state"] != "queued" and not stale:
                return "gone"
            if row["presentation_id"]:
                cur.execute("SELECT 1 FROM jobs WHERE state = 'running' AND presentation_id = ? "
                            "AND id <> ?", (row["presentation_id"], job_id))
                if cur.fetchone():
                    return "locked"
            cur.execute(
                "UPDATE jobs SET state = 'running', worker = ?, attempts = attempts + 1, "
                "started_at = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                (worker, now, now, now, job_id))
        return self.get_job(job_id)

    def queued_ids(self) -> list[str]:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at")
            return [r["id"] for r in cur.fetchall()]

    def heartbeat(self, job_id: str, worker: str) -> bool:
        """Keep a running job ours; False if it was cancelled or taken away."""
        now = time.time()
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND worker = ? "
                        "AND state = 'running'", (now, job_id, worker))
            return bool(cur.rowcount)

    def set_presentation(self, job_id: str, presentation_id: str) -> None:
        """Remember the deck a template job copied, so a re-run fills it, not a new copy."""
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET presentation_id = ?, updated_at = ? WHERE id = ?",
                        (presentation_id, time.time(), job_id))

    def update_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self.tx() as cur:
            cur.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                        (json.dumps(progress), time.time(), job_id))

    def finish_job(self, job_id: str, worker: str, state: str,
                   result: dict[str, Any] | None = None,
                   error: dict[str, Any] | None = None,
                   progress: dict[str, Any] | None = None) -> bool:
        now = time.time()
        with self.tx() as cur:
            sets = "state = ?, result = ?, error = ?, finished_at = ?, updated_at = ?"
            args: list[Any] = [state, json.dumps(result) if result else None,
                               json.dumps(error) if error else None, now, now]
            if progress is not None:
                sets += ", progress = ?"
                args.append(json.dumps(progress))
            cur.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND worker = ? "
                        "AND state = 'running'", (*args, job_id, worker))
            return bool(cur.rowcount)

    def cancel_job(self, job_id: str) -> Job:
        now = time.time()
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                        "finished_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                        (now, now, job_id))
            cur.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? "
                        "AND state = 'running'", (now, job_id))
        return self.get_job(job_id)

    def requeue_stale(self, stale_after: float) -> list[str]:
        """Jobs left `running` by a worker that stopped heart-beating go back to the queue."""
        cutoff = time.time() - stale_after
        with self.tx(lock=True) as cur:
            cur.execute("SELECT id FROM jobs WHERE state = 'running' AND heartbeat_at < ?",
                        (cutoff,))
            ids = [r["id"] for r in cur.fetchall()]
            for job_id in ids:
                cur.execute("UPDATE jobs SET state = 'queued', worker = NULL, updated_at = ? "
                            "WHERE id = ? AND state = 'running'", (time.time(), job_id))
        return ids

    def retry_failed(self, batch_id: str) -> int:
        with self.tx(lock=True) as cur:
            cur.execute("UPDATE jobs SET state = 'queued', error = NULL, worker = NULL, "
                        "finished_at = NULL, updated_at = ? WHERE batch_id = ? "
                        "AND state = 'failed'", (time.time(), batch_id))
            return int(cur.rowcount)

    def queue_depth(self) -> int:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT COUNT(*) AS n FROM jobs WHERE state = 'queued'")
            return int(cur.fetchone()["n"])

    # -- batches -----------------------------------------------------------------------
    def create_batch(self, owner: str, total: int) -> str:
        batch_id = new_id("batch")
        with self.tx() as cur:
            cur.execute("INSERT INTO batches (id, owner, total, created_at) VALUES (?, ?, ?, ?)",
                        (batch_id, owner, total, time.time()))
        return batch_id

    def get_batch(self, batch_id: str) -> tuple[dict[str, Any], list[Job]]:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM batches WHERE id = ?", (batch_id,))
            row = cur.fetchone()
            if row is None:
                raise JobNotFound(f"no batch {batch_id}")
            cur.execute("SELECT * FROM jobs WHERE batch_id = ? ORDER BY created_at, id",
                        (batch_id,))
            jobs = [Job.from_row(r) for r in cur.fetchall()]
        return dict(row), jobs

    # -- API keys ----------------------------------------------------------------------
    def add_key(self, name: str, key_hash: str) -> str:
        key_id = new_id("key")
        with self.tx() as cur:
            cur.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,))
            if cur.fetchone():
                raise ConfigError(f"an API key named {name!r} exists already")
            cur.execute("INSERT INTO api_keys (id, name, key_hash, created_at) "
                        "VALUES (?, ?, ?, ?)", (key_id, name, key_hash, time.time()))
        return key_id

    def key_owner(self, key_hash: str) -> str | None:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT name FROM api_keys WHERE key_hash = ? AND revoked = 0",
                        (key_hash,))
            row = cur.fetchone()
        return f"key:{row['name']}" if row else None

    # -- generations -------------------------------------------------------------------
    def record_generations(self, job_id: str | None, brief_hash: str,
                           rows: list[dict[str, Any]]) -> None:
        now = time.time()
        with self.tx() as cur:
            for r in rows:
                cur.execute(
                    "INSERT INTO generations (id, job_id, brief_hash, section, status, route, "
                    "model, policy, prompt, prompt_base_turns, output, prompt_tokens, "
                    "completion_tokens, seconds, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new_id("gen"), job_id, brief_hash, r["section"], r["status"], r["route"],
                     r["model"], r.get("policy", "open"), json.dumps(r["prompt"]),
                     r.get("prompt_base_turns"), json.dumps(r["output"]), r["prompt_tokens"],
                     r["completion_tokens"], r["seconds"], now))

    def record_feedback(self, presentation_id: str, job_id: str | None,
                        rows: list[dict[str, str]]) -> None:
        now = time.time()
        with self.tx() as cur:
            for r in rows:
                cur.execute("INSERT INTO feedback (id, presentation_id, job_id, section, part, "
                            "state, text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (new_id("fb"), presentation_id, job_id, r["section"], r["part"],
                             r["state"], r.get("text"), now))

    def feedback(self, presentation_id: str) -> list[dict[str, Any]]:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM feedback WHERE presentation_id = ? "
                        "ORDER BY created_at, section", (presentation_id,))
            return [dict(r) for r in cur.fetchall()]

    def reviewed_generations(self, since: float) -> list[dict[str, Any]]:
        """Generations people reviewed since `since` (epoch seconds): each feedback row
        (kept or edited, read back at a later write to the deck) with the generation that
        wrote that text, the newest one for that deck and section before the review."""
        with self.tx(readonly=True) as cur:
            cur.execute(
                "SELECT f.id AS feedback_id, f.state, f.part, f.text, f.created_at AS "
                "reviewed_at, g.* FROM feedback f JOIN generations g ON g.section = f.section "
                "AND g.status = 'ok' AND g.created_at <= f.created_at "
                "AND g.job_id <> COALESCE(f.job_id, '') "
                "JOIN jobs j ON j.id = g.job_id AND j.presentation_id = f.presentation_id "
                "WHERE f.created_at >= ? ORDER BY f.created_at, g.created_at DESC", (since,))
            rows = cur.fetchall()
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:  # the newest generation per feedback row
            newest.setdefault(row["feedback_id"], dict(row))
        return list(newest.values())

    def generations(self, job_id: str) -> list[dict[str, Any]]:
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM generations WHERE job_id = ? ORDER BY section",
                        (job_id,))
            return [dict(r) for r in cur.fetchall()]


class _Cursor:
    """Translates `?` placeholders for PostgreSQL; rows come back as dicts on both."""

    def __init__(self, cur: Any, store: Store) -> None:
        self.cur, self.store = cur, store

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        self.cur.execute(self.store._sql(sql), args)

    def fetchone(self) -> Any:
        row = self.cur.fetchone()
        return dict(row) if row is not None else None

    def fetchall(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.cur.fetchall()]

    @property
    def rowcount(self) -> int:
        return int(self.cur.rowcount)
