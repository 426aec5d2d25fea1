"""The message catalogues: complete in every language, and safe to fill with user text."""

from __future__ import annotations

import re

import pytest

from bot.i18n import (
    LANGUAGES,
    Html,
    catalogue,
    placeholders,
    plural_forms,
    resolve_language,
    t,
)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "zh_CN"])
def test_every_language_has_every_text_with_the_same_placeholders(lang: str) -> None:
    reference = catalogue("zh_CN")
    other = catalogue(lang)
    assert sorted(set(reference) ^ set(other)) == []
    mismatched = [k for k in reference if placeholders(reference[k]) != placeholders(other[k])]
    assert mismatched == []


def test_user_text_is_escaped_but_rendered_html_is_not() -> None:
    text = t("en", "delete.done", iccid="<b>&x")
    assert "&lt;b&gt;&amp;x" in text
    nested = t("en", "card.plan_with_price", period=Html("<i>3 mo</i>"), price="¥1")
    assert nested == "<i>3 mo</i> · ¥1"


def test_language_follows_chat_then_user_then_default() -> None:
    assert resolve_language("en", "zh-hans") == "en"
    assert resolve_language(None, "zh-hant") == "zh_CN"
    assert resolve_language(None, "en-GB") == "en"
    assert resolve_language(None, "ru") == "zh_CN"
    assert resolve_language(None, None, "en") == "en"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_forms_are_exactly_one_and_other(lang: str) -> None:
    for key, template in catalogue(lang).items():
        for _name, forms in plural_forms(template):
            assert len(forms) == 2, key
            assert all(forms), key


def test_english_counts_agree_with_their_nouns() -> None:
    assert t("en", "status.ok", days=1) == "🟢 OK · 1 day left"
    assert t("en", "status.ok", days=2) == "🟢 OK · 2 days left"
    assert t("en", "status.ok", days=0) == "🟢 OK · 0 days left"
    assert t("en", "status.suspended", days=1) == "🔴 Suspended for 1 day"
    assert t("en", "stats.header", total=1) == "📊 <b>SIM card statistics</b> (1 card)"
    assert t("en", "reminder_settings.days_list", list="1") == "1 day before"
    assert t("en", "reminder_settings.days_list", list="7, 1") == "7, 1 days before"
    assert t("en", "cost.switch", n=1, plan="X", saving="¥1").startswith("Switching 1 card to")
    # a count that isn't a number (already formatted) takes the plural
    assert t("en", "export.caption", count="1,000").startswith("📤 1,000 cards. Edit them")
    assert t("en", "export.caption", count=1).startswith("📤 1 card. Edit it")


def test_no_english_count_is_left_without_its_plural() -> None:
    """Every '{n} days'-like phrase chooses its form, so '1 days' can't be shown (limits such as
    {max_rows} are never 1)."""
    nouns = "days|cards|weeks|rows|messages|chats|periods"
    unplural = re.compile(r"\{(?!max)(\w+)\} (?!\{)(?:" + nouns + r")\b")
    left = [key for key, text in catalogue("en").items() if unplural.search(text)]
    assert left == []


_HAN = "\u4e00-\u9fff"
_STRAY_SPACES = [
    re.compile(f"[{_HAN}] (?=<b>[{_HAN}])"),  # 这张卡 <b>哪天到期</b>
    re.compile(f"[{_HAN}]</b> (?=[{_HAN}])"),
    re.compile(f"[{_HAN}] (?=[{_HAN}])"),
    # a name or label typed in Chinese would stand apart from the words around it
    re.compile(f"[{_HAN}] \\{{(?:name|who|label|title)\\}}"),
    re.compile(f"\\{{(?:name|who|label|title)\\}} (?=[{_HAN}])"),
]


def test_chinese_texts_have_no_stray_spaces() -> None:
    """Spaces go around numbers and Latin words, not between Chinese words."""
    stray = []
    for key, text in catalogue("zh_CN").items():
        prose = re.sub(r"<code>.*?</code>", "<code/>", text)  # examples keep their spaces
        stray += [(key, p.pattern) for p in _STRAY_SPACES if p.search(prose)]
    assert stray == []


def test_one_wording_for_each_status_in_lists_and_digests() -> None:
    for lang in LANGUAGES:
        for status in ("suspended", "expired"):
            listed = t(lang, f"status.{status}", days=3)
            digest = t(lang, f"digest.status.{status}", days=3)
            assert listed.casefold() == digest.casefold(), (lang, status)
