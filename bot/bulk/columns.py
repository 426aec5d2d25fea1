"""Which spreadsheet column holds which card field, found by its header (Chinese or English).

Header names are part of the file format, not prose: they live here, next to the aliases that
read them back, so an exported file always imports again whatever the catalogue says.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Field(StrEnum):
    ICCID = "iccid"
    EXPIRY = "expiry"
    CARRIER = "carrier"
    TERMINAL = "terminal"
    LABEL = "label"
    PLAN = "plan"
    PERIOD = "period"
    PRICE = "price"
    AUTO_RENEW = "auto_renew"
    NOTE = "note"
    ARCHIVED = "archived"  # 停用: out of service (not 状态, the status exports write)
    # A renewal file (see ``bot.bulk.renewals``): a period or new expiry paid for, and when
    RENEW = "renew"
    PAID_ON = "paid_on"


_ALIASES: dict[Field, tuple[str, ...]] = {
    Field.ICCID: (
        "iccid", "iccid号", "iccid号码", "卡号", "iccid卡号", "sim卡号", "sim卡iccid", "流量卡号",
        "物联网卡号", "卡片iccid", "simiccid", "icc", "iccid码", "集成电路卡识别码",
    ),
    Field.EXPIRY: (
        "到期日", "到期日期", "到期时间", "有效期", "有效期至", "截止日期", "过期时间", "失效日期",
        "到期", "expiry", "expires", "expirydate", "expiration", "expirationdate", "expire",
        "validuntil", "enddate",
    ),
    Field.CARRIER: ("运营商", "运营商名称", "carrier", "operator", "network", "isp"),
    Field.TERMINAL: (
        "终端号", "终端", "终端编号", "终端序列号", "机具号", "机身号", "序列号", "设备号",
        "设备sn", "sn", "pos号", "posno", "terminal", "terminalid", "terminalno",
        "terminalserial", "serial", "serialno", "serialnumber",
    ),
    Field.LABEL: (
        "标签", "商户", "商户名", "商户名称", "名称", "门店", "店铺", "label", "merchant",
        "merchantname", "name", "shop", "store",
    ),
    Field.PLAN: ("套餐", "套餐名称", "plan"),
    Field.PERIOD: ("周期", "续费周期", "套餐周期", "period", "cycle", "term", "planperiod"),
    Field.PRICE: (
        "金额", "价格", "费用", "套餐价格", "续费金额", "资费", "price", "amount", "fee", "cost",
        "planprice",
    ),
    Field.AUTO_RENEW: ("自动续费", "自动续期", "自动续约", "autorenew", "auto"),
    Field.NOTE: ("备注", "说明", "note", "notes", "remark", "remarks", "comment", "memo"),
    Field.ARCHIVED: ("停用", "已停用", "是否停用", "archived", "archive", "outofservice"),
    # only words that mean "renewed now": 续期/renewal also head plan or auto-renew columns of
    # ordinary spreadsheets, which must not turn into renewals nobody paid for
    Field.RENEW: ("续费", "本次续费", "renew"),
    Field.PAID_ON: (
        "日期", "付款日期", "缴费日期", "支付日期", "续费日期", "paidon", "paid", "paymentdate",
        "datepaid",
    ),
}  # fmt: skip

# What an export writes, per language; each is also an alias above (checked in the tests).
EXPORT_HEADERS: dict[str, dict[Field, str]] = {
    "zh_CN": {
        Field.ICCID: "ICCID",
        Field.EXPIRY: "到期日",
        Field.CARRIER: "运营商",
        Field.LABEL: "标签",
        Field.PERIOD: "周期",
        Field.PRICE: "金额",
        Field.AUTO_RENEW: "自动续费",
        Field.NOTE: "备注",
        Field.ARCHIVED: "停用",
    },
    "en": {
        Field.ICCID: "ICCID",
        Field.EXPIRY: "expiry",
        Field.CARRIER: "carrier",
        Field.LABEL: "label",
        Field.PERIOD: "period",
        Field.PRICE: "price",
        Field.AUTO_RENEW: "auto_renew",
        Field.NOTE: "note",
        Field.ARCHIVED: "archived",
    },
}

HEADER_SEARCH_ROWS = 20  # a title block above the header is common; this many rows are searched
MAX_HEADER_LEN = 64

# Dropped before comparing: spaces, separators, required-field stars and a bracketed hint such
# as "到期日(必填)" or "expiry (YYYY-MM-DD)".
_BRACKETED = re.compile(r"[(\[（【].*?[)\]）】]")
_NOISE = re.compile(r"[\s_\-.:：*＊#/]+")
_BY_NAME = {alias: field for field, aliases in _ALIASES.items() for alias in aliases}


def normalize_header(text: str) -> str:
    text = unicodedata.normalize("NFKC", text[:MAX_HEADER_LEN]).casefold()
    return _NOISE.sub("", _BRACKETED.sub("", text))


def field_for(header: str) -> Field | None:
    return _BY_NAME.get(normalize_header(header))


@dataclass(frozen=True)
class ColumnMap:
    """Where each known field is: ``{field: 0-based column index}``; the headers as written."""

    columns: dict[Field, int]
    headers: tuple[str, ...]

    def __contains__(self, field: Field) -> bool:
        return field in self.columns


def map_columns(headers: Sequence[str]) -> ColumnMap:
    columns: dict[Field, int] = {}
    for index, header in enumerate(headers):
        field = field_for(header)
        if field is not None and field not in columns:  # the leftmost wins
            columns[field] = index
    return ColumnMap(columns, tuple(headers))
