"""Compute invoice line totals, VAT and the grand total with correct rounding.

Money is handled as Decimal, never as float. Each line is rounded to the cent after applying
its discount, VAT is computed per rate on the sum of the lines with that rate (not per line),
and the invoice uses commercial rounding (half up), as German tax offices expect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
STANDARD_RATE = Decimal("0.19")
REDUCED_RATE = Decimal("0.07")  # food, books, newspapers, public transport


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal = STANDARD_RATE
    discount_percent: Decimal = Decimal(0)


@dataclass(frozen=True)
class Totals:
    net: Decimal
    vat_by_rate: dict[Decimal, Decimal]
    gross: Decimal


def line_net(line: Line) -> Decimal:
    """Net amount of one line after its discount, rounded to the cent."""
    amount = line.quantity * line.unit_price * (1 - line.discount_percent / 100)
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def invoice_totals(lines: list[Line]) -> Totals:
    """Net total, VAT per rate and gross total of an invoice."""
    if not lines:
        raise ValueError("an invoice needs at least one line")
    net_by_rate: dict[Decimal, Decimal] = defaultdict(Decimal)
    for line in lines:
        net_by_rate[line.vat_rate] += line_net(line)
    vat_by_rate = {
        rate: (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        for rate, net in sorted(net_by_rate.items())
    }
    net = sum(net_by_rate.values(), Decimal(0))
    return Totals(net=net, vat_by_rate=vat_by_rate, gross=net + sum(vat_by_rate.values()))


def small_business_note(total_revenue_last_year: Decimal) -> str | None:
    """The exemption note for small businesses that do not charge VAT at all."""
    if total_revenue_last_year <= Decimal(25000):
        return "No VAT is charged under the small business exemption (section 19 UStG)."
    return None
