"""A fake Open-Meteo: the geocoding search (`/v1/search`) and the forecast (`/v1/forecast`),
answering as the real APIs do for the parameters the tools send.

Serve it with `tests.fakes.serve.serve(FakeOpenMeteo().app)` and point WEATHER_GEOCODING_URL at
`{url}/v1/search`, WEATHER_FORECAST_URL at `{url}/v1/forecast`. Each endpoint keeps the query
parameters it was sent (`geocoding_requests`, `forecast_requests`); `geocoding_status` and
`forecast_status` other than 200 make that endpoint fail as Open-Meteo does, with a JSON
`reason`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PLACES: list[dict[str, Any]] = [
    {
        "id": 2988507,
        "name": "Paris",
        "latitude": 48.85341,
        "longitude": 2.3488,
        "country_code": "FR",
        "country": "France",
        "admin1": "Île-de-France",
        "timezone": "Europe/Paris",
    },
    {
        "id": 4717560,
        "name": "Paris",
        "latitude": 33.66094,
        "longitude": -95.55551,
        "country_code": "US",
        "country": "United States",
        "admin1": "Texas",
        "admin2": "Lamar",
        "timezone": "America/Chicago",
    },
    {
        "id": 5746545,
        "name": "Portland",
        "latitude": 45.52345,
        "longitude": -122.67621,
        "country_code": "US",
        "country": "United States",
        "admin1": "Oregon",
        "timezone": "America/Los_Angeles",
    },
]
DAILY_CODES = [0, 61, 95, 3, 71, 45, 2]
UNITS = {
    "celsius": "°C",
    "fahrenheit": "°F",
    "kmh": "km/h",
    "mph": "mp/h",
    "mm": "mm",
    "inch": "inch",
}


class FakeOpenMeteo:
    def __init__(self) -> None:
        self.geocoding_status = 200
        self.forecast_status = 200
        self.geocoding_requests: list[dict[str, str]] = []
        self.forecast_requests: list[dict[str, str]] = []
        self.app = Starlette(
            routes=[Route("/v1/search", self.search), Route("/v1/forecast", self.forecast)]
        )

    async def search(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.geocoding_requests.append(params)
        if self.geocoding_status != 200:
            return _error("geocoding database unavailable", self.geocoding_status)
        if not params.get("name"):
            return _error("Parameter 'name' is required", 400)
        name = params["name"].lower()
        found = [place for place in PLACES if place["name"].lower().startswith(name)]
        answer: dict[str, Any] = {"generationtime_ms": 0.5}
        if found:
            answer["results"] = found[: int(params.get("count", 10))]
        return JSONResponse(answer)

    async def forecast(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.forecast_requests.append(params)
        if self.forecast_status != 200:
            return _error("forecast model unavailable", self.forecast_status)
        days = int(params.get("forecast_days", 7))
        if not 0 <= days <= 16:
            return _error("Forecast days is invalid. Allowed range 0 to 16.", 400)
        temperature = UNITS[params.get("temperature_unit", "celsius")]
        wind = UNITS[params.get("wind_speed_unit", "kmh")]
        rain = UNITS[params.get("precipitation_unit", "mm")]
        fahrenheit = temperature == "°F"
        return JSONResponse(
            {
                "latitude": float(params["latitude"]),
                "longitude": float(params["longitude"]),
                "timezone": "Europe/Paris",
                "current_units": {
                    "time": "iso8601",
                    "temperature_2m": temperature,
                    "relative_humidity_2m": "%",
                    "apparent_temperature": temperature,
                    "precipitation": rain,
                    "weather_code": "wmo code",
                    "wind_speed_10m": wind,
                },
                "current": {
                    "time": "2026-01-15T12:00",
                    "interval": 900,
                    "temperature_2m": 50.4 if fahrenheit else 10.2,
                    "relative_humidity_2m": 81,
                    "apparent_temperature": 46.9 if fahrenheit else 8.3,
                    "precipitation": 0.0,
                    "weather_code": 2,
                    "wind_speed_10m": 8.8 if wind == "mp/h" else 14.2,
                },
                "daily_units": {
                    "time": "iso8601",
                    "weather_code": "wmo code",
                    "temperature_2m_max": temperature,
                    "temperature_2m_min": temperature,
                    "precipitation_sum": rain,
                },
                "daily": {
                    "time": [f"2026-01-{15 + day}" for day in range(days)],
                    "weather_code": DAILY_CODES[:days],
                    "temperature_2m_max": [12.0 + day for day in range(days)],
                    "temperature_2m_min": [4.0 + day for day in range(days)],
                    "precipitation_sum": [0.5 * day for day in range(days)],
                },
            }
        )


def _error(reason: str, status: int) -> Response:
    return JSONResponse({"error": True, "reason": reason}, status_code=status)
