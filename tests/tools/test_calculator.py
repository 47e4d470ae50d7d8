"""The calculator: exact arithmetic, percentages, functions, and refusals that come fast."""

from __future__ import annotations

import builtins
import math
import re
import time
from typing import Any

import orjson
import pytest

from app.config import load_settings
from app.errors import InvalidRequest
from app.tools import calculator
from app.tools.calculator import calculator as calculate
from app.tools.context import ToolContext
from app.tools.registry import ToolRegistry


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("(2+3)*4", 20),
        ("17% of 2400", 408),
        ("2400 * 17%", 408),
        ("15%", 0.15),
        ("200 + 10%", 220),
        ("200 - 10%", 180),
        ("50% of 50% of 100", 25),
        ("10 % 3", 1),
        ("(2+3)%", 0.05),
        ("-5 + 3", -2),
        ("--4", 4),
        ("7 // 2", 3),
        ("10 / 4", 2.5),
        ("10 / 2", 5),
        ("1/3", 0.333333333333333),
        ("0.1 + 0.2", 0.3),
        ("1.5e3", 1500),
        ("2^10", 1024),
        ("2 ** -1", 0.5),
        ("2 ** 2 ** 3", 256),
        ("sqrt(16)", 4),
        ("sqrt(2)", 1.4142135623731),
        ("log(100, 10)", 2),
        ("log10(1000)", 3),
        ("ln(e)", 1),
        ("sin(pi/2)", 1),
        ("cos(0)", 1),
        ("degrees(pi)", 180),
        ("pi", 3.14159265358979),
        ("e", 2.71828182845905),
        ("tau", 6.28318530717959),
        ("SQRT(81) + Pi - pi", 9),
        ("factorial(5)", 120),
        ("comb(52, 5)", 2598960),
        ("round(2.567, 2)", 2.57),
        ("max(1, 2.5, 3/2)", 2.5),
        ("gcd(12, 18)", 6),
        ("3 \u00d7 4 \u2212 2", 10),
        ("  1 + 1  ", 2),
    ],
)
async def test_evaluates(expression: str, result: Any) -> None:
    assert await calculate(expression) == {"expression": expression, "result": result}


async def test_big_integers_are_exact() -> None:
    answer = await calculate("2**100")
    assert answer["result"] == str(2**100)
    assert answer["digits"] == 31
    assert answer["approximately"] == "1.26765060022823e+30"
    assert (await calculate("factorial(30)"))["result"] == str(math.factorial(30))
    assert (await calculate("-2**64"))["result"] == str(-(2**64))


async def test_results_past_the_string_conversion_limit_are_exact() -> None:
    answer = await calculate("7**11000")
    assert answer["digits"] == 9297
    assert int(answer["result"][:40]) == 7**11000 // 10 ** (9297 - 40)
    assert answer["result"].endswith(str(7**11000 % 10**40).zfill(40))


async def test_numbers_beyond_a_float_are_shown_as_text() -> None:
    assert (await calculate("10**400 / 3"))["result"] == "3.33333333333333E+399"
    assert (await calculate("10 ** -400"))["result"] == "1E-400"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "more than 10,000 digits"),
        ("2**40000", "more than 10,000 digits"),
        ("10**9999 * 10**9999", "more than 10,000 digits"),
        ("factorial(100000)", "factorial(100000) would have more than 10,000 digits"),
        ("factorial(10**100)", "would have more than 10,000 digits"),
        ("comb(10**6, 5*10**5)", "would have more than 10,000 digits"),
        ("round(1/3, 10**9)", "at most 10,000 decimal places"),
        ("1/0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("exp(1000)", "too large"),
        ("1e999", "too large"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** (1/3)", "not a real number"),
        ("factorial(2.5)", "factorial needs whole numbers"),
        ("sqrt(1, 2)", "sqrt does not take 2 argument(s)"),
        ("1 +", "is not a valid expression"),
        ("(1", "is not a valid expression"),
        ("%", "needs a number before it"),
        ("hello", "unknown name 'hello'"),
        ("True", "not numbers"),
        ("'a' * 3", "non-numeric value"),
        ("[1, 2]", "'List' is not allowed"),
        ("17% of 2,400", "write 2400, not 2,400"),
        ("1 < 2", "a comparison is not allowed"),
        ("1 # comment", "is not a valid expression"),
    ],
)
async def test_refuses(expression: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)) as caught:
        await calculate(expression)
    assert caught.value.param == "expression"


async def test_long_expressions_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="longer than 500 characters"):
        await calculate("1+" * 250 + "1")


async def test_huge_powers_are_refused_without_being_computed() -> None:
    started = time.perf_counter()
    for expression in ("9**9**9", "10**10**10", "factorial(10**9)", "2.5**10**12"):
        with pytest.raises(InvalidRequest):
            await calculate(expression)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "().__class__.__bases__[0].__subclasses__()",
        "(1).real",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('x = 1')",
        "globals()",
        "lambda: 1",
        "[x for x in (1, 2)]",
        "sqrt(x=4)",
        "sqrt.__call__(4)",
    ],
)
async def test_code_is_never_run(expression: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the calculator must not run code")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    with pytest.raises(InvalidRequest):
        await calculate(expression)


async def test_through_the_registry() -> None:
    loaded = load_settings(_env_file=None)
    context = ToolContext.open(loaded.tools, loaded.providers.connect_timeout)
    try:
        registry = ToolRegistry(timeout=5, result_max_chars=8000)
        calculator.register_tools(registry.register, context)
        registry.enable(None)
        big = await registry.call("calculator", '{"expression": "2**100"}')
        assert big.ok
        assert orjson.loads(big.content)["result"] == str(2**100)
        refused = await registry.call("calculator", {"expression": "9**9**9"})
        assert not refused.ok
        assert "more than 10,000 digits" in refused.content
        schema = registry.tools["calculator"].parameters
        assert schema["required"] == ["expression"]
    finally:
        await context.aclose()
