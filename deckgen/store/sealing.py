"""Payloads at rest: what the store keeps of a brief (a job's request, its generated deck,
each generation's prompt and output) is encrypted when DECKGEN_STORE_KEY is set.

Fernet (the `cryptography` package: AES-128-CBC with HMAC-SHA256, a timestamped token) seals
each value as text prefixed `fernet:`, so sealed and plain values can live side by side: rows
written before a key was set still read, and rows are sealed from the moment it is. Reading
a sealed value without the key, or with another key, is a clear error, never garbage. The
key is per deployment (`deckgen keys` does not touch it); keep it in a secret store."""

from __future__ import annotations

from deckgen.errors import ConfigError, DeckgenError

PREFIX = "fernet:"


class SealedValue(DeckgenError):
    code = "sealed_value"
    http_status = 503


class Sealer:
    def __init__(self, key: str | None = None) -> None:
        self.fernet = None
        if key:
            from cryptography.fernet import Fernet

            try:
                self.fernet = Fernet(key.encode())
            except ValueError:
                raise ConfigError("DECKGEN_STORE_KEY must be a Fernet key: 32 url-safe "
                                  "base64-encoded bytes (python -c 'from cryptography.fernet "
                                  "import Fernet; print(Fernet.generate_key().decode())')") \
                    from None

    def seal(self, text: str) -> str:
        if self.fernet is None:
            return text
        return PREFIX + self.fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, text: str | None) -> str | None:
        if text is None or not text.startswith(PREFIX):
            return text
        if self.fernet is None:
            raise SealedValue("the store holds encrypted payloads and DECKGEN_STORE_KEY is not "
                              "set: set the key they were written with")
        from cryptography.fernet import InvalidToken

        try:
            return self.fernet.decrypt(text[len(PREFIX):].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SealedValue("an encrypted payload in the store does not open with "
                              "DECKGEN_STORE_KEY: it was written with another key") from None


_sealer = Sealer()


def configure(key: str | None) -> None:
    """The key for this process (the Store sets it from configuration)."""
    global _sealer
    _sealer = Sealer(key)


def seal(text: str) -> str:
    return _sealer.seal(text)


def unseal(text: str | None) -> str | None:
    return _sealer.open(text)
