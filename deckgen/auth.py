"""Who is calling: a CRM with an API key, or a person in Google Slides with a Google
identity token (verified with google-auth against the configured audience and domains).

API keys are random, shown once when created (`deckgen keys create NAME`) and stored only
as a SHA-256 hash. A caller's identity is its `owner` string; a caller only sees its jobs."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from deckgen.errors import DeckgenError
from deckgen.store import Store

KEY_PREFIX = "dk_"
GOOGLE_CERTS = "https://www.googleapis.com/oauth2/v1/certs"


class Unauthenticated(DeckgenError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(DeckgenError):
    code = "forbidden"
    http_status = 403


@dataclass(frozen=True)
class Caller:
    owner: str  # "key:<name>" or "google:<email>"
    user_token: str | None = None  # the person's OAuth token, to edit their own deck


def new_key() -> tuple[str, str]:
    """A new API key and the hash to store."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Authenticator:
    def __init__(self, store: Store, audience: str | None, allowed_domains: tuple[str, ...],
                 certs_url: str = GOOGLE_CERTS) -> None:
        self.store = store
        self.audience = audience
        self.allowed_domains = allowed_domains
        self.certs_url = certs_url

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        header = headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <API key "
                                  "or Google identity token>'")
        if token.startswith(KEY_PREFIX):
            owner = self.store.key_owner(hash_key(token))
            if owner is None:
                raise Unauthenticated("unknown or revoked API key")
            return Caller(owner)
        if token.count(".") == 2:
            return Caller(self._google(token), headers.get("X-Goog-User-Token") or None)
        raise Unauthenticated("the bearer token is neither an API key nor a Google identity token")

    def _google(self, token: str) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2 import id_token

        if not self.audience:
            raise Unauthenticated("Google sign-in is not configured on this server "
                                  "(DECKGEN_GOOGLE_AUDIENCE is not set)")
        try:
            claims = id_token.verify_token(
                token, google.auth.transport.requests.Request(), audience=self.audience,
                certs_url=self.certs_url, clock_skew_in_seconds=10)
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthenticated(f"the Google identity token was refused: {exc}") from None
        if claims.get("iss") not in ("accounts.google.com", "https://accounts.google.com"):
            raise Unauthenticated("the identity token was not issued by Google")
        email = str(claims.get("email") or "")
        if not email or not claims.get("email_verified", False):
            raise Unauthenticated("the identity token carries no verified email")
        domain = str(claims.get("hd") or email.rpartition("@")[2]).lower()
        if self.allowed_domains and domain not in self.allowed_domains:
            raise Forbidden(f"accounts from {domain} may not use this deckgen server")
        return f"google:{email.lower()}"
