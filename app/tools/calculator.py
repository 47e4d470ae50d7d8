"""The `calculator` tool: arithmetic parsed into an AST and walked by a small evaluator (never
`eval`), with exact integers and decimals and bounded sizes so no expression can hang a worker."""

from __future__ import annotations

import ast
import io
import math
import tokenize
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from app.errors import InvalidRequest
from app.tools.context import Register, ToolContext

Number = int | Fraction | float

MAX_LENGTH = 500
MAX_DIGITS = 10_000
MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))
SAFE_INT = 2**53
PERCENT = "__percent__"

_BINARY_AFTER_PERCENT = frozenset({"+", "-", "*", "/", "//", "%", "**", "^"})
_LAYOUT = frozenset(
    {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
)
_UNICODE = str.maketrans(
    {"\u00d7": "*", "\u00b7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-"}
)


def register_tools(register: Register, context: ToolContext) -> None:
    register(calculator)


async def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly (whole numbers of any size, exact decimals).

    Supports + - * / // (floor division), ** or ^ (both mean power), parentheses, percentages
    ("17% of 2400", "2400 * 17%", "15%"; "200 + 10%" adds ten percent of 200), % between two
    numbers as modulo ("10 % 3"), the constants pi, e, tau, and the functions sqrt, cbrt, exp,
    ln, log (log(x) is natural, log(x, base)), log10, log2, sin, cos, tan, asin, acos, atan,
    atan2, sinh, cosh, tanh, degrees, radians, abs, round, floor, ceil, trunc, factorial, comb,
    perm, gcd, lcm, hypot, min, max. Angles are in radians.

    Args:
        expression: the expression, such as "(2+3)*4", "2**100", "sqrt(16)" or "17% of 2400".
    """
    result = evaluate(expression)
    if isinstance(result, int) and abs(result) >= SAFE_INT:
        digits = _digits(result)
        return {
            "expression": expression,
            "approximately": f"{Decimal(digits):.15g}",
            "digits": len(digits.lstrip("-")),
            "result": digits,
        }
    return {"expression": expression, "result": _shown(result)}


def evaluate(expression: str) -> Number:
    """The expression's value; `InvalidRequest` for anything that is not a bounded calculation."""
    if len(expression) > MAX_LENGTH:
        raise _refuse(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(_rewrite(expression), mode="eval")
        return _value(tree.body)
    except ZeroDivisionError:
        raise _refuse("division by zero") from None
    except OverflowError:
        raise _refuse("the result is too large") from None
    except (SyntaxError, tokenize.TokenError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else exc.args[0]
        raise _refuse(f"'{expression}' is not a valid expression ({reason})") from None
    except ValueError as exc:
        raise _refuse(f"cannot evaluate '{expression}': {exc}") from None
    except RecursionError:
        raise _refuse("the expression is nested too deeply") from None


def _refuse(message: str) -> InvalidRequest:
    return InvalidRequest(f"calculator: {message}", param="expression")


def _rewrite(expression: str) -> str:
    """Python syntax for the calculator's: `^` is power, `x%` is `__percent__(x)` unless a
    number, name or parenthesis follows (then `%` is modulo), and `of` after a percentage is `*`."""
    readline = io.StringIO(expression.strip().translate(_UNICODE)).readline
    tokens = [tok for tok in tokenize.generate_tokens(readline) if tok.type not in _LAYOUT]
    out: list[str] = []
    after_percent = False
    for index, tok in enumerate(tokens):
        if tok.type in (tokenize.COMMENT, tokenize.ERRORTOKEN) and tok.string.strip():
            raise SyntaxError(f"unexpected {tok.string!r}")
        following = tokens[index + 1].string if index + 1 < len(tokens) else None
        percent = tok.string == "%" and (
            following in (None, ")", ",", "of") or following in _BINARY_AFTER_PERCENT
        )
        if percent:
            start = _operand_start(out)
            out[start:] = [PERCENT, "(", *out[start:], ")"]
        elif tok.string == "^":
            out.append("**")
        elif tok.string == "of" and after_percent:
            out.append("*")
        elif tok.string.strip():
            out.append(tok.string)
        after_percent = percent
    return " ".join(out)


def _operand_start(out: list[str]) -> int:
    """Where the operand that ends `out` begins: a number, a name, or a parenthesised group
    with the function name before it."""
    if out and out[-1] != ")" and (out[-1][0].isalnum() or out[-1][0] in "._"):
        return len(out) - 1
    depth = 0
    for index in range(len(out) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(out[index], 0)
        if depth == 0:
            return index - 1 if index > 0 and out[index - 1].isidentifier() else index
    raise SyntaxError("a percent sign needs a number before it")


def _value(node: ast.expr) -> Number:
    match node:
        case ast.Constant(value=bool()):
            raise ValueError("true and false are not numbers")
        case ast.Constant(value=int() as number):
            return number
        case ast.Constant(value=float() as number):
            return _exact_decimal(number)
        case ast.Name(id=name):
            return _constant(name)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_value(operand)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return +_value(operand)
        case ast.BinOp(left=left, op=ast.Add() | ast.Sub() as op, right=right) if _is_percent(
            right
        ):
            base, share = _value(left), _value(right)
            return _checked(base + base * share if isinstance(op, ast.Add) else base - base * share)
        case ast.BinOp(left=left, op=op, right=right):
            return _binary(op, _value(left), _value(right))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]):
            function = _function(name)
            values = [_value(arg) for arg in args]
            try:
                return _checked(function(*values))
            except TypeError:
                raise ValueError(f"{name} does not take {len(values)} argument(s)") from None
    raise ValueError(f"{_describe(node)} is not allowed in a calculation")


def _exact_decimal(number: float) -> Number:
    """A decimal literal as the exact fraction it was written as, so 0.1 + 0.2 is 0.3."""
    if not math.isfinite(number):
        raise OverflowError
    return _checked(Fraction(repr(number)))


def _is_percent(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == PERCENT
    )


def _describe(node: ast.expr) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "indexing",
        ast.Tuple: "a comma outside a function call (write 2400, not 2,400)",
        ast.Constant: "a non-numeric value",
        ast.Call: "that kind of call",
        ast.Lambda: "a lambda",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
    }
    return kinds.get(type(node), f"'{type(node).__name__}'")


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    match op:
        case ast.Add():
            return _checked(left + right)
        case ast.Sub():
            return _checked(left - right)
        case ast.Mult():
            return _checked(left * right)
        case ast.Div():
            if isinstance(left, float) or isinstance(right, float):
                return _checked(left / right)
            return _checked(Fraction(left) / Fraction(right))
        case ast.FloorDiv():
            return _checked(left // right)
        case ast.Mod():
            return _checked(left % right)
        case ast.Pow():
            return _power(left, right)
    raise ValueError(f"the operator {type(op).__name__} is not allowed")


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, int) and not isinstance(base, float):
        size = max(abs(Fraction(base).numerator), Fraction(base).denominator)
        if size > 1 and abs(exponent) * math.log10(size) > MAX_DIGITS:
            raise _too_long("the power")
        return _checked(Fraction(base) ** exponent)
    result: Any = float(base) ** float(exponent)
    if isinstance(result, complex):
        raise ValueError("the result is not a real number")
    return _checked(result)


def _too_long(what: str) -> InvalidRequest:
    return _refuse(f"{what} would have more than {MAX_DIGITS:,} digits")


def _checked(value: Number) -> Number:
    """`value` in its simplest exact form, refused when it outgrows the size bound."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OverflowError
        return value
    value = _normal(value)
    fraction = Fraction(value)
    if max(fraction.numerator.bit_length(), fraction.denominator.bit_length()) > MAX_BITS:
        raise _too_long("the result")
    return value


def _normal(value: int | Fraction) -> int | Fraction:
    return value.numerator if isinstance(value, Fraction) and value.denominator == 1 else value


_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _constant(name: str) -> Number:
    try:
        return _CONSTANTS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown name '{name}'") from None


def _whole(value: Number, function: str) -> int:
    if isinstance(value, int):
        return value
    raise ValueError(f"{function} needs whole numbers")


def _percent(x: Number) -> Number:
    return x / 100 if isinstance(x, float) else Fraction(x, 100)


def _sqrt(x: Number) -> Number:
    if isinstance(x, int) and x >= 0 and math.isqrt(x) ** 2 == x:
        return math.isqrt(x)
    return math.sqrt(x)


def _log(x: Number, base: Number = math.e) -> Number:
    return math.log(x, base)


def _factorial(n: Number) -> Number:
    whole = _whole(n, "factorial")
    if whole > 0 and _log_factorial(whole) > MAX_DIGITS:
        raise _too_long(f"factorial({whole})")
    return math.factorial(whole)


def _comb(n: Number, k: Number) -> Number:
    whole_n, whole_k = _whole(n, "comb"), _whole(k, "comb")
    if 0 <= whole_k <= whole_n:
        digits = _log_factorial(whole_n) - _log_factorial(whole_k)
        digits -= _log_factorial(whole_n - whole_k)
        if digits > MAX_DIGITS:
            raise _too_long(f"comb({whole_n}, {whole_k})")
    return math.comb(whole_n, whole_k)


def _perm(n: Number, k: Number) -> Number:
    whole_n, whole_k = _whole(n, "perm"), _whole(k, "perm")
    if 0 <= whole_k <= whole_n:
        digits = _log_factorial(whole_n) - _log_factorial(whole_n - whole_k)
        if digits > MAX_DIGITS:
            raise _too_long(f"perm({whole_n}, {whole_k})")
    return math.perm(whole_n, whole_k)


def _log_factorial(n: int) -> float:
    """About how many decimal digits n! has."""
    return math.lgamma(n + 1) / math.log(10)


def _rounded(x: Number, digits: Number = 0) -> Number:
    places = _whole(digits, "round")
    if abs(places) > MAX_DIGITS:
        raise ValueError(f"round takes at most {MAX_DIGITS:,} decimal places")
    return round(x, places) if isinstance(x, float) else round(Fraction(x), places)


def _gcd(*values: Number) -> Number:
    return math.gcd(*(_whole(value, "gcd") for value in values))


def _lcm(*values: Number) -> Number:
    return math.lcm(*(_whole(value, "lcm") for value in values))


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    PERCENT: _percent,
    "sqrt": _sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "ln": math.log,
    "log": _log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "abs": abs,
    "round": _rounded,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "factorial": _factorial,
    "comb": _comb,
    "perm": _perm,
    "gcd": _gcd,
    "lcm": _lcm,
    "hypot": math.hypot,
    "min": min,
    "max": max,
}


def _function(name: str) -> Callable[..., Number]:
    try:
        return _FUNCTIONS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown function '{name}'") from None


def _shown(value: Number) -> int | float | str:
    """A JSON number for the result, rounded to 15 significant digits (as text when it is beyond
    a float's range), whole when it is whole."""
    if isinstance(value, int):
        return value
    if isinstance(value, Fraction):
        with localcontext() as context:
            context.prec = 15
            rounded = Decimal(value.numerator) / Decimal(value.denominator)
        number = float(rounded)
        if number == 0 or math.isinf(number):
            return str(rounded)
    else:
        number = float(f"{value:.15g}")
    return int(number) if number.is_integer() and abs(number) < 1e15 else number


def _digits(value: int) -> str:
    """`str(value)`, even past Python's 4,300-digit conversion limit, a chunk at a time."""
    chunk = 10**4000
    if abs(value) < chunk:
        return str(value)
    high, low = divmod(abs(value), chunk)
    return ("-" if value < 0 else "") + _digits(high) + str(low).zfill(4000)
