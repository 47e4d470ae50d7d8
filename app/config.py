"""The gateway's settings, in sections: each section reads its own environment names (and `.env`)
and each component is given only the sections it uses.

| section   | what                                                              |
|-----------|-------------------------------------------------------------------|
| server    | where to listen, logs (level, form, content), the data directory, |
|           | persona, CORS                                                     |
| providers | routing, fallbacks, timeouts, retries, breakers, each provider    |
| tools     | which tools, their limits, the tool loop, each tool's services    |
| state     | Redis, sessions, context packing, caches                          |
| security  | API keys, rate limits, whom a request may act for                 |
| knowledge | the embedder, Chroma, documents, retrieval, per-user memory       |
| ops       | metrics, tracing, the watchdog, alerts                            |
| pipelines | pipelines and their agents' models, intents, the broker           |
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _empty_is_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _http_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


class _Section(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9099, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["human", "json", "auto"] = "human"
    log_content: bool = False
    data_dir: Path = Path("data")
    persona_path: Path = Path("persona.json")
    cors_origins: CommaList = []
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    docs_enabled: bool = True

    _cors = field_validator("cors_origins", mode="before")(_split)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class ProviderSettings(_Section):
    default_model: str = ""
    default_provider: str = ""
    model_aliases: CommaList = []
    task_model: str = ""
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

    _fallbacks = field_validator("fallback_models", mode="before")(_split)
    _unset = field_validator("ollama_num_ctx", "ollama_keep_alive", mode="before")(_empty_is_unset)
    _urls = field_validator("ollama_base_url", "openai_base_url", "llamacpp_base_url")(_http_url)
    _aliases_split = field_validator("model_aliases", mode="before")(_split)

    @field_validator("model_aliases")
    @classmethod
    def _aliases(cls, value: list[str]) -> list[str]:
        for item in value:
            name, sep, target = item.partition("=")
            if not (sep and name.strip() and target.strip()):
                raise ValueError(f"{item!r} is not alias=provider/model, such as gpt=openai/gpt-4o")
        return value

    @property
    def model_alias_map(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.model_aliases)
        return {name.strip(): target.strip() for name, _, target in pairs}

    @property
    def openai_url(self) -> str:
        """OpenAI's URL when only a key is given; empty when the provider is not configured."""
        if self.openai_base_url:
            return self.openai_base_url
        return "https://api.openai.com/v1" if self.openai_api_key else ""


class ToolSettings(_Section):
    enabled_tools: CommaList | None = None
    tool_timeout: float = Field(20.0, gt=0)
    max_tool_steps: int = Field(5, ge=1, le=50)
    tool_activity_in_content: bool = False
    status_events: Literal["auto", "on", "off"] = "auto"
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

    _networks_split = field_validator("fetch_allowed_networks", mode="before")(_split)
    _urls = field_validator("wikipedia_api_url", "weather_geocoding_url", "weather_forecast_url")(
        _http_url
    )

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


class StateSettings(_Section):
    redis_url: str = ""
    redis_timeout: float = Field(2.0, gt=0)
    session_ttl: float = Field(30 * 86400.0, gt=0)
    responses_ttl: float = Field(30 * 86400.0, gt=0)
    feedback_ttl: float = Field(30 * 86400.0, gt=0)
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

    _ttl_split = field_validator("tool_cache_ttl", mode="before")(_split)

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


class SecuritySettings(_Section):
    api_keys: CommaList = []
    admin_api_keys: CommaList = []
    api_keys_file: Path | None = None
    rate_limit_rpm: int | None = Field(None, ge=1)
    rate_limit_tpm: int | None = Field(None, ge=1)
    rate_limit_fail_open: bool = False
    trust_user_headers: bool = False

    _keys = field_validator("api_keys", "admin_api_keys", mode="before")(_split)
    _unset = field_validator("api_keys_file", "rate_limit_rpm", "rate_limit_tpm", mode="before")(
        _empty_is_unset
    )


class KnowledgeSettings(_Section):
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_fallback_model: str = ""
    embedding_batch: int = Field(32, ge=1, le=1024)
    chroma_host: str = ""
    chroma_port: int = Field(8000, ge=1, le=65535)
    rag_enabled: bool = True
    rag_top_k: int = Field(5, ge=1, le=50)
    rag_threshold: float = Field(0.4, ge=-1, le=1)
    rag_shared: bool = True
    chunk_tokens: int = Field(160, ge=33, le=8192)
    chunk_overlap: int = Field(32, ge=0, le=1024)
    max_document_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    index_allowed_roots: CommaList = []
    memory_enabled: bool = True
    memory_top_k: int = Field(30, ge=1, le=200)
    memory_threshold: float = Field(0.15, ge=-1, le=1)
    memory_model: str = "none"

    _roots = field_validator("index_allowed_roots", mode="before")(_split)

    @property
    def allowed_roots(self) -> list[Path]:
        return [Path(root).expanduser().resolve() for root in self.index_allowed_roots]


