"""A plain async function becomes a tool: schema from the signature, text from the docstring."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from app.errors import InvalidRequest
from app.tools.base import Tool


async def forecast(
    location: str,
    days: Annotated[int, Field(ge=1, le=7)] = 3,
    units: Literal["metric", "imperial"] = "metric",
) -> dict[str, Any]:
    """Weather forecast for a place.

    Uses a public API.

    Args:
        location: a place name, such as "Paris" or
            "Springfield, Illinois".
        days: forecast days.
    """
    return {"location": location, "days": days, "units": units}


def test_schema_comes_from_signature_and_docstring() -> None:
    tool = Tool.from_function(forecast)
    assert tool.schema() == {
        "type": "function",
        "function": {
            "name": "forecast",
            "description": "Weather forecast for a place. Uses a public API.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": 'a place name, such as "Paris" or "Springfield, Illinois".',
                    },
                    "days": {
                        "type": "integer",
                        "default": 3,
                        "minimum": 1,
                        "maximum": 7,
                        "description": "forecast days.",
                    },
                    "units": {
                        "type": "string",
                        "enum": ["metric", "imperial"],
                        "default": "metric",
                    },
                },
                "required": ["location"],
            },
        },
    }


def test_name_can_be_given() -> None:
    assert Tool.from_function(forecast, "weather").name == "weather"


def test_parse_accepts_json_strings_and_dicts_and_coerces() -> None:
    tool = Tool.from_function(forecast)
    expected = {"location": "Paris", "days": 2, "units": "metric"}
    assert tool.parse('{"location": "Paris", "days": "2"}') == expected
    assert tool.parse({"location": "Paris", "days": 2, "unknown": 1}) == expected


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ("{}", "location"),
        ({"location": "Paris", "days": 9}, "days"),
        ({"location": "Paris", "units": "kelvin"}, "units"),
        ('{"location": ', "arguments"),
        ("[1, 2]", "arguments"),
    ],
)
def test_bad_arguments_name_the_field(arguments: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Tool.from_function(forecast).parse(arguments)
    assert caught.value.param == param
    assert "forecast" in caught.value.message


def test_only_async_functions_are_tools() -> None:
    def sync(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="async"):
        Tool.from_function(sync)  # type: ignore[arg-type]


def test_no_arguments_means_an_empty_object_schema() -> None:
    async def ping() -> str:
        """Answers pong."""
        return "pong"

    tool = Tool.from_function(ping)
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.parse(None) == {}
    assert tool.parse("") == {}
