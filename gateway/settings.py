"""Settings: one pydantic-settings class, read from the environment and ``.env``.

Handed to ``create_app(settings)``; nothing reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from data.db import PoolSettings
from data.replica import ReplicaSettings

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Literal["development", "production", "test"] = "development"
    database_url: str | None = None
    database_read_url: str | None = None
    # Redis (see docs/operations.md "Redis"): one client per process, shared by the
    # response cache, rate limits, the replica floor and the readiness probe.
    redis_url: str | None = Field(
        None, description="redis://[user:password@]host:port/db, rediss:// for TLS"
    )
    redis_timeout_seconds: float = Field(
        0.5,
        gt=0,
        description="to connect, and for each reply; a call that overruns fails",
        # CACHE_REDIS_TIMEOUT_SECONDS: its name before it covered every Redis call.
        validation_alias=AliasChoices("redis_timeout_seconds", "cache_redis_timeout_seconds"),
    )
    redis_health_check_seconds: int = Field(
        30, ge=0, description="PING a connection idle this long before using it (0: never)"
    )
    redis_max_connections: int = Field(64, ge=1, description="per process")
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="host:port of each sentinel, comma-separated: the master is asked of them",
    )
    redis_sentinel_service: str = Field("mymaster", description="the master's name")
    redis_cluster: bool = Field(False, description="REDIS_URL names a node of a Redis Cluster")
    redis_client: Literal["batched", "redis-py"] = Field(
        "batched", description="one round trip per command, or a loop turn's together"
    )
    jwt_secret: str | None = None
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_private_key: str | None = Field(None, description="PEM text or a path to it")
    jwt_public_key: str | None = Field(None, description="PEM text or a path to it")
    jwt_issuer: str = "commerce-gateway"
    jwt_audience: str = "commerce-gateway-api"
    access_token_ttl: int = Field(900, ge=30)
    refresh_token_ttl: int = Field(30 * 86400, ge=60)
    data_dir: Path = Path("var")

    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(0, ge=0)
    db_pool_timeout: float = Field(10.0, gt=0)
    db_pool_recycle: int = Field(1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_pool_ping_after_idle: float = Field(2.0, ge=0)
    db_statement_timeout_ms: int = Field(15_000, ge=0)
    # With DATABASE_READ_URL (docs/operations.md "Read replica").
    db_replica_poll_seconds: float = Field(0.01, gt=0, le=10)
    db_replica_retry_seconds: float = Field(1.0, gt=0, le=300)
    db_replica_timeout_seconds: float = Field(1.0, gt=0, le=60)
    # PostgreSQL, client side: a frozen or unreachable server is an outage (503) within
    # these, before the request's own time limit (README "Errors").
    db_connect_timeout_seconds: float = Field(5.0, gt=0)
    db_command_timeout_seconds: float = Field(8.0, ge=0, description="0 turns it off")

    enable_docs: bool | None = None
    enable_graphiql: bool | None = None

    # Operations (see docs/operations.md).
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # Access lines are written in batches, at most this long after their request.
    log_flush_seconds: float = Field(0.05, ge=0, le=5)
    # Where the gateway bypasses a library on the hot path, "stock" uses the library's own
    # way instead (docs/design/: what each bypass measured, and how to measure it again).
    db_pool: Literal["tuned", "stock"] = "tuned"
    access_log_lines: Literal["tuned", "stock"] = "tuned"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    health_timeout_seconds: float = Field(2.0, gt=0)
    shutdown_grace_seconds: float = Field(25.0, gt=0)
    shutdown_drain_seconds: float = Field(0.0, ge=0)
    prometheus_multiproc_dir: Path | None = None
    web_concurrency: int = Field(1, ge=1)
    run_migrations: bool = False

    # Live order events (see docs/api.md "Live order events")
    # Every Redis key and channel this deployment uses starts with it, so deployments
    # (and test runs) sharing one Redis never meet.
    redis_prefix: str = Field("gateway", min_length=1, max_length=64)
    events_heartbeat_seconds: float = Field(15.0, gt=0)
    events_retry_ms: int = Field(3000, ge=0)
    events_queue_size: int = Field(64, ge=1, le=10_000)
    # Resolved credentials remembered per process (0 turns it off); the seconds bound how
    # long a process that missed a revocation message may trust its copy.
    principal_cache_size: int = Field(10_000, ge=0)
    principal_cache_seconds: float = Field(10.0, ge=0, le=300)

    # Rate limits (docs/operations.md "Rate limits")
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = Field(1200, ge=1, description="cost units refilled a minute")
    rate_limit_burst: int | None = Field(None, ge=1, description="bucket size; per-minute if unset")
    auth_rate_limit_per_minute: int = Field(20, ge=1)
    auth_rate_limit_burst: int | None = Field(None, ge=1)
    rate_limit_key_prefix: str = "gateway:rl:"
    rate_limit_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    login_backoff_failures: int = Field(5, ge=1)
    login_backoff_window_seconds: int = Field(900, ge=1)
    login_backoff_base_seconds: int = Field(30, ge=1)
    login_backoff_max_seconds: int = Field(3600, ge=1)
    # Account-wide, whatever the network: from this many failures in the window on, each
    # login for the account waits this long (never a lock; gateway.ratelimit.login_backoff).
    login_slowdown_failures: int = Field(20, ge=1)
    login_slowdown_seconds: float = Field(1.0, ge=0, le=10)
    password_hash_threads: int = Field(2, ge=1)
    password_hash_queue: int = Field(32, ge=0)

    @field_validator("rate_limit_trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for item in value if isinstance(value, list) else ():
            ipaddress.ip_network(str(item), strict=False)  # ValueError names the bad entry
        return value

    # GraphQL and HTTP limits, persisted queries (docs/operations.md "Limits")
    graphql_max_depth: int = Field(10, ge=1)
    graphql_max_aliases: int = Field(30, ge=0)
    graphql_max_tokens: int = Field(2000, ge=1)
    graphql_max_cost: int = Field(5000, ge=1)
    graphql_max_batch: int = Field(10, ge=0, description="0 turns batching off")
    graphql_introspection: bool | None = None  # default: on, except in production
    graphql_suggestions: bool | None = None  # "Did you mean ...": on, except in production
    graphql_allowlist: Path | None = Field(
        None, description="a persisted query manifest, or a directory of .graphql files"
    )
    graphql_allowlist_only: bool = False
    graphql_apq_redis_prefix: str = "gateway:apq:"
    max_body_bytes: int = Field(1_048_576, ge=1)
    max_query_string_bytes: int = Field(100_000, ge=1)
    # Request heads, checked by the HTTP protocol as they arrive (README "Limits").
    max_request_target_bytes: int = Field(8192, ge=256)
    max_header_count: int = Field(100, ge=8)
    max_header_line_bytes: int = Field(8192, ge=256)
    max_header_bytes: int = Field(16384, ge=1024)
    request_timeout_seconds: float = Field(10.0, gt=0)
    metrics_token: str | None = None

    # Response cache (see docs/operations.md "Response cache")
    cache_enabled: bool = True
    cache_ttl_seconds: int = Field(120, ge=1, le=86400)
    cache_prefix: str = Field("gw:", max_length=64)
    cache_max_entries: int = Field(10_000, ge=1)
    cache_max_body_bytes: int = Field(1_048_576, ge=1)
    cache_redis_retry_seconds: float = Field(1.0, ge=0)
    cache_lock_seconds: float = Field(5.0, gt=0)
    cache_lock_wait_seconds: float = Field(2.0, ge=0)
    # Invalidations a write could not send to Redis are kept in the database; every
    # process reads them this often, and serves from Redis only while its last complete
    # check began less than CACHE_TRUST_SECONDS ago (see docs/operations.md "Response cache").
    cache_outbox_poll_seconds: float = Field(0.5, gt=0, le=60)
    cache_trust_seconds: float = Field(2.0, gt=0, le=300)

    # Compiled reads: catalog reads as one SQL statement on PostgreSQL
    compiled_reads: bool = True
    # Plans kept per interface (one per operation shape, least recently used evicted
    # first), and the bytes of the last answers the compiled lane keeps to send again.
    compiled_plans_max_entries: int = Field(2_000, ge=1)
    compiled_memo_max_bytes: int = Field(8 * 1024 * 1024, ge=0)

    @field_validator("cors_origins", "trusted_hosts", "redis_sentinels", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _no_wildcard_origin_with_credentials(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS may not contain '*' when CORS_ALLOW_CREDENTIALS is on")
        return self

    @model_validator(mode="after")
    def _production_needs_a_real_secret(self) -> Settings:
        if self.jwt_algorithm != "HS256":
            if not (self.jwt_private_key and self.jwt_public_key):
                raise ValueError(
                    f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PRIVATE_KEY and JWT_PUBLIC_KEY"
                )
        elif self.environment == "production":
            if self.jwt_secret is None or self.jwt_secret.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("JWT_SECRET must be set to a real secret in production")
            if len(self.jwt_secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
        return self

    # Limits
    @model_validator(mode="after")
    def _production_needs_trusted_hosts(self) -> Settings:
        # Without it a forged Host header reaches absolute URLs (Link: rel="next").
        if self.is_production and (not self.trusted_hosts or "*" in self.trusted_hosts):
            raise ValueError("TRUSTED_HOSTS must list the gateway's host names in production")
        return self

    @model_validator(mode="after")
    def _allowlist_mode_needs_a_list(self) -> Settings:
        if self.graphql_allowlist_only and self.graphql_allowlist is None:
            raise ValueError("GRAPHQL_ALLOWLIST_ONLY needs GRAPHQL_ALLOWLIST (a manifest)")
        return self

    @model_validator(mode="after")
    def _trust_outlasts_a_poll(self) -> Settings:
        # A process that checks every poll must stay trusted from one check to the next.
        if self.cache_trust_seconds < 2 * self.cache_outbox_poll_seconds:
            raise ValueError("CACHE_TRUST_SECONDS must be at least twice CACHE_OUTBOX_POLL_SECONDS")
        return self

    @property
    def introspection_enabled(self) -> bool:
        chosen = self.graphql_introspection
        return chosen if chosen is not None else not self.is_production

    @property
    def suggestions_enabled(self) -> bool:
        chosen = self.graphql_suggestions
        return chosen if chosen is not None else not self.is_production

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def embedded(self) -> bool:
        """No ``DATABASE_URL``: the embedded SQLite file under ``DATA_DIR``."""
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.sqlite3').resolve()}"

    @property
    def pool(self) -> PoolSettings:
        return PoolSettings(
            size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            timeout=self.db_pool_timeout,
            recycle=self.db_pool_recycle,
            pre_ping=self.db_pool_pre_ping,
            ping_after_idle=self.db_pool_ping_after_idle,
            fair=self.db_pool == "tuned",
            statement_timeout_ms=self.db_statement_timeout_ms,
            connect_timeout=self.db_connect_timeout_seconds,
            command_timeout=self.db_command_timeout_seconds or None,
        )

    @property
    def replica(self) -> ReplicaSettings:
        return ReplicaSettings(
            poll_seconds=self.db_replica_poll_seconds,
            retry_seconds=self.db_replica_retry_seconds,
            timeout=self.db_replica_timeout_seconds,
        )

    @property
    def docs_enabled(self) -> bool:
        return self.enable_docs if self.enable_docs is not None else not self.is_production

    @property
    def graphiql_enabled(self) -> bool:
        return self.enable_graphiql if self.enable_graphiql is not None else not self.is_production

    @cached_property
    def signing_secret(self) -> str:
        """``JWT_SECRET``, or in development one generated once and kept in ``DATA_DIR``.

        Keeping it beside the embedded database means every worker and restart agrees.
        """
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            candidate = secrets.token_urlsafe(48)
            try:
                with path.open("x") as handle:  # the first worker to get here wins
                    handle.write(candidate)
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text().strip()


# Limits
def settings_error_text(error: ValidationError) -> str:
    """What is wrong with the settings, never the values given (they may be secrets)."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item.get("loc", ())).upper() or "settings"
        lines.append(f"  {where}: {item.get('msg', 'invalid')}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings() -> Settings:
    """``Settings()`` from the environment, or ``SystemExit`` naming what is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(f"gateway: {settings_error_text(exc)}") from None
