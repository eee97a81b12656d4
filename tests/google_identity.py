"""A stand-in for Google's identity-token issuer: an RSA key, its X.509 certificate served
as JSON at a certs URL on 127.0.0.1 (the format of googleapis.com/oauth2/v1/certs), and a
signer for identity tokens. google-auth verifies the tokens against it for real."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def _key_and_cert() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deckgen-test-issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, cert.public_bytes(serialization.Encoding.PEM)


class IdentityIssuer:
    def __init__(self, audience: str = "deckgen-test-client") -> None:
        self.audience = audience
        self.kid = "test-key-1"
        pem, self.cert = _key_and_cert()
        self.signer = crypt.RSASigner.from_string(pem, key_id=self.kid)
        other, _ = _key_and_cert()
        self.forger = crypt.RSASigner.from_string(other, key_id=self.kid)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.certs_url = f"http://127.0.0.1:{self.server.server_port}/oauth2/v1/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @Request.application
    def app(self, request: Request) -> Response:
        return Response(json.dumps({self.kid: self.cert.decode()}),
                        content_type="application/json")

    def token(self, email: str = "rep@acme-consulting.com", *, forged: bool = False,
              expired: bool = False, audience: str | None = None, **claims: Any) -> str:
        now = int(time.time()) - (7200 if expired else 0)
        payload = {"iss": "https://accounts.google.com", "aud": audience or self.audience,
                   "sub": "1234567890", "email": email, "email_verified": True,
                   "hd": email.rpartition("@")[2], "iat": now, "exp": now + 3600, **claims}
        return jwt.encode(self.forger if forged else self.signer, payload).decode()

    def stop(self) -> None:
        self.server.shutdown()
