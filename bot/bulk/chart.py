"""The weekly expiry chart as a PNG: one bar per coming week, the busiest one highlighted.

Only numbers and dates on the axes: Chinese text would need a CJK font the machine may lack
(matplotlib would draw boxes and warn), and the picture's caption carries the words anyway.
Drawn on a bare ``Figure`` with the Agg canvas: no pyplot, no global state, no GUI backend.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from bot.bulk.stats import WeekCount

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 4.5, 100
BAR_COLOR = "#4C78A8"
BUSIEST_COLOR = "#E45756"


def weekly_chart_png(weeks: Sequence[WeekCount]) -> bytes:
    # imported here: matplotlib is slow to import and only /stats draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    counts = [week.count for week in weeks]
    top = max(counts, default=0)
    colors = [BUSIEST_COLOR if top and count == top else BAR_COLOR for count in counts]
    positions = list(range(len(weeks)))
    bars = axes.bar(positions, counts, color=colors)
    axes.bar_label(bars, labels=[str(count) if count else "" for count in counts], padding=2)
    axes.set_xticks(positions, [week.start.strftime("%m-%d") for week in weeks])
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, max(top * 1.15, 1))
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
