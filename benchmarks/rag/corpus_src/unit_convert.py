"""Convert cooking measurements between volume and weight for common ingredients.

Cup-based recipes measure flour and sugar by volume, which is imprecise. This module converts
US cups, tablespoons and teaspoons to grams using the density of each ingredient, and converts
oven temperatures between Fahrenheit, Celsius and gas marks.
"""

from __future__ import annotations

US_CUP_ML = 236.6
TABLESPOON_ML = 14.8
TEASPOON_ML = 4.9

# Grams per millilitre, measured by spooning the ingredient into the cup and levelling it.
DENSITY = {
    "water": 1.0,
    "milk": 1.03,
    "all-purpose flour": 0.53,
    "whole wheat flour": 0.51,
    "granulated sugar": 0.85,
    "brown sugar": 0.93,  # firmly packed
    "butter": 0.96,
    "rolled oats": 0.38,
    "honey": 1.42,
}

UNITS_ML = {"cup": US_CUP_ML, "tbsp": TABLESPOON_ML, "tsp": TEASPOON_ML, "ml": 1.0}

GAS_MARKS = {1: 140, 2: 150, 3: 170, 4: 180, 5: 190, 6: 200, 7: 220, 8: 230, 9: 240}


def to_grams(amount: float, unit: str, ingredient: str) -> float:
    """Weight in grams of `amount` `unit` of `ingredient`, e.g. to_grams(2, "cup", "honey")."""
    try:
        millilitres = amount * UNITS_ML[unit]
        density = DENSITY[ingredient.lower()]
    except KeyError as missing:
        raise ValueError(f"unknown unit or ingredient: {missing}") from None
    return round(millilitres * density, 1)


def fahrenheit_to_celsius(fahrenheit: float) -> int:
    """Oven temperature in Celsius, rounded to the nearest 5 degrees as oven dials are marked."""
    celsius = (fahrenheit - 32) * 5 / 9
    return int(5 * round(celsius / 5))


def gas_mark_to_celsius(mark: int) -> int:
    """Celsius for a British gas mark from 1 to 9."""
    if mark not in GAS_MARKS:
        raise ValueError("gas marks run from 1 to 9")
    return GAS_MARKS[mark]
