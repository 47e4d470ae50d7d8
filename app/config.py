"""The gateway's settings: one `Settings`, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    host: str = "127.0.0.1"
    port: int = Field(9099, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    data_dir: Path = Path("data")
    persona_path: Path = Path("persona.json")
    api_keys: CommaList = []
    cors_origins: CommaList = []
    docs_enabled: bool = True

    default_model: str = ""
    fallback_models: CommaList = []
    local_fallback: bool = False

    request_timeout: float = Field(45.0, gt=0)
    total_timeout: float = Field(600.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    retry_attempts: int = Field(2, ge=1, le=10)
    retry_backoff: float = Field(0.25, ge=0)
    retry_backoff_max: float = Field(2.0, ge=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset: float = Field(30.0, gt=0)
    models_cache_ttl: float = Field(10.0, ge=0)

    ollama_base_url: str = "http://localhost:11434"
    ollama_auto_pull: bool = True
    ollama_pull_timeout: float = Field(3600.0, gt=0)
    ollama_num_ctx: int | None = Field(None, gt=0)
    ollama_keep_alive: str | None = None

    openai_api_key: str = ""
    openai_base_url: str = ""
    llamacpp_base_url: str = ""
    llamacpp_api_key: str = ""

    local_enabled: bool = True
    local_model_path: str = ""
    local_model_name: str = ""
    local_chat_format: str = ""
    local_n_ctx: int = Field(4096, ge=256)
    local_threads: int = Field(0, ge=0)
    local_max_tokens: int = Field(512, ge=1)

    enabled_tools: CommaList | None = None
    tool_timeout: float = Field(20.0, gt=0)
    max_tool_steps: int = Field(5, ge=1, le=50)
    tool_activity_in_content: bool = True
    tool_keepalive: float = Field(5.0, gt=0)
    tool_detection: Literal["off", "patterns", "model"] = "patterns"
    tool_result_max_chars: int = Field(8000, ge=200)

    python_timeout: float = Field(10.0, gt=0)
    python_memory_mb: int = Field(256, ge=32)
    python_max_processes: int = Field(16, ge=1)
    python_output_limit: int = Field(10000, ge=100)

    search_backend: str = "auto"
    search_max_results: int = Field(5, ge=1, le=50)
    wikipedia_api_url: str = "https://{language}.wikipedia.org/w/api.php"
    wikipedia_language: str = "en"
    fetch_timeout: float = Field(10.0, gt=0)
    fetch_max_bytes: int = Field(2_000_000, ge=1000)
    fetch_max_chars: int = Field(8000, ge=200)
    fetch_max_redirects: int = Field(5, ge=0, le=20)
    fetch_allowed_networks: CommaList = []
    weather_geocoding_url: str = "https://geocoding-api.open-meteo.com/v1/search"
    weather_forecast_url: str = "https://api.open-meteo.com/v1/forecast"

    redis_url: str = ""
    redis_timeout: float = Field(2.0, gt=0)
    session_ttl: float = Field(30 * 86400.0, gt=0)
    max_session_messages: int = Field(200, ge=2)
    token_budget: int = Field(3000, ge=256)
    short_term_k: int = Field(6, ge=1)
    llm_cache_ttl: float = Field(3600.0, ge=0)
    tool_cache_ttl: CommaList = [
        "calculator=86400",
        "wikipedia=86400",
        "web_search=3600",
        "fetch_url=3600",
        "search_and_fetch=3600",
        "weather=600",
    ]
    api_keys_file: Path | None = None
    rate_limit_rpm: int | None = Field(None, ge=1)
    rate_limit_tpm: int | None = Field(None, ge=1)
    rate_limit_fail_open: bool = False
    trust_user_headers: bool = False

    @field_validator(
        "api_keys",
        "fallback_models",
        "cors_origins",
        "fetch_allowed_networks",
        "tool_cache_ttl",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("enabled_tools", mode="before")
    @classmethod
    def _tool_names(cls, value: object) -> object:
        """Unset or empty: the default set; `none`: no tools; else the names given."""
        if isinstance(value, str):
            names = [item.strip() for item in value.split(",") if item.strip()]
            if not names:
                return None
            return [] if [n.lower() for n in names] == ["none"] else names
        return value

    @field_validator("fetch_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network such as 10.0.0.0/8") from None
        return value

    @field_validator("tool_cache_ttl")
    @classmethod
    def _tool_ttls(cls, value: list[str]) -> list[str]:
        for item in value:
            name, sep, seconds = item.partition("=")
            try:
                ok = bool(sep and name.strip()) and float(seconds) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{item!r} is not tool=seconds, such as weather=600")
        return value

    @property
    def tool_cache_ttls(self) -> dict[str, float]:
        """Seconds each tool's results are cached; tools not named are not cached."""
        pairs = (item.partition("=") for item in self.tool_cache_ttl)
        return {name.strip(): float(seconds) for name, _, seconds in pairs}

    @field_validator(
        "ollama_num_ctx",
        "ollama_keep_alive",
        "api_keys_file",
        "rate_limit_rpm",
        "rate_limit_tpm",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "ollama_base_url",
        "openai_base_url",
        "llamacpp_base_url",
        "wikipedia_api_url",
        "weather_geocoding_url",
        "weather_forecast_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def openai_url(self) -> str:
        """OpenAI's URL when only a key is given; empty when the provider is not configured."""
        if self.openai_base_url:
            return self.openai_base_url
        return "https://api.openai.com/v1" if self.openai_api_key else ""


class ConfigError(Exception):
    """Settings that cannot work; the message says which and why."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
