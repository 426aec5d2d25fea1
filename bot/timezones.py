"""Time zones as people type them: IANA names, cities (also in Chinese) and UTC offsets.

Only names of the time zone database are ever handed to ``ZoneInfo``: a folder of it
(``Asia``), a path or a very long text is not a zone, and opening it as one fails with an
``OSError`` instead of ``ZoneInfoNotFoundError``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from zoneinfo import available_timezones

MAX_ZONE_INPUT = 64  # the longest IANA name is 32 characters

# Not zones one would choose: the host's own setting and placeholders of the database.
_EXCLUDED = frozenset({"localtime", "Factory", "posixrules", "posix", "right"})

# Common Chinese names of places, for the zone they are in.
CHINESE_NAMES: dict[str, str] = {
    "中国": "Asia/Shanghai",
    "北京": "Asia/Shanghai",
    "北京时间": "Asia/Shanghai",
    "上海": "Asia/Shanghai",
    "广州": "Asia/Shanghai",
    "深圳": "Asia/Shanghai",
    "天津": "Asia/Shanghai",
    "重庆": "Asia/Shanghai",
    "成都": "Asia/Shanghai",
    "杭州": "Asia/Shanghai",
    "南京": "Asia/Shanghai",
    "武汉": "Asia/Shanghai",
    "西安": "Asia/Shanghai",
    "郑州": "Asia/Shanghai",
    "长沙": "Asia/Shanghai",
    "沈阳": "Asia/Shanghai",
    "哈尔滨": "Asia/Shanghai",
    "昆明": "Asia/Shanghai",
    "拉萨": "Asia/Shanghai",
    "乌鲁木齐": "Asia/Urumqi",
    "新疆": "Asia/Urumqi",
    "香港": "Asia/Hong_Kong",
    "澳门": "Asia/Macau",
    "台北": "Asia/Taipei",
    "台湾": "Asia/Taipei",
    "新加坡": "Asia/Singapore",
    "吉隆坡": "Asia/Kuala_Lumpur",
    "马来西亚": "Asia/Kuala_Lumpur",
    "曼谷": "Asia/Bangkok",
    "泰国": "Asia/Bangkok",
    "雅加达": "Asia/Jakarta",
    "马尼拉": "Asia/Manila",
    "河内": "Asia/Ho_Chi_Minh",
    "胡志明市": "Asia/Ho_Chi_Minh",
    "越南": "Asia/Ho_Chi_Minh",
    "东京": "Asia/Tokyo",
    "日本": "Asia/Tokyo",
    "首尔": "Asia/Seoul",
    "韩国": "Asia/Seoul",
    "迪拜": "Asia/Dubai",
    "莫斯科": "Europe/Moscow",
    "伦敦": "Europe/London",
    "英国": "Europe/London",
    "巴黎": "Europe/Paris",
    "柏林": "Europe/Berlin",
    "纽约": "America/New_York",
    "洛杉矶": "America/Los_Angeles",
    "温哥华": "America/Vancouver",
    "多伦多": "America/Toronto",
    "悉尼": "Australia/Sydney",
    "墨尔本": "Australia/Melbourne",
    "奥克兰": "Pacific/Auckland",
    "协调世界时": "UTC",
    "世界时": "UTC",
}

# Cities people name in English that the database files under another city's name.
ENGLISH_NAMES: dict[str, str] = {
    name: "Asia/Shanghai"
    for name in ("china", "beijing", "peking", "guangzhou", "shenzhen", "tianjin", "hangzhou")
} | {"hanoi": "Asia/Ho_Chi_Minh", "washington": "America/New_York"}

# UTC+8, GMT-5, UTC +08:00, UTC8, +8 (also 东八区 / 西五区, see below)
_OFFSET = re.compile(r"(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?00)?|(?:utc|gmt)\s*(\d{1,2})(?::?00)?")
_CN_OFFSET = re.compile(r"([东西])([一二三四五六七八九十]{1,3}|\d{1,2})区")
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


@cache
def _zones() -> dict[str, str]:
    """Lower-case IANA name, and lower-case last part (the city), -> the IANA name."""
    names: dict[str, str] = {}
    zones = sorted(z for z in available_timezones() if z.split("/", 1)[0] not in _EXCLUDED)
    for zone in zones:
        names[zone.lower()] = zone
    for zone in zones:
        names.setdefault(zone.rsplit("/", 1)[-1].lower(), zone)
    return names


def is_zone(name: str) -> bool:
    """``name`` is exactly a zone of the time zone database (safe to pass to ``ZoneInfo``)."""
    return _zones().get(name.lower()) == name


def offset_zone(hours: int) -> str | None:
    """The fixed zone ``hours`` east of UTC. The database's ``Etc/GMT`` names count the other
    way round (POSIX style): UTC+8 is ``Etc/GMT-8``."""
    if hours == 0:
        return "UTC"
    if not -12 <= hours <= 14:
        return None
    return f"Etc/GMT{-hours:+d}"


def zone_label(zone: str) -> str:
    """How a zone is shown: ``Etc/GMT-8`` as ``UTC+8`` (its name reads backwards)."""
    m = re.fullmatch(r"Etc/GMT([+-]\d{1,2})", zone)
    return f"UTC{-int(m[1]):+d}" if m else zone


def _cn_hours(text: str) -> int | None:
    if text.isdecimal():
        return int(text)
    if text == "十":
        return 10
    if text.startswith("十") and len(text) == 2:
        return 10 + _CN_DIGITS.get(text[1], 99)
    return _CN_DIGITS.get(text) if len(text) == 1 else None


def _offset(text: str) -> str | None:
    if m := _OFFSET.fullmatch(text):
        sign, hours = (m[1], m[2]) if m[1] else ("+", m[3])
        return offset_zone(int(hours) * (-1 if sign == "-" else 1))
    if m := _CN_OFFSET.fullmatch(text):
        hours = _cn_hours(m[2])
        if hours is None:
            return None
        return offset_zone(hours if m[1] == "东" else -hours)
    return None


def parse_timezone(text: str) -> str | None:
    """The IANA zone the user means, or None. Accepts ``Asia/Shanghai`` in any case, a city
    (``shanghai``, ``New York``), common Chinese names (``北京``, ``香港``) and UTC offsets
    (``UTC+8``, ``GMT-5``, ``东八区``)."""
    text = unicodedata.normalize("NFKC", text).replace("−", "-").strip()
    if not text or len(text) > MAX_ZONE_INPUT:
        return None
    if (zone := CHINESE_NAMES.get(text.removesuffix("市"))) is not None:
        return zone
    if (zone := _offset(text.lower())) is not None:
        return zone
    key = re.sub(r"\s+", "_", text).lower()
    return ENGLISH_NAMES.get(key) or _zones().get(key)
