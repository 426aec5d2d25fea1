"""The plan catalogue: a plain TOML file an operator edits, validated at start-up.

Prices are strings parsed exactly into fen (a TOML float would invite rounding, so it is refused).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import InputError
from bot.models import Carrier, Period
from bot.money import parse_amount

EXAMPLE_CATALOGUE = "example_catalogue.toml"


class CatalogueError(Exception):
    """The catalogue file is unreadable or a plan in it is invalid; the message says where."""


class CataloguePlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    carrier: Carrier
    name: str = Field(min_length=1, max_length=64)
    months: int = Field(default=0, ge=0, le=120)
    days: int = Field(default=0, ge=0, le=3660)
    price_fen: int = Field(alias="price", ge=0)
    data_mb: int | None = Field(default=None, ge=0)
    valid_from: date | None = None
    valid_to: date | None = None

    @field_validator("price_fen", mode="before")
    @classmethod
    def _exact_price(cls, value: Any) -> int:
        if isinstance(value, float):
            raise ValueError(
                'write the price as a string, e.g. price = "12.50" (floats are inexact)'
            )
        if isinstance(value, int) and not isinstance(value, bool):
            return value * 100  # a whole number of yuan
        if isinstance(value, str):
            try:
                return parse_amount(value)
            except InputError:
                raise ValueError(f'price "{value}" is not an amount like "12.50"') from None
        raise ValueError('price must be a string like "12.50"')

    @model_validator(mode="after")
    def _consistent(self) -> CataloguePlan:
        if self.months == 0 and self.days == 0:
            raise ValueError("a plan needs months = N (or days = N)")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise ValueError("valid_from is after valid_to")
        return self

    @property
    def period(self) -> Period:
        return Period(months=self.months, days=self.days)

    def on_sale(self, today: date) -> bool:
        """Promotions outside their dates are never offered."""
        if self.valid_from is not None and today < self.valid_from:
            return False
        return self.valid_to is None or today <= self.valid_to

    @property
    def is_promotion(self) -> bool:
        return self.valid_from is not None or self.valid_to is not None


def monthly_fen(price_fen: int, period: Period) -> Decimal:
    """Cost per month, exact: a 30-day period counts as 30/30.4375 of a month."""
    months = Decimal(period.months) + Decimal(period.days) / Decimal("30.4375")
    return Decimal(price_fen) / months


@dataclass(frozen=True)
class Catalogue:
    plans: tuple[CataloguePlan, ...]
    example: bool = False

    def on_sale(self, carrier: Carrier, today: date) -> list[CataloguePlan]:
        """The plans of ``carrier`` that can be bought today, cheapest per month first."""
        plans = [p for p in self.plans if p.carrier is carrier and p.on_sale(today)]
        return sorted(plans, key=lambda p: (monthly_fen(p.price_fen, p.period), p.months))

    def index_of(self, plan: CataloguePlan) -> int:
        return self.plans.index(plan)

    def matching(
        self, carrier: Carrier, period: Period | None, price_fen: int | None
    ) -> CataloguePlan | None:
        """The catalogue plan a card is on, recognised by carrier, period and price."""
        for plan in self.plans:
            if plan.carrier is carrier and plan.period == period and plan.price_fen == price_fen:
                return plan
        return None


def _where(index: int, raw: dict[str, Any]) -> str:
    name = raw.get("name")
    return f"plan #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")


def parse_catalogue(text: str, source: str) -> Catalogue:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from None
    raw_plans = data.get("plan", [])
    if not isinstance(raw_plans, list) or not raw_plans:
        raise CatalogueError(f"{source}: no [[plan]] entries")
    plans = []
    for index, raw in enumerate(raw_plans):
        try:
            plans.append(CataloguePlan.model_validate(raw))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "plan"
            message = str(error["msg"]).removeprefix("Value error, ")
            raise CatalogueError(f"{source}: {_where(index, raw)}: {field}: {message}") from None
    return Catalogue(plans=tuple(plans), example=bool(data.get("example", False)))


def load_catalogue(path: Path | None) -> Catalogue:
    """The operator's catalogue at ``path``, or the shipped example when ``path`` is None."""
    if path is None:
        text = resources.files("bot.plans").joinpath(EXAMPLE_CATALOGUE).read_text("utf-8")
        return parse_catalogue(text, EXAMPLE_CATALOGUE)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read it: {exc.strerror}") from None
    return parse_catalogue(text, str(path))