class OpsSettings(_Section):
    metrics_enabled: bool = True
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = Field("ai-gateway", min_length=1)

    _otlp = field_validator("otel_exporter_otlp_endpoint")(_http_url)

    watchdog_mode: Literal["supervise", "docker"] = "supervise"
    watchdog_url: str = ""
    watchdog_command: str = ""
    watchdog_interval: float = Field(10.0, gt=0)
    watchdog_timeout: float = Field(5.0, gt=0)
    watchdog_failures: int = Field(3, ge=1)
    watchdog_start_period: float = Field(60.0, ge=0)
    watchdog_grace: float = Field(15.0, ge=0)
    watchdog_backoff: float = Field(1.0, ge=0)
    watchdog_backoff_max: float = Field(60.0, ge=0)
    watchdog_restarts: int = Field(5, ge=1)
    watchdog_window_minutes: float = Field(15.0, gt=0)
    docker_socket: Path = Path("/var/run/docker.sock")
    watchdog_label: str = "ai-gateway.watchdog=true"

    alert_webhook_url: str = ""
    alert_reminder_minutes: float = Field(60.0, ge=0)
    alert_memory_percent: float = Field(90.0, ge=0, le=100)
    alert_p95_ms: float = Field(10_000.0, ge=0)
    alert_error_rate: float = Field(0.05, ge=0, le=1)
    alert_metrics_interval: float = Field(60.0, gt=0)
    alert_min_requests: int = Field(10, ge=1)

    _urls = field_validator("watchdog_url", "alert_webhook_url")(_http_url)

    @field_validator("watchdog_command")
    @classmethod
    def _command(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"is not a shell-quoted command: {exc}") from None
        return value.strip()

    @field_validator("watchdog_label")
    @classmethod
    def _label(cls, value: str) -> str:
        value = value.strip()
        if not value or value.startswith("="):
            raise ValueError("must be a Docker label, key=value or key, such as app.watchdog=true")
        return value

    @property
    def watchdog_argv(self) -> list[str]:
        """The command the supervisor runs: WATCHDOG_COMMAND, else this gateway's `serve`."""
        return shlex.split(self.watchdog_command) or [sys.executable, "-m", "app", "serve"]


BROKER_SCHEMES = ("redis:", "rediss:", "nats:", "tls:", "kafka:")
"""What BROKER_URL may start with: Redis Streams, NATS JetStream (`tls:` too), Kafka."""


class PipelineSettings(_Section):
    pipelines_file: Path | None = None
    planner_model: str = ""
    worker_model: str = ""
    critic_model: str = ""
    synthesizer_model: str = ""
    intents_file: Path | None = None
    intent_model: str = ""
    intent_warmup: bool = True

    broker_url: str = ""
    broker_prefix: str = Field("gateway", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    broker_visibility_timeout: float = Field(30.0, gt=0)
    broker_max_attempts: int = Field(3, ge=1, le=100)
    broker_concurrency: int = Field(16, ge=1, le=1024)
    broker_shutdown_grace: float = Field(30.0, ge=0)

    _file = field_validator("pipelines_file", "intents_file", mode="before")(_empty_is_unset)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(BROKER_SCHEMES):
            schemes = ", ".join(f"{scheme}//" for scheme in BROKER_SCHEMES)
            raise ValueError(f"must start with one of {schemes}, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings
    providers: ProviderSettings
    tools: ToolSettings
    state: StateSettings
    security: SecuritySettings
    knowledge: KnowledgeSettings
    ops: OpsSettings
    pipelines: PipelineSettings


SECTIONS: dict[str, type[_Section]] = {
    "server": ServerSettings,
    "providers": ProviderSettings,
    "tools": ToolSettings,
    "state": StateSettings,
    "security": SecuritySettings,
    "knowledge": KnowledgeSettings,
    "ops": OpsSettings,
    "pipelines": PipelineSettings,
}


def setting_names() -> list[str]:
    """Every setting's environment name, lower case."""
    return [name for section in SECTIONS.values() for name in section.model_fields]


class ConfigError(Exception):
    """Settings that cannot work; the message says which and why."""


def load_settings(_env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Every section from the environment and `_env_file`; `overrides` (flat setting names, as
    in the environment) win over both."""
    owner = {name: section for section, cls in SECTIONS.items() for name in cls.model_fields}
    unknown = sorted(set(overrides) - set(owner))
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    built: dict[str, _Section] = {}
    lines: list[str] = []
    for section, cls in SECTIONS.items():
        mine = {k: v for k, v in overrides.items() if owner[k] == section}
        try:
            built[section] = cls(_env_file=_env_file, **mine)  # type: ignore[call-arg]
        except ValidationError as exc:
            for err in exc.errors():
                name = ".".join(str(part) for part in err["loc"]).upper() or section
                lines.append(f"  {name}: {err['msg']} (got {err.get('input')!r})")
    if lines:
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return Settings(**built)  # type: ignore[arg-type]
