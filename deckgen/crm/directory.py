"""Which CRMs this server can reach and as whom: the settings read from the environment
(one set of credentials per CRM, and optionally per tenant from DECKGEN_CRM_TENANTS), and
the directory that hands a caller the provider for its tenant, built once and reused.

Per-tenant credentials: DECKGEN_CRM_TENANTS names a YAML file mapping an owner (an API
key's `key:<name>`, or `google:<email>`/`google:@domain` for Slides users) to its own
credentials, e.g.

    key:acme-crm:
      salesforce: {url: https://acme.my.salesforce.com, client_id: ..., client_secret: ...}
      hubspot: {token: pat-...}

An owner without an entry uses the server-wide credentials from the environment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deckgen.crm import CRMS, LABELS, CrmProvider
from deckgen.crm.errors import CrmMappingError, CrmNotConfigured
from deckgen.crm.mapping import FieldMapping, load_mapping
from deckgen.errors import ConfigError

__all__ = ["CrmDirectory", "CrmSettings", "HubSpotCredentials", "SalesforceCredentials"]

HUBSPOT_URL = "https://api.hubapi.com"
SALESFORCE_API_VERSION = "61.0"


@dataclass(frozen=True)
class SalesforceCredentials:
    """OAuth 2.0 client-credentials flow of a Salesforce connected app: the token comes from
    `{url}/services/oauth2/token` and is refreshed when Salesforce says it expired."""

    url: str  # https://yourorg.my.salesforce.com
    client_id: str
    client_secret: str = field(repr=False)
    api_version: str = SALESFORCE_API_VERSION
    ca_bundle: str | None = None  # a private CA (a proxy); None: the system's


@dataclass(frozen=True)
class HubSpotCredentials:
    """A HubSpot private-app (or OAuth) access token."""

    token: str = field(repr=False)
    url: str = HUBSPOT_URL
    ca_bundle: str | None = None


Credentials = SalesforceCredentials | HubSpotCredentials


def _salesforce(values: Mapping[str, Any], where: str,
                ca_bundle: str | None) -> SalesforceCredentials | None:
    url, cid, secret = (values.get(k) for k in ("url", "client_id", "client_secret"))
    if not (url or cid or secret):
        return None
    if not (url and cid and secret):
        raise ConfigError(f"{where}: Salesforce needs url, client_id and client_secret "
                          "together")
    if not str(url).startswith("https://"):
        raise ConfigError(f"{where}: the Salesforce url must start with https://")
    return SalesforceCredentials(str(url).rstrip("/"), str(cid), str(secret),
                                 str(values.get("api_version") or SALESFORCE_API_VERSION),
                                 ca_bundle)


def _hubspot(values: Mapping[str, Any], where: str,
             ca_bundle: str | None) -> HubSpotCredentials | None:
    token = values.get("token")
    if not token:
        if values.get("url"):
            raise ConfigError(f"{where}: HubSpot needs a token (a private-app access token)")
        return None
    url = str(values.get("url") or HUBSPOT_URL).rstrip("/")
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError(f"{where}: the HubSpot url must start with https://")
    return HubSpotCredentials(str(token), url, ca_bundle)


@dataclass(frozen=True)
class CrmSettings:
    salesforce: SalesforceCredentials | None = None
    hubspot: HubSpotCredentials | None = None
    mappings: dict[str, Path] = field(default_factory=dict)  # crm -> operator's file
    tenants: dict[str, dict[str, Credentials]] = field(default_factory=dict)
    salesforce_webhook_secret: str | None = field(default=None, repr=False)
    hubspot_app_secret: str | None = field(default=None, repr=False)
    webhook_url: str | None = None  # the public base URL HubSpot signs (v3 includes it)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CrmSettings:
        ca = env.get("DECKGEN_CRM_CA_BUNDLE") or None
        sf = _salesforce({"url": env.get("DECKGEN_SALESFORCE_URL"),
                          "client_id": env.get("DECKGEN_SALESFORCE_CLIENT_ID"),
                          "client_secret": env.get("DECKGEN_SALESFORCE_CLIENT_SECRET"),
                          "api_version": env.get("DECKGEN_SALESFORCE_API_VERSION")},
                         "DECKGEN_SALESFORCE_*", ca)
        hs = _hubspot({"token": env.get("DECKGEN_HUBSPOT_TOKEN"),
                       "url": env.get("DECKGEN_HUBSPOT_URL")}, "DECKGEN_HUBSPOT_*", ca)
        mappings = {crm: Path(p) for crm in CRMS
                    if (p := env.get(f"DECKGEN_{crm.upper()}_MAPPING"))}
        for crm, path in mappings.items():
            try:  # a broken mapping is found at start, not by the first caller
                load_mapping(crm, path)
            except CrmMappingError as exc:
                raise ConfigError(exc.message) from None
        tenants = _tenants(env.get("DECKGEN_CRM_TENANTS"), ca)
        return cls(sf, hs, mappings, tenants,
                   env.get("DECKGEN_SALESFORCE_WEBHOOK_SECRET") or None,
                   env.get("DECKGEN_HUBSPOT_APP_SECRET") or None,
                   (env.get("DECKGEN_PUBLIC_URL") or "").rstrip("/") or None)

    @property
    def connected(self) -> bool:
        """Any CRM connected, server-wide or for a tenant."""
        return bool(self.salesforce or self.hubspot or any(self.tenants.values()))

    def credentials(self, crm: str, owner: str | None) -> Credentials | None:
        tenant = self.tenants.get(owner or "", {})
        if crm in tenant:
            return tenant[crm]
        found: Credentials | None = getattr(self, crm, None)
        return found


def _tenants(path: str | None, ca: str | None) -> dict[str, dict[str, Credentials]]:
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"DECKGEN_CRM_TENANTS: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"DECKGEN_CRM_TENANTS: {path} maps owners to credentials")
    out: dict[str, dict[str, Credentials]] = {}
    for owner, crms in data.items():
        if not isinstance(crms, dict) or set(crms) - set(CRMS):
            raise ConfigError(f"DECKGEN_CRM_TENANTS: {owner} maps salesforce: and/or "
                              "hubspot: to credentials")
        entry: dict[str, Credentials] = {}
        where = f"DECKGEN_CRM_TENANTS {owner}"
        if isinstance(crms.get("salesforce"), dict):
            sf = _salesforce(crms["salesforce"], where, ca)
            if sf:
                entry["salesforce"] = sf
        if isinstance(crms.get("hubspot"), dict):
            hs = _hubspot(crms["hubspot"], where, ca)
            if hs:
                entry["hubspot"] = hs
        out[str(owner)] = entry
    return out


class CrmDirectory:
    """The provider for (crm, tenant), built on first use and kept (a provider holds its
    OAuth token and HTTP connections)."""

    def __init__(self, settings: CrmSettings) -> None:
        self.settings = settings
        self._providers: dict[tuple[str, Credentials], CrmProvider] = {}
        self._mappings: dict[str, FieldMapping] = {}
        self._lock = threading.Lock()

    def configured(self, owner: str | None = None) -> dict[str, bool]:
        return {crm: self.settings.credentials(crm, owner) is not None for crm in CRMS}

    def listing(self, owner: str | None = None) -> list[dict[str, Any]]:
        return [{"name": crm, "label": LABELS[crm], "configured": ok}
                for crm, ok in self.configured(owner).items()]

    def mapping(self, crm: str) -> FieldMapping:
        with self._lock:
            if crm not in self._mappings:
                self._mappings[crm] = load_mapping(crm, self.settings.mappings.get(crm))
            return self._mappings[crm]

    def provider(self, crm: str, owner: str | None = None) -> CrmProvider:
        if crm not in CRMS:
            raise CrmNotConfigured(f"unknown CRM {crm!r}; deckgen reads "
                                   f"{' or '.join(CRMS)}")
        creds = self.settings.credentials(crm, owner)
        if creds is None:
            raise CrmNotConfigured(f"{LABELS[crm]} is not connected on this server; the "
                                   f"operator sets DECKGEN_{crm.upper()}_* (see the README)")
        mapping = self.mapping(crm)
        with self._lock:
            key = (crm, creds)
            if key not in self._providers:
                self._providers[key] = _build(crm, creds, mapping)
            return self._providers[key]


def _build(crm: str, creds: Credentials, mapping: FieldMapping) -> CrmProvider:
    # the CRM clients are imported only by a server that uses them
    if isinstance(creds, SalesforceCredentials):
        from deckgen.crm.salesforce import SalesforceProvider

        return SalesforceProvider(creds, mapping)
    from deckgen.crm.hubspot import HubSpotProvider

    return HubSpotProvider(creds, mapping)
