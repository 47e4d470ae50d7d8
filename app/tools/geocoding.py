"""Place names to coordinates and time zones through Open-Meteo's geocoding API (no key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import ToolError
from app.tools.context import ToolContext
from app.tools.http_json import get_json

SERVICE = "Open-Meteo geocoding"
CANDIDATES = 10
_QUALIFYING_FIELDS = ("country", "country_code", "admin1", "admin2", "admin3")


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    latitude: float
    longitude: float
    timezone: str
    region: str
    country: str

    def label(self) -> str:
        return ", ".join(part for part in (self.name, self.region, self.country) if part)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.label(),
            "latitude": self.latitude,
            "longitude": self.longitude,
            "timezone": self.timezone,
        }


async def find_place(context: ToolContext, query: str) -> Place | None:
    """The best match for `query`, or None. The API matches names only, so for "Paris, Texas"
    it is asked for "Paris" and the qualifiers after the comma pick among its answers (the
    first answer when none fits)."""
    parts = [part.strip() for part in query.split(",") if part.strip()]
    if not parts:
        return None
    name, *qualifiers = parts
    params: dict[str, str | int | float] = {
        "name": name,
        "count": CANDIDATES if qualifiers else 1,
        "language": "en",
        "format": "json",
    }
    data = await get_json(context.http, SERVICE, context.settings.weather_geocoding_url, params)
    results = [r for r in data.get("results") or [] if isinstance(r, dict)]
    if not results:
        return None
    wanted = [q.lower() for q in qualifiers]
    best = next((r for r in results if _fits(r, wanted)), results[0])
    try:
        latitude, longitude = float(best["latitude"]), float(best["longitude"])
    except (KeyError, TypeError, ValueError):
        raise ToolError(f"{SERVICE} answered without coordinates for '{query}'") from None
    return Place(
        name=str(best.get("name") or name),
        latitude=latitude,
        longitude=longitude,
        timezone=str(best.get("timezone") or ""),
        region=str(best.get("admin1") or ""),
        country=str(best.get("country") or ""),
    )


def _fits(result: dict[str, Any], qualifiers: list[str]) -> bool:
    known = [str(result.get(field) or "").lower() for field in _QUALIFYING_FIELDS]
    return all(any(q == value or q in value.split() for value in known) for q in qualifiers)
