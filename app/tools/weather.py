"""The `weather` tool: current conditions and a daily forecast for a place, from Open-Meteo's
geocoding and forecast APIs (no key needed)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from app.errors import InvalidRequest, ToolError
from app.tools.context import Register, ToolContext
from app.tools.geocoding import Place, find_place
from app.tools.http_json import get_json

SERVICE = "Open-Meteo"
CURRENT = {
    "temperature": "temperature_2m",
    "feels_like": "apparent_temperature",
    "humidity": "relative_humidity_2m",
    "precipitation": "precipitation",
    "wind_speed": "wind_speed_10m",
}
DAILY = {
    "high": "temperature_2m_max",
    "low": "temperature_2m_min",
    "precipitation": "precipitation_sum",
}
IMPERIAL = {
    "temperature_unit": "fahrenheit",
    "wind_speed_unit": "mph",
    "precipitation_unit": "inch",
}

WMO_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


def register_tools(register: Register, context: ToolContext) -> None:
    async def weather(
        location: str,
        days: Annotated[int, Field(ge=1, le=7)] = 3,
        units: Literal["metric", "imperial"] = "metric",
    ) -> dict[str, Any]:
        """Current weather and a daily forecast for a place, from Open-Meteo.

        Args:
            location: a place name, such as "Paris", "Paris, Texas" or "Springfield, Illinois".
            days: how many days of forecast, 1 to 7, starting today.
            units: "metric" (°C, km/h, mm) or "imperial" (°F, mph, inches).
        """
        return await forecast(context, location, days, units)

    register(weather)


async def forecast(context: ToolContext, location: str, days: int, units: str) -> dict[str, Any]:
    if not location.strip(" ,"):
        raise InvalidRequest("weather: a location is required", param="location")
    place = await find_place(context, location)
    if place is None:
        raise InvalidRequest(f"weather: no place named '{location}' was found", param="location")
    data = await get_json(
        context.http, SERVICE, context.settings.weather_forecast_url, _params(place, days, units)
    )
    current, daily = data.get("current"), data.get("daily")
    if not isinstance(current, dict) or not isinstance(daily, dict):
        raise ToolError(f"{SERVICE} answered without current conditions or a daily forecast")
    return {
        "location": place.summary(),
        "current": _current(current, data.get("current_units") or {}),
        "forecast": _daily(daily, data.get("daily_units") or {}),
        "source": SERVICE,
    }


def _params(place: Place, days: int, units: str) -> dict[str, str | int | float]:
    params: dict[str, str | int | float] = {
        "latitude": place.latitude,
        "longitude": place.longitude,
        "current": ",".join(["weather_code", *CURRENT.values()]),
        "daily": ",".join(["weather_code", *DAILY.values()]),
        "timezone": "auto",
        "forecast_days": days,
    }
    if units == "imperial":
        params.update(IMPERIAL)
    return params


def _current(current: dict[str, Any], units: dict[str, Any]) -> dict[str, Any]:
    shown = {"time": current.get("time"), "conditions": _conditions(current.get("weather_code"))}
    for name, field in CURRENT.items():
        shown[name] = _measure(current.get(field), units.get(field))
    return shown


def _daily(daily: dict[str, Any], units: dict[str, Any]) -> list[dict[str, Any]]:
    codes = daily.get("weather_code") or []
    days = []
    for index, date in enumerate(daily.get("time") or []):
        day = {"date": date, "conditions": _conditions(_at(codes, index))}
        for name, field in DAILY.items():
            day[name] = _measure(_at(daily.get(field) or [], index), units.get(field))
        days.append(day)
    return days


def _at(values: list[Any], index: int) -> Any:
    return values[index] if index < len(values) else None


def _conditions(code: Any) -> str | None:
    if not isinstance(code, int | float):
        return None
    return WMO_CODES.get(int(code), f"weather code {int(code)}")


def _measure(value: Any, unit: Any) -> str | None:
    if value is None:
        return None
    return f"{value} {unit}" if unit else str(value)
