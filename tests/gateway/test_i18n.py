"""The dashboard's string tables: both languages complete, and every key the page uses exists.

No browser needed: the tables are JSON, the page's keys are literal `t("…")` calls and
`data-i18n` attributes (dynamic keys are listed in DYNAMIC_KEYS below).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "services" / "gateway" / "static"
LANGUAGES = ("en", "es")
PLURAL_FORMS = {"one", "other"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
T_CALL = re.compile(r"""\bt\(\s*["']([\w.]+)["']""")
HTML_KEY = re.compile(r"""data-i18n=["']([\w.]+)["']""")
HTML_ATTR_KEYS = re.compile(r"""data-i18n-attr=["']([^"']+)["']""")
# Keys built at run time (`t(\`alert.label.${level}\`)` and the like).
DYNAMIC_PREFIXES = {
    "alert.label.": ("none", "low", "medium", "high", "critical"),
    "connection.": ("connecting", "live", "reconnecting", "offline", "expired"),
    "box.": ("smoke", "fire"),
    "audit.": ("mark_false_positive", "unmark_false_positive", "acknowledge"),
}


def load(lang: str) -> dict[str, object]:
    table: dict[str, object] = json.loads((STATIC / "locales" / f"{lang}.json").read_text())
    return table


def placeholders(value: object) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(str(text))}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in STATIC.rglob("*.js"):
        keys |= set(T_CALL.findall(path.read_text()))
    for path in STATIC.rglob("*.html"):
        text = path.read_text()
        keys |= set(HTML_KEY.findall(text))
        for spec in HTML_ATTR_KEYS.findall(text):
            keys |= {pair.split(":")[1].strip() for pair in spec.split(";") if ":" in pair}
    for prefix, names in DYNAMIC_PREFIXES.items():
        keys |= {prefix + name for name in names}
    return keys


def test_both_languages_have_the_same_keys() -> None:
    english, spanish = load("en"), load("es")
    assert sorted(set(english) - set(spanish)) == [], "keys missing in es.json"
    assert sorted(set(spanish) - set(english)) == [], "keys missing in en.json"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_values_are_text_or_plural_forms_with_the_english_placeholders(lang: str) -> None:
    english, table = load("en"), load(lang)
    for key, value in table.items():
        if isinstance(value, dict):
            assert set(value) >= PLURAL_FORMS, f"{lang}:{key} needs 'one' and 'other'"
            assert all(isinstance(text, str) and text for text in value.values()), key
        else:
            assert isinstance(value, str) and value.strip(), f"{lang}:{key} is empty"
        assert placeholders(value) == placeholders(english[key]), f"{lang}:{key} placeholders"


def test_every_key_the_page_uses_exists() -> None:
    english = load("en")
    assert sorted(used_keys() - set(english)) == []


# The only strings that read the same in both languages.
SAME_IN_BOTH = {
    "card.error_with_attempts",
    "common.no",
    "field.error",
    "token.label",
    "unit.ms",
}


def test_spanish_is_translated_not_copied() -> None:
    english = load("en")
    copied = {key for key, value in load("es").items() if value == english[key]}
    assert copied <= SAME_IN_BOTH, f"not translated: {sorted(copied - SAME_IN_BOTH)}"
