"""The time tool: zones by IANA name, abbreviation, offset and city (the tz database first,
then a fake Open-Meteo geocoding), and conversions between them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from app.errors import InvalidRequest, ToolError
from app.tools import clock
from app.tools.registry import ToolRegistry
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.serve import free_port
from tests.tools.conftest import registry_of


async def _registry(base_url: str) -> AsyncIterator[ToolRegistry]:
    async with registry_of(
        clock.register_tools, weather_geocoding_url=f"{base_url}/v1/search"
    ) as registry:
        yield registry


@pytest.fixture
async def tools(meteo_url: str) -> AsyncIterator[ToolRegistry]:
    async for registry in _registry(meteo_url):
        yield registry


@pytest.mark.parametrize(
    ("zone", "resolved"),
    [
        ("Asia/Tokyo", "Asia/Tokyo"),
        ("asia/tokyo", "Asia/Tokyo"),
        ("America/New York", "America/New_York"),
        ("UTC", "UTC"),
        ("Tokyo", "Asia/Tokyo"),
        ("new york", "America/New_York"),
        ("sao paulo", "America/Sao_Paulo"),
        ("São Paulo, Brazil", "America/Sao_Paulo"),
        ("Buenos Aires", "America/Argentina/Buenos_Aires"),
        ("EST", "America/New_York"),
        ("pdt", "America/Los_Angeles"),
        ("CET", "Europe/Paris"),
        ("JST", "Asia/Tokyo"),
        ("IST", "Asia/Kolkata"),
        ("GMT", "GMT"),
        ("UTC+5:30", "UTC+05:30"),
        ("GMT-3", "UTC-03:00"),
    ],
)
async def test_current_time_in_a_zone(tools: ToolRegistry, zone: str, resolved: str) -> None:
    answer = await tools.run("time", {"zone": zone})
    assert answer["zone"] == resolved
    shown = dt.datetime.fromisoformat(answer["datetime"])
    assert abs(shown - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert answer["date"] == shown.date().isoformat()
    assert answer["time"] == shown.strftime("%H:%M:%S")
    assert answer["weekday"] == shown.strftime("%A")
    assert answer["datetime"].endswith(answer["utc_offset"])
    assert "IANA time zone database" in answer["source"]


async def test_utc_by_default(tools: ToolRegistry) -> None:
    answer = await tools.run("time", {})
    assert answer["zone"] == "UTC"
    assert answer["utc_offset"] == "+00:00"


async def test_converts_between_zones(tools: ToolRegistry) -> None:
    answer = await tools.run(
        "time", {"zone": "New York", "time": "2026-01-15 15:00", "to_zone": "Tokyo"}
    )
    assert answer["from"]["datetime"] == "2026-01-15T15:00:00-05:00"
    assert answer["from"]["abbreviation"] == "EST"
    assert answer["to"]["zone"] == "Asia/Tokyo"
    assert answer["to"]["datetime"] == "2026-01-16T05:00:00+09:00"
    assert answer["to"]["weekday"] == "Friday"
    assert answer["hours_ahead"] == 14


async def test_conversion_follows_daylight_saving(tools: ToolRegistry) -> None:
    answer = await tools.run("time", {"zone": "EST", "time": "2026-07-15 3 pm"})
    assert answer["from"]["datetime"] == "2026-07-15T15:00:00-04:00"
    assert answer["from"]["abbreviation"] == "EDT"
    assert answer["to"]["zone"] == "UTC"
    assert answer["to"]["datetime"] == "2026-07-15T19:00:00+00:00"
    assert answer["hours_ahead"] == 4


async def test_half_hour_zones(tools: ToolRegistry) -> None:
    answer = await tools.run("time", {"zone": "UTC", "time": "2026-03-01T00:00", "to_zone": "IST"})
    assert answer["to"]["datetime"] == "2026-03-01T05:30:00+05:30"
    assert answer["hours_ahead"] == 5.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15:00", dt.time(15)),
        ("9:05:30", dt.time(9, 5, 30)),
        ("3 pm", dt.time(15)),
        ("3:30PM", dt.time(15, 30)),
        ("12 a.m.", dt.time(0)),
        ("12pm", dt.time(12)),
        ("noon", dt.time(12)),
        ("midnight", dt.time(0)),
    ],
)
def test_times_of_day_are_today_in_the_zone(text: str, expected: dt.time) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    moment = clock.parse_time(text, tokyo)
    assert moment.timetz() == expected.replace(tzinfo=tokyo)
    assert moment.date() == dt.datetime.now(tokyo).date()


def test_now() -> None:
    moment = clock.parse_time("Now", dt.UTC)
    assert abs(moment - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_an_offset_in_the_time_wins() -> None:
    moment = clock.parse_time("2026-01-15T12:00Z", ZoneInfo("Asia/Tokyo"))
    assert moment.isoformat() == "2026-01-15T21:00:00+09:00"


async def test_cities_outside_the_tz_database_are_geocoded(
    tools: ToolRegistry, meteo: FakeOpenMeteo
) -> None:
    answer = await tools.run("time", {"zone": "Portland"})
    assert answer["zone"] == "America/Los_Angeles"
    assert answer["place"] == "Portland, Oregon, United States"
    assert "Open-Meteo" in answer["source"]
    assert meteo.geocoding_requests == [
        {"name": "Portland", "count": "1", "language": "en", "format": "json"}
    ]


async def test_a_qualified_city_is_geocoded_first(
    tools: ToolRegistry, meteo: FakeOpenMeteo
) -> None:
    answer = await tools.run("time", {"zone": "Paris, Texas"})
    assert answer["zone"] == "America/Chicago"
    assert meteo.geocoding_requests[0]["name"] == "Paris"


async def test_tz_database_cities_need_no_geocoding(
    tools: ToolRegistry, meteo: FakeOpenMeteo
) -> None:
    await tools.run("time", {"zone": "Paris", "to_zone": "Tokyo"})
    assert meteo.geocoding_requests == []


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"zone": "Mars/Olympus_Mons"}, "zone"),
        ({"zone": "Atlantis"}, "zone"),
        ({"zone": "UTC+25"}, "zone"),
        ({"zone": "UTC", "to_zone": "Narnia/Cair_Paravel"}, "to_zone"),
        ({"zone": "UTC", "time": "teatime"}, "time"),
        ({"zone": "UTC", "time": "25:00"}, "time"),
        ({"zone": "UTC", "time": "13 pm"}, "time"),
        ({"zone": "UTC", "time": "2026-13-01 10:00"}, "time"),
    ],
)
async def test_bad_input(tools: ToolRegistry, arguments: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await tools.run("time", arguments)
    assert caught.value.param == param
    assert repr(arguments[param]) in caught.value.message


async def test_a_blank_zone(tools: ToolRegistry) -> None:
    with pytest.raises(InvalidRequest, match="to_zone is empty") as caught:
        await tools.run("time", {"zone": "UTC", "time": "10:00", "to_zone": "  "})
    assert caught.value.param == "to_zone"


async def test_geocoding_unreachable_is_said_clearly() -> None:
    async for registry in _registry(f"http://127.0.0.1:{free_port()}"):
        with pytest.raises(ToolError) as caught:
            await registry.run("time", {"zone": "Portland"})
        tz_city = await registry.run("time", {"zone": "Tokyo, Japan"})
    assert caught.value.message.startswith(
        "'Portland' is not a time zone or a city in the time zone database, and looking it up"
        " failed: Open-Meteo geocoding is unreachable: "
    )
    assert tz_city["zone"] == "Asia/Tokyo"


async def test_geocoding_server_error(tools: ToolRegistry, meteo: FakeOpenMeteo) -> None:
    meteo.geocoding_status = 500
    with pytest.raises(ToolError, match="Open-Meteo geocoding answered HTTP 500"):
        await tools.run("time", {"zone": "Portland"})
