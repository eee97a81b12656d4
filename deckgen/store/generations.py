"""Generations and feedback: every section a model wrote (route, model, prompt, output,
tokens, the privacy policy it ran under), and what people then did with it in the deck
(kept or edited). Together they are the audit trail and the fine-tuning data."""

from __future__ import annotations

import json
import time
from typing import Any

from deckgen.store.database import Tables, new_id, unstorable
from deckgen.store.sealing import seal, unseal


class GenerationTables(Tables):
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
                     r["model"], r.get("policy", "open"), seal(json.dumps(r["prompt"])),
                     r.get("prompt_base_turns"), seal(json.dumps(r["output"])),
                     r["prompt_tokens"],
                     r["completion_tokens"], r["seconds"], now))

    def generations(self, job_id: str) -> list[dict[str, Any]]:
        if unstorable(job_id):
            return []
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM generations WHERE job_id = ? ORDER BY section",
                        (job_id,))
            return [_opened(r) for r in cur.fetchall()]

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
        if unstorable(presentation_id):
            return []
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT * FROM feedback WHERE presentation_id = ? "
                        "ORDER BY created_at, section", (presentation_id,))
            return cur.fetchall()

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
            newest.setdefault(row["feedback_id"], row)
        return [_opened(r) for r in newest.values() if r["prompt"] is not None]  # not purged


def _opened(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "prompt": unseal(row["prompt"]), "output": unseal(row["output"])}
