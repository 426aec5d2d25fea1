"""/cost: what the chat's cards cost, what comes due, and how to pay less."""

from __future__ import annotations

from datetime import timedelta

from telegram import Update
from telegram.ext import CommandHandler

from bot.i18n import Html
from bot.iccid import shown_iccid
from bot.models import Carrier
from bot.money import format_fen, round_fen
from bot.plans.advice import advise, summarize
from bot.plans.catalogue import Catalogue, CataloguePlan, monthly_fen
from bot.plans.costs import YEAR_DAYS, cost_report
from handlers.common import Context, Here, here, reply, services, with_archived_hint
from handlers.render import carrier_name, label_part, period_text

MAX_CARDS = 20_000  # /cost reads a whole chat; agents with more use the CLI export


def plan_line(where: Here, plan: CataloguePlan) -> Html:
    monthly = round_fen(monthly_fen(plan.price_fen, plan.period))
    return where.t(
        "cost.plan",
        name=plan.name,
        price=format_fen(plan.price_fen),
        period=period_text(where.lang, plan.period),
        monthly=format_fen(monthly),
    )


def _by_carrier(where: Here, amounts: dict[Carrier, int]) -> str:
    parts = [
        f"{carrier_name(where.lang, carrier)} {format_fen(fen)}"
        for carrier, fen in sorted(amounts.items(), key=lambda item: -item[1])
    ]
    return " · ".join(parts)


def _promotions(where: Here, catalogue: Catalogue) -> list[str]:
    return [
        where.t(
            "cost.promotion",
            plan=plan_line(where, plan),
            until=plan.valid_to.isoformat() if plan.valid_to else "—",
        )
        for plan in catalogue.plans
        if plan.is_promotion and plan.on_sale(where.today)
    ]


async def cost_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    svc = services(context)
    cards = await svc.cards.all(where.chat_id, MAX_CARDS)
    spent = await svc.cards.spent_since(where.chat_id, svc.clock.now() - timedelta(days=YEAR_DAYS))
    if not cards and not spent:
        await reply(update, await with_archived_hint(context, where, where.t("cards.empty")))
        return
    report = cost_report(cards, spent, where.today)
    lines: list[str] = [
        where.t("cost.title"),
        where.t("cost.spent", total=format_fen(report.total(report.spent_12m))),
    ]
    if report.spent_12m:
        lines.append(Html("  " + _by_carrier(where, report.spent_12m)))
    lines.append(where.t("cost.due_30d", total=format_fen(report.total(report.due_30d))))
    lines.append(where.t("cost.due_12m", total=format_fen(report.total(report.due_12m))))
    if report.due_12m:
        lines.append(Html("  " + _by_carrier(where, report.due_12m)))
    if report.unpriced_cards:
        lines.append(where.t("cost.unpriced", n=report.unpriced_cards))
    if report.priciest:
        lines += ["", where.t("cost.priciest")]
        for n, (card, yearly) in enumerate(report.priciest, 1):
            lines.append(
                where.t(
                    "cost.priciest_line",
                    n=n,
                    iccid=shown_iccid(card.iccid, where.is_group),
                    label=label_part(card.label),
                    yearly=format_fen(yearly),
                )
            )
    advice = [a for card in cards if (a := advise(card, svc.catalogue, where.today))]
    lines += ["", where.t("cost.advice_title")]
    if not report.priciest:
        lines.append(where.t("cost.no_plans"))
    elif advice:
        for group in summarize(advice):
            lines.append(
                where.t(
                    "cost.switch",
                    n=len(group.cards),
                    plan=plan_line(where, group.plan),
                    saving=format_fen(group.saving_per_year_fen),
                )
            )
    else:
        lines.append(where.t("cost.nothing_cheaper"))
    promotions = _promotions(where, svc.catalogue)
    if promotions:
        lines += ["", where.t("cost.promotions"), *promotions]
    if svc.catalogue.example:
        lines += ["", where.t("cost.example_catalogue")]
    await reply(update, Html("\n".join(lines)))


HANDLERS = [CommandHandler("cost", cost_command)]
