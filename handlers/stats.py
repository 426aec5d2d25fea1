"""/stats: the chat's cards by status and carrier, and a chart of the coming weeks' expiries."""

from __future__ import annotations

from telegram import InputFile, Update
from telegram.constants import ParseMode
from telegram.ext import CommandHandler

from bot.bulk.stats import ChatStats
from bot.i18n import Html
from bot.models import CardStatus
from handlers.bulk import bulk
from handlers.common import Context, Here, here, reply, with_archived_hint
from handlers.render import carrier_name


def stats_text(where: Here, stats: ChatStats) -> Html:
    lines = [where.t("stats.header", total=stats.total)]
    lines += [
        where.t(f"stats.status.{status.value}", count=stats.by_status[status])
        for status in CardStatus
    ]
    lines.append(where.t("stats.carriers_header"))
    lines += [
        where.t("stats.carrier_line", carrier=carrier_name(where.lang, carrier), count=count)
        for carrier, count in stats.by_carrier.items()
    ]
    lines.append(where.t("stats.flags", muted=stats.muted, auto=stats.auto_renew))
    busiest = stats.busiest_week
    if busiest is None:
        lines.append(where.t("stats.no_weeks", weeks=len(stats.weeks)))
    else:
        lines.append(
            where.t(
                "stats.weeks",
                weeks=len(stats.weeks),
                count=stats.in_weeks,
                start=busiest.start.isoformat(),
                busiest=busiest.count,
            )
        )
    return Html("\n".join(lines))


async def stats_command(update: Update, context: Context) -> None:
    where = await here(update, context)
    service = bulk(context)
    stats = await service.stats(where.chat_id, where.today)
    if stats.total == 0:
        text = await with_archived_hint(context, where, where.t("stats.empty"))
        await reply(update, text, edit=False)
        return
    await reply(update, stats_text(where, stats), edit=False)
    chart = await service.chart(stats)
    await context.bot.send_photo(
        where.chat_id,
        InputFile(chart, filename=f"simwatch-expiries-{where.today.isoformat()}.png"),
        caption=where.t("stats.chart_caption", weeks=len(stats.weeks)),
        parse_mode=ParseMode.HTML,
    )


HANDLERS = [CommandHandler("stats", stats_command)]
