"""API keys: only a key's hash is stored, and never read back out. A revoked key stops
working on the next request on every replica: each request looks its key up here."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from deckgen.errors import ConfigError, DeckgenError
from deckgen.store.database import Tables, new_id, unstorable

PUBLIC_COLUMNS = "id, name, created_at, revoked"  # never key_hash


class KeyNotFound(DeckgenError):
    code = "key_not_found"
    http_status = 404


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: float
    revoked: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(row["id"], row["name"], float(row["created_at"]), bool(row["revoked"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeyTables(Tables):
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
        """The owner a key acts as (`key:<name>`), or None for an unknown or revoked key."""
        if unstorable(key_hash):
            return None
        with self.tx(readonly=True) as cur:
            cur.execute("SELECT name FROM api_keys WHERE key_hash = ? AND revoked = 0",
                        (key_hash,))
            row = cur.fetchone()
        return f"key:{row['name']}" if row else None

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first; never the hash."""
        with self.tx(readonly=True) as cur:
            cur.execute(f"SELECT {PUBLIC_COLUMNS} FROM api_keys ORDER BY created_at, name")
            return [ApiKey.from_row(r) for r in cur.fetchall()]

    def revoke_key(self, name_or_id: str) -> ApiKey:
        """Revoke a key by its id or its name (revoking twice is harmless); the key as it
        is now."""
        if unstorable(name_or_id):
            raise KeyNotFound(f"no API key {name_or_id!r}")
        with self.tx() as cur:
            cur.execute(f"SELECT {PUBLIC_COLUMNS} FROM api_keys WHERE id = ?", (name_or_id,))
            row = cur.fetchone()
            if row is None:
                cur.execute(f"SELECT {PUBLIC_COLUMNS} FROM api_keys WHERE name = ?",
                            (name_or_id,))
                row = cur.fetchone()
            if row is None:
                raise KeyNotFound(f"no API key named {name_or_id!r} and none with that id")
            cur.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (row["id"],))
        return ApiKey.from_row({**row, "revoked": 1})
