"""The weather tool against a fake Open-Meteo on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.errors import InvalidRequest, ToolError
from app.tools import weather
from app.tools.registry import ToolRegistry
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.serve import free_port
from tests.tools.conftest import registry_of


async def _registry(base_url: str) -> AsyncIterator[ToolRegistry]:
    async with registry_of(
        weather.register_tools,
        weather_geocoding_url=f"{base_url}/v1/search",
        weather_forecast_url=f"{base_url}/v1/forecast",
    ) as registry:
        yield registry


@pytest.fixture
async def tools(meteo_url: str) -> AsyncIterator[ToolRegistry]:
    async for registry in _registry(meteo_url):
        yield registry


async def test_current_conditions_and_forecast(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    answer = await tools.run("weather", {"location": "Paris", "days": 2})
    assert answer["location"] == {
        "name": "Paris, Île-de-France, France",
        "latitude": 48.85341,
        "longitude": 2.3488,
        "timezone": "Europe/Paris",
    }
    assert answer["current"] == {
        "time": "2026-01-15T12:00",
        "conditions": "partly cloudy",
        "temperature": "10.2 °C",
        "feels_like": "8.3 °C",
        "humidity": "81 %",
        "precipitation": "0.0 mm",
        "wind_speed": "14.2 km/h",
    }
    assert answer["forecast"] == [
        {
            "date": "2026-01-15",
            "conditions": "clear sky",
            "high": "12.0 °C",
            "low": "4.0 °C",
            "precipitation": "0.0 mm",
        },
        {
            "date": "2026-01-16",
            "conditions": "slight rain",
            "high": "13.0 °C",
            "low": "5.0 °C",
            "precipitation": "0.5 mm",
        },
    ]
    assert answer["source"] == "Open-Meteo"
    assert meteo.geocoding_requests == [
        {"name": "Paris", "count": "1", "language": "en", "format": "json"}
    ]
    (sent,) = meteo.forecast_requests
    assert sent["latitude"] == "48.85341"
    assert sent["longitude"] == "2.3488"
    assert sent["current"].split(",") == [
        "weather_code",
        "temperature_2m",
        "apparent_temperature",
        "relative_humidity_2m",
        "precipitation",
        "wind_speed_10m",
    ]
    assert set(sent["daily"].split(",")) == {
        "weather_code",
        "temperature_2m_max",
        "temperature_2m_min",
        "precipitation_sum",
    }
    assert sent["timezone"] == "auto"
    assert sent["forecast_days"] == "2"
    assert "temperature_unit" not in sent


async def test_three_days_by_default(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    answer = await tools.run("weather", {"location": "Paris"})
    assert [day["conditions"] for day in answer["forecast"]] == [
        "clear sky",
        "slight rain",
        "thunderstorm",
    ]
    assert meteo.forecast_requests[0]["forecast_days"] == "3"


async def test_imperial_units(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    answer = await tools.run("weather", {"location": "Paris", "days": 1, "units": "imperial"})
    assert answer["current"]["temperature"] == "50.4 °F"
    assert answer["current"]["wind_speed"] == "8.8 mp/h"
    assert answer["forecast"][0]["precipitation"] == "0.0 inch"
    sent = meteo.forecast_requests[0]
    assert sent["temperature_unit"] == "fahrenheit"
    assert sent["wind_speed_unit"] == "mph"
    assert sent["precipitation_unit"] == "inch"


async def test_a_qualifier_picks_among_places(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    answer = await tools.run("weather", {"location": "Paris, Texas", "days": 1})
    assert answer["location"]["name"] == "Paris, Texas, United States"
    assert answer["location"]["timezone"] == "America/Chicago"
    assert meteo.geocoding_requests[0]["name"] == "Paris"
    assert meteo.geocoding_requests[0]["count"] == "10"
    assert meteo.forecast_requests[0]["latitude"] == "33.66094"


async def test_unknown_place(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    with pytest.raises(InvalidRequest, match="no place named 'Atlantis' was found") as caught:
        await tools.run("weather", {"location": "Atlantis"})
    assert caught.value.param == "location"
    assert meteo.forecast_requests == []


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"location": " , "}, "location"),
        ({"location": "Paris", "days": 0}, "days"),
        ({"location": "Paris", "days": 8}, "days"),
        ({"location": "Paris", "units": "kelvin"}, "units"),
        ({}, "location"),
    ],
)
async def test_bad_arguments(tools: ToolRegistry, arguments: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await tools.run("weather", arguments)
    assert caught.value.param == param


async def test_geocoding_server_error(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    meteo.geocoding_status = 500
    with pytest.raises(ToolError, match="HTTP 500: geocoding database unavailable"):
        await tools.run("weather", {"location": "Paris"})


async def test_forecast_server_error(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    meteo.forecast_status = 500
    with pytest.raises(ToolError, match="Open-Meteo answered HTTP 500: forecast model unavailable"):
        await tools.run("weather", {"location": "Paris"})


async def test_unreachable() -> None:
    async for registry in _registry(f"http://127.0.0.1:{free_port()}"):
        outcome = await registry.call("weather", {"location": "Paris"})
    assert not outcome.ok
    assert outcome.content.startswith("Error: Open-Meteo geocoding is unreachable: ")
