"""Settings: the documented environment names, `.env` files, and readable ConfigErrors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings, setting_names

REPO = Path(__file__).resolve().parent.parent

DOCUMENTED = (
    "HOST",
    "PORT",
    "DEFAULT_MODEL",
    "OLLAMA_BASE_URL",
    "OLLAMA_AUTO_PULL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LLAMACPP_BASE_URL",
    "LOCAL_MODEL_PATH",
    "FALLBACK_MODELS",
    "REQUEST_TIMEOUT",
    "TOTAL_TIMEOUT",
    "API_KEYS",
    "LOG_LEVEL",
    "DATA_DIR",
    "PERSONA_PATH",
    "MODELS_CACHE_TTL",
    "LOCAL_ENABLED",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the environment the tests run in."""
    for name in setting_names():
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults() -> None:
    settings = load_settings(_env_file=None)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 9099
    assert settings.providers.request_timeout == 45
    assert settings.providers.total_timeout == 600
    assert settings.server.log_level == "INFO"
    assert settings.server.log_format == "human"
    assert settings.server.log_content is False
    assert settings.server.data_dir == Path("data")
    assert settings.security.api_keys == []
    assert settings.providers.fallback_models == []
    assert settings.providers.default_model == ""
    assert settings.providers.ollama_base_url == "http://localhost:11434"
    assert settings.providers.ollama_auto_pull is True
    assert settings.providers.openai_url == ""
    assert settings.providers.llamacpp_base_url == ""
    assert settings.providers.models_cache_ttl == 10


def test_documented_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "HOST": "0.0.0.0",
        "PORT": "8123",
        "DEFAULT_MODEL": "ollama/llama3.2",
        "OLLAMA_BASE_URL": "http://ollama:11434/",
        "OLLAMA_AUTO_PULL": "false",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://vllm:8000/v1",
        "LLAMACPP_BASE_URL": "http://llama:8080",
        "LOCAL_MODEL_PATH": "/models/tiny.gguf",
        "FALLBACK_MODELS": "openai/gpt-4o-mini, llamacpp/qwen ,,",
        "REQUEST_TIMEOUT": "12.5",
        "TOTAL_TIMEOUT": "99",
        "API_KEYS": "k1,k2",
        "LOG_LEVEL": "debug",
        "DATA_DIR": str(tmp_path / "state"),
        "PERSONA_PATH": str(tmp_path / "persona.json"),
        "MODELS_CACHE_TTL": "0",
        "LOCAL_ENABLED": "false",
    }
    assert set(env) == set(DOCUMENTED)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(_env_file=None)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8123
    assert settings.providers.default_model == "ollama/llama3.2"
    assert (
        settings.providers.ollama_base_url == "http://ollama:11434"
    )  # the trailing slash is dropped
    assert settings.providers.ollama_auto_pull is False
    assert settings.providers.openai_api_key == "sk-test"
    assert settings.providers.openai_base_url == "http://vllm:8000/v1"
    assert settings.providers.openai_url == "http://vllm:8000/v1"
    assert settings.providers.llamacpp_base_url == "http://llama:8080"
    assert settings.providers.local_model_path == "/models/tiny.gguf"
    assert settings.providers.fallback_models == ["openai/gpt-4o-mini", "llamacpp/qwen"]
    assert settings.providers.request_timeout == 12.5
    assert settings.providers.total_timeout == 99
    assert settings.security.api_keys == ["k1", "k2"]
    assert settings.server.log_level == "DEBUG"
    assert settings.server.data_dir == tmp_path / "state"
    assert settings.server.persona_path == tmp_path / "persona.json"
    assert settings.providers.models_cache_ttl == 0
    assert settings.providers.local_enabled is False


def test_log_format_and_content_are_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_CONTENT", "true")
    settings = load_settings(_env_file=None)
    assert settings.server.log_format == "json"
    assert settings.server.log_content is True


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("port", "7000")
    assert load_settings(_env_file=None).server.port == 7000


def test_an_openai_key_alone_means_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load_settings(_env_file=None).providers.openai_url == "https://api.openai.com/v1"


def test_an_empty_base_url_disables_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", "")
    assert load_settings(_env_file=None).providers.ollama_base_url == ""


def test_a_single_api_key_and_an_empty_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " only-one ")
    assert load_settings(_env_file=None).security.api_keys == ["only-one"]
    monkeypatch.setenv("API_KEYS", "")
    assert load_settings(_env_file=None).security.api_keys == []


