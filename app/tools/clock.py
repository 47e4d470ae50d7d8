"""The `time` tool: the current date and time in a time zone or city, and conversions between
zones, from the gateway's clock and the IANA time zone database (zoneinfo).

A zone is resolved in this order: a common abbreviation or a UTC offset; an IANA name (any case,
spaces for underscores); a city in the tz database ("Tokyo", "sao paulo"); else the place is
looked up with Open-Meteo's geocoding, whose answers carry their time zone. A name with a
qualifier ("Paris, Texas") is geocoded first, falling back to the tz database's city.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from app.errors import InvalidRequest, ToolError
from app.tools.context import Register, ToolContext
from app.tools.geocoding import find_place

SOURCE = "the gateway's clock and the IANA time zone database"
REGIONS = frozenset(
    {"Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe"}
    | {"Indian", "Pacific"}
)
NOT_ZONES = frozenset({"localtime", "Factory"})
MAX_OFFSET_HOURS = 14

ABBREVIATIONS = {
    "utc": "UTC",
    "z": "UTC",
    "gmt": "GMT",
    "bst": "Europe/London",
    "wet": "Europe/Lisbon",
    "west": "Europe/Lisbon",
    "cet": "Europe/Paris",
    "cest": "Europe/Paris",
    "eet": "Europe/Athens",
    "eest": "Europe/Athens",
    "msk": "Europe/Moscow",
    "et": "America/New_York",
    "est": "America/New_York",
    "edt": "America/New_York",
    "ct": "America/Chicago",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "mt": "America/Denver",
    "mst": "America/Denver",
    "mdt": "America/Denver",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "akst": "America/Anchorage",
    "akdt": "America/Anchorage",
    "hst": "Pacific/Honolulu",
    "ast": "America/Halifax",
    "adt": "America/Halifax",
    "nst": "America/St_Johns",
    "ndt": "America/St_Johns",
    "brt": "America/Sao_Paulo",
    "art": "America/Argentina/Buenos_Aires",
    "wat": "Africa/Lagos",
    "cat": "Africa/Maputo",
    "eat": "Africa/Nairobi",
    "sast": "Africa/Johannesburg",
    "gst": "Asia/Dubai",
    "pkt": "Asia/Karachi",
    "ist": "Asia/Kolkata",
    "ict": "Asia/Bangkok",
    "wib": "Asia/Jakarta",
    "sgt": "Asia/Singapore",
    "hkt": "Asia/Hong_Kong",
    "pht": "Asia/Manila",
    "jst": "Asia/Tokyo",
    "kst": "Asia/Seoul",
    "awst": "Australia/Perth",
    "acst": "Australia/Adelaide",
    "acdt": "Australia/Adelaide",
    "aest": "Australia/Sydney",
    "aedt": "Australia/Sydney",
    "nzst": "Pacific/Auckland",
    "nzdt": "Pacific/Auckland",
}

_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$")
_DATE_FIRST = re.compile(r"^(\d{4}-\d{2}-\d{2})[ t]+(.+)$")
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(?:([ap])\.?\s*m\.?)?$")
_NAMED_TIMES = {"noon": dt.time(12), "midnight": dt.time(0)}


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    tz: dt.tzinfo
    place: str | None = None


def register_tools(register: Register, context: ToolContext) -> None:
    async def current_time(
        zone: str = "UTC", time: str | None = None, to_zone: str | None = None
    ) -> dict[str, Any]:
        """The current date and time in a time zone or city, or a time converted between zones.

        Zones may be IANA names ("Asia/Tokyo"), cities ("Tokyo", "New York"), offsets
        ("UTC+5:30") or these abbreviations, which stand for their region's zone with daylight
        saving applied by date: UTC, GMT, BST, WET, CET, EET, MSK, ET/EST/EDT, CT/CST/CDT (US
        Central), MT/MST/MDT, PT/PST/PDT, AKST, HST, AST, NST, BRT, ART, WAT, CAT, EAT, SAST,
        GST (Gulf), PKT, IST (India), ICT, WIB, SGT, HKT, PHT, JST, KST, AWST, ACST, AEST, NZST.

        Args:
            zone: the time zone or city to tell the time in (or the one `time` is in).
            time: a time in `zone` to convert, such as "15:00", "3:30 pm" or
                "2026-11-21 15:00"; omit it for the current time.
            to_zone: a time zone or city to convert to (UTC when `time` is given alone).
        """
        return await tell_time(context, zone, time, to_zone)

    register(current_time, name="time")


async def tell_time(
    context: ToolContext, zone: str, time: str | None, to_zone: str | None
) -> dict[str, Any]:
    origin = await resolve_zone(context, zone, "zone")
    moment = dt.datetime.now(origin.tz) if time is None else parse_time(time, origin.tz)
    if to_zone is None and time is None:
        return {**_view(moment, origin), "source": _source(origin)}
    target = await resolve_zone(context, to_zone or "UTC", "to_zone")
    shift = _offset_hours(moment, target.tz) - _offset_hours(moment, origin.tz)
    return {
        "from": _view(moment, origin),
        "to": _view(moment, target),
        "hours_ahead": int(shift) if shift.is_integer() else shift,
        "source": _source(origin, target),
    }


async def resolve_zone(context: ToolContext, name: str, param: str) -> Zone:
    text = " ".join(name.split())
    if not text:
        raise InvalidRequest(f"time: {param} is empty; give a time zone or a city", param=param)
    key = text.lower()
    if key in ABBREVIATIONS:
        return _zone(ABBREVIATIONS[key])
    offset = _OFFSET.match(key)
    if offset:
        return _fixed_offset(offset, name, param)
    iana = _iana_names().get(key.replace(" ", "_"))
    if iana:
        return _zone(iana)
    city = _cities().get(_city_key(text))
    if city and "," not in text:
        return _zone(city)
    if "/" in text:
        raise _unknown(name, param)
    try:
        place = await find_place(context, text)
    except ToolError as exc:
        if city:
            return _zone(city)
        raise ToolError(
            f"'{name}' is not a time zone or a city in the time zone database, and looking it"
            f" up failed: {exc.message}"
        ) from None
    geocoded = _iana_names().get(place.timezone.lower()) if place else None
    if place and geocoded:
        return Zone(geocoded, ZoneInfo(geocoded), place.label())
    if city:
        return _zone(city)
    raise _unknown(name, param)


def parse_time(text: str, tz: dt.tzinfo) -> dt.datetime:
    """`text` as a moment in `tz`: an ISO date and time (an offset in it wins), a time today,
    12-hour times, "noon", "midnight" and "now"."""
    cleaned = " ".join(text.lower().split())
    if cleaned == "now":
        return dt.datetime.now(tz)
    try:
        parsed = dt.datetime.fromisoformat(cleaned.upper())
        return parsed.astimezone(tz) if parsed.tzinfo else parsed.replace(tzinfo=tz)
    except ValueError:
        pass
    dated = _DATE_FIRST.match(cleaned)
    try:
        day = dt.date.fromisoformat(dated.group(1)) if dated else dt.datetime.now(tz).date()
        clock = _clock(dated.group(2) if dated else cleaned)
    except ValueError:
        raise InvalidRequest(
            f"time: '{text}' is not a time such as '15:00', '3 pm' or '2026-11-21 15:00'",
            param="time",
        ) from None
    return dt.datetime.combine(day, clock, tzinfo=tz)


def _clock(text: str) -> dt.time:
    if text in _NAMED_TIMES:
        return _NAMED_TIMES[text]
    match = _CLOCK.match(text)
    if not match:
        raise ValueError(text)
    hour, minute, second, half = match.groups()
    hours = int(hour)
    if half:
        if not 1 <= hours <= 12:
            raise ValueError(text)
        hours = hours % 12 + (12 if half == "p" else 0)
    return dt.time(hours, int(minute or 0), int(second or 0))


def _zone(name: str) -> Zone:
    return Zone(name, ZoneInfo(name))


def _fixed_offset(match: re.Match[str], name: str, param: str) -> Zone:
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > MAX_OFFSET_HOURS or minutes >= 60:
        raise _unknown(name, param)
    delta = dt.timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
    label = f"UTC{sign}{hours:02d}:{minutes:02d}"
    return Zone(label, dt.timezone(delta, label))


def _unknown(name: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"time: unknown time zone or place '{name}'; use an IANA name such as 'Europe/Paris',"
        " a city, an abbreviation such as 'CET' or an offset such as 'UTC+2'",
        param=param,
    )


@cache
def _iana_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones() - NOT_ZONES}


@cache
def _cities() -> dict[str, str]:
    cities: dict[str, str] = {}
    for name in sorted(available_timezones()):
        region, _, rest = name.partition("/")
        if region in REGIONS and rest:
            cities.setdefault(_city_key(rest.rsplit("/", 1)[-1]), name)
    return cities


def _city_key(text: str) -> str:
    """'São Paulo, Brazil' and 'Sao_Paulo' alike as 'sao paulo'."""
    first = text.split(",")[0]
    plain = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode()
    return " ".join(plain.replace("_", " ").replace(".", "").lower().split())


def _view(moment: dt.datetime, zone: Zone) -> dict[str, Any]:
    local = moment.astimezone(zone.tz)
    view: dict[str, Any] = {"zone": zone.name}
    if zone.place:
        view["place"] = zone.place
    stamp = local.isoformat(timespec="seconds")
    return view | {
        "datetime": stamp,
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M:%S"),
        "weekday": local.strftime("%A"),
        "utc_offset": stamp[19:],
        "abbreviation": local.tzname(),
    }


def _offset_hours(moment: dt.datetime, tz: dt.tzinfo) -> float:
    offset = moment.astimezone(tz).utcoffset() or dt.timedelta()
    return offset.total_seconds() / 3600


def _source(*zones: Zone) -> str:
    if any(zone.place for zone in zones):
        return f"{SOURCE}, with places found by Open-Meteo geocoding"
    return SOURCE
