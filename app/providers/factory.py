"""The providers the settings call for, and why the others were skipped."""

from __future__ import annotations

import aiohttp

from app.config import ProviderSettings
from app.providers.base import Capabilities, Provider
from app.providers.base_prompt import PersonaText
from app.providers.local import LocalModelUnavailable, LocalProvider, resolve_model
from app.providers.ollama import OllamaProvider
from app.providers.openai_compat import OpenAICompatProvider


def build_providers(
    settings: ProviderSettings,
    session: aiohttp.ClientSession,
    persona: PersonaText | None = None,
) -> tuple[list[Provider], dict[str, str]]:
    """Active providers in routing order, and `{name: reason}` for the skipped ones; a reason
    names the setting that would enable the provider. `persona` is what the engine puts in
    system messages, which the embedded model shortens when it is prompted as a base model."""
    active: list[Provider] = []
    skipped: dict[str, str] = {}
    if settings.ollama_base_url:
        active.append(OllamaProvider(settings, session))
    else:
        skipped["ollama"] = "OLLAMA_BASE_URL is empty (set it to Ollama's URL to enable it)"
    if settings.openai_url:
        active.append(
            OpenAICompatProvider(
                "openai",
                settings.openai_url,
                settings.openai_api_key,
                session,
                capabilities=Capabilities(multiple_choices=True, custom_tools=True),
                connect_timeout=settings.connect_timeout,
                request_timeout=settings.request_timeout,
            )
        )
    else:
        skipped["openai"] = (
            "neither OPENAI_API_KEY nor OPENAI_BASE_URL is set (set either to enable it)"
        )
    if settings.llamacpp_base_url:
        root = settings.llamacpp_base_url.removesuffix("/v1")
        active.append(
            OpenAICompatProvider(
                "llamacpp",
                f"{root}/v1",
                settings.llamacpp_api_key,
                session,
                capabilities=Capabilities(multiple_choices=False),
                health_url=f"{root}/health",
                connect_timeout=settings.connect_timeout,
                request_timeout=settings.request_timeout,
            )
        )
    else:
        skipped["llamacpp"] = (
            "LLAMACPP_BASE_URL is empty (set it to a llama.cpp server's URL to enable it)"
        )
    try:
        active.append(LocalProvider(settings, resolve_model(settings), persona))
    except LocalModelUnavailable as exc:
        skipped["local"] = str(exc)
    return active, skipped


def on_by_default(settings: ProviderSettings) -> frozenset[str]:
    """The providers active only through a default setting, not because they were configured:
    Ollama at its default URL. When nothing listens there, it is absent rather than down."""
    default = ProviderSettings.model_fields["ollama_base_url"].default
    return frozenset({"ollama"}) if settings.ollama_base_url == default else frozenset()