def test_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# a comment\n"
        "PORT=7777\n"
        "API_KEYS=a,b,c\n"
        "FALLBACK_MODELS=ollama/x,openai/y\n"
        'DEFAULT_MODEL="openai/gpt-test"\n'
        "OLLAMA_AUTO_PULL=0\n"
        "SOMETHING_UNKNOWN=ignored\n",
        encoding="utf-8",
    )
    settings = load_settings(_env_file=env_file)
    assert settings.server.port == 7777
    assert settings.security.api_keys == ["a", "b", "c"]
    assert settings.providers.fallback_models == ["ollama/x", "openai/y"]
    assert settings.providers.default_model == "openai/gpt-test"
    assert settings.providers.ollama_auto_pull is False


def test_the_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=7777\nHOST=10.0.0.1\n", encoding="utf-8")
    monkeypatch.setenv("PORT", "8888")
    settings = load_settings(_env_file=env_file)
    assert settings.server.port == 8888
    assert settings.server.host == "10.0.0.1"


def test_dotenv_in_the_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("PORT=6543\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_settings().server.port == 6543
    assert load_settings().server.port == 6543


@pytest.mark.parametrize(
    ("name", "value", "detail"),
    [
        ("PORT", "abc", "integer"),
        ("PORT", "70000", "65535"),
        ("PORT", "0", "1"),
        ("REQUEST_TIMEOUT", "-1", "greater than 0"),
        ("REQUEST_TIMEOUT", "soon", "number"),
        ("OLLAMA_BASE_URL", "ftp://x", "http"),
        ("OPENAI_BASE_URL", "localhost:8000/v1", "http"),
        ("LLAMACPP_BASE_URL", "llama:8080", "http"),
        ("LOG_LEVEL", "loud", "DEBUG"),
        ("LOG_FORMAT", "yaml", "'human', 'json' or 'auto'"),
        ("OLLAMA_AUTO_PULL", "perhaps", "bool"),
        ("MODELS_CACHE_TTL", "-5", "greater than or equal to 0"),
        ("WATCHDOG_MODE", "kubernetes", "supervise"),
        ("WATCHDOG_INTERVAL", "0", "greater than 0"),
        ("WATCHDOG_COMMAND", "python -c 'unclosed", "shell-quoted"),
        ("WATCHDOG_LABEL", "=true", "Docker label"),
        ("ALERT_WEBHOOK_URL", "hooks.example/x", "http"),
        ("ALERT_ERROR_RATE", "5", "less than or equal to 1"),
    ],
)
def test_bad_values_raise_a_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, detail: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert name in message
    assert detail in message
    assert repr(value).lower() in message.lower()
    assert "Traceback" not in message


def test_every_bad_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("REQUEST_TIMEOUT", "-1")
    monkeypatch.setenv("OLLAMA_BASE_URL", "ftp://x")
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    for name in ("PORT", "REQUEST_TIMEOUT", "OLLAMA_BASE_URL"):
        assert name in message


def test_load_settings_takes_overrides() -> None:
    settings = load_settings(_env_file=None, port=1234, api_keys=["x"])
    assert settings.server.port == 1234
    assert settings.security.api_keys == ["x"]
    with pytest.raises(ConfigError, match="PORT"):
        load_settings(_env_file=None, port=-1)


@pytest.mark.parametrize("name", ["OLLAMA_NUM_CTX", "OLLAMA_KEEP_ALIVE"])
def test_an_empty_optional_value_means_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """`OLLAMA_NUM_CTX=` (as .env.example ships it) must not fail int parsing, nor
    `OLLAMA_KEEP_ALIVE=` be sent to Ollama as an empty keep_alive."""
    monkeypatch.setenv(name, "")
    settings = load_settings(_env_file=None)
    assert getattr(settings.providers, name.lower()) is None


def test_the_shipped_env_example_loads_as_the_defaults() -> None:
    """.env.example says "copy to .env and edit": unedited, it must load (as the defaults)."""
    settings = load_settings(_env_file=REPO / ".env.example")
    assert settings == load_settings(_env_file=None)


def test_the_env_example_lists_every_setting() -> None:
    example = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert listed == {name.upper() for name in setting_names()}


def test_the_watchdog_runs_this_gateway_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(_env_file=None).ops.watchdog_argv == [sys.executable, "-m", "app", "serve"]
    monkeypatch.setenv("WATCHDOG_COMMAND", "ai-gateway serve --port '9 1'")
    assert load_settings(_env_file=None).ops.watchdog_argv == [
        "ai-gateway",
        "serve",
        "--port",
        "9 1",
    ]
