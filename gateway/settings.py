"""Settings: one pydantic-settings class, read from the environment and ``.env``.

Handed to ``create_app(settings)``; nothing reads the environment at import time.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from data.db import PoolSettings

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str | None = None
    database_read_url: str | None = None
    redis_url: str | None = None
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
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(10.0, gt=0)
    db_pool_recycle: int = Field(1800, ge=-1)
    db_pool_pre_ping: bool = True
    db_statement_timeout_ms: int = Field(15_000, ge=0)

    enable_docs: bool | None = None
    enable_graphiql: bool | None = None

    # Operations (see README "Operating it").
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    health_timeout_seconds: float = Field(2.0, gt=0)
    shutdown_grace_seconds: float = Field(25.0, gt=0)
    shutdown_drain_seconds: float = Field(0.0, ge=0)
    prometheus_multiproc_dir: Path | None = None
    web_concurrency: int = Field(1, ge=1)
    run_migrations: bool = False

    @field_validator("cors_origins", "trusted_hosts", mode="before")
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
            size=self.db_pool_size, max_overflow=self.db_max_overflow,
            timeout=self.db_pool_timeout, recycle=self.db_pool_recycle,
            pre_ping=self.db_pool_pre_ping, statement_timeout_ms=self.db_statement_timeout_ms,
        )

    @property
    def docs_enabled(self) -> bool:
        return self.enable_docs if self.enable_docs is not None else not self.is_production

    @property
    def graphiql_enabled(self) -> bool:
        return (
            self.enable_graphiql if self.enable_graphiql is not None else not self.is_production
        )

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
