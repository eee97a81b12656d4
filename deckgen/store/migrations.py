"""The schema, one for both databases, created and upgraded by numbered migrations. A
migration is appended, never edited: a database records the last number it ran."""

from __future__ import annotations

from deckgen.store.database import Database

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
    # 5: a client's Idempotency-Key on a batch, so a retried POST finds the batch it made
    """
    ALTER TABLE batches ADD COLUMN idempotency_key TEXT;
    CREATE UNIQUE INDEX batches_idempotency ON batches (owner, idempotency_key)
        WHERE idempotency_key IS NOT NULL
    """,
    # 6: two stages and lanes. A running job's `stage`: generate (a worker holds it),
    # generated (its deck waits in `deck` for a write slot, held by no worker), write (a
    # worker holds it). `principal`: who its Slides write counts against. A batch can be
    # paused; `fair_share` records when each owner's batch work was last served (round
    # robin); `quota_events` / `quota_holds` count Slides writes for every process
    """
    ALTER TABLE jobs ADD COLUMN stage TEXT;
    ALTER TABLE jobs ADD COLUMN deck TEXT;
    ALTER TABLE jobs ADD COLUMN principal TEXT;
    ALTER TABLE jobs ADD COLUMN generated_at DOUBLE PRECISION;
    CREATE INDEX jobs_stage ON jobs (state, stage, principal);
    ALTER TABLE batches ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE fair_share (
        owner TEXT PRIMARY KEY,
        served_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE quota_events (
        scope TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX quota_events_scope ON quota_events (scope, at);
    CREATE TABLE quota_holds (
        scope TEXT PRIMARY KEY,
        until DOUBLE PRECISION NOT NULL
    )
    """,
    # 7: schedules (cron text that regenerates decks through the batch lane) and their
    # runs; a run is fired once across replicas: a compare-and-set on next_run_at and the
    # unique (schedule_id, due_at) row, in the transaction that makes its batch
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        source TEXT NOT NULL,
        options TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        next_run_at DOUBLE PRECISION,
        last_run_at DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE UNIQUE INDEX schedules_name ON schedules (owner, name);
    CREATE INDEX schedules_due ON schedules (paused, next_run_at);
    CREATE TABLE schedule_runs (
        id TEXT PRIMARY KEY,
        schedule_id TEXT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        batch_id TEXT,
        fired_at DOUBLE PRECISION NOT NULL,
        error TEXT
    );
    CREATE UNIQUE INDEX schedule_runs_due ON schedule_runs (schedule_id, due_at)
    """,
    # 8: the CRM door. `writebacks`: a finished job's deck link owed to its opportunity
    # record, retried until the CRM takes it (added in the job's finishing transaction);
    # `crm_decks`: which deck an opportunity has, so a later stage or a schedule refreshes
    # it; `webhook_events`: signatures and event ids already taken, so a replay is refused
    """
    CREATE TABLE writebacks (
        job_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        crm TEXT NOT NULL,
        opportunity_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX writebacks_due ON writebacks (state, next_at);
    CREATE TABLE crm_decks (
        owner TEXT NOT NULL,
        crm TEXT NOT NULL,
        opportunity_id TEXT NOT NULL,
        presentation_id TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (owner, crm, opportunity_id)
    );
    CREATE TABLE webhook_events (
        crm TEXT NOT NULL,
        event_key TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (crm, event_key)
    )
    """,
    # 9: model routes' requests, tokens and in-flight leases, counted for every process
    # (deckgen/limits_store.py StoreHome: rows of `amount` at `at`; a lease's `at` is when
    # it expires)
    """
    CREATE TABLE route_usage (
        scope TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        amount INTEGER NOT NULL,
        lease TEXT
    );
    CREATE INDEX route_usage_scope ON route_usage (scope, at)
    """,
]


def migrate(db: Database) -> int:
    """Run the migrations this database has not run yet (one process at a time); the
    number of migrations there are."""
    with db.tx(lock=True) as cur:
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
