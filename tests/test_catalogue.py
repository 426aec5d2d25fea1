"""The message catalogues: complete in every language, and safe to fill with user text."""

from __future__ import annotations

import pytest

from bot.i18n import LANGUAGES, Html, catalogue, placeholders, resolve_language, t


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
