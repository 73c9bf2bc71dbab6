"""The language the package speaks to a student: checker messages, hints and widget labels.

Every sentence a student reads from the package goes through :func:`tr`, whose first
argument is the English text, a ``str.format`` template with named fields::

    raise CheckError(tr("{name}: expected shape {expected}, got {got}", name=..., ...))

In English (the default) ``tr`` only fills the fields in. In another language it looks the
template up in that language's table, ``rlcourse/locale/<language>.json`` (English template
-> translated template, the same fields), and fills in the translation; a template without
a translation stays English (``tests/test_i18n.py`` checks that there is none). Choose the
language with :func:`set_language` (the zh-CN notebooks do so in their first cell).

Templates are string literals at the call (``tr("...")``), module constants (``tr(PASSED,
...)``), or texts kept in a table of the code and marked with :func:`N_` where they are
written (``STOP_REASONS = {"budget": N_("ran its whole step budget"), ...}``), translated
where they are shown (``tr(STOP_REASONS[reason])``); ``tests/test_i18n.py`` finds them all
in the source. A fragment put into a sentence is translated first, then passed as a value::

    tr(" It looks like you {mistake}.", mistake=tr("forgot the discount gamma"))

Literal braces in a template with fields are doubled (``"R_{{t+1}} = {r}"``), as
``str.format`` wants; a text without fields is taken as it is (``"R_{t+1}"``).
"""

from __future__ import annotations

import json
import re
import string
from functools import cache
from pathlib import Path
from typing import Any

#: the languages the package speaks (English is the source; the others have a table)
LANGUAGES = ("en", "zh-CN")
LOCALE_DIR = Path(__file__).parent / "locale"

_language = "en"

#: the templates asked for in a language whose table lacks them (the tests look at it)
missing: set[str] = set()


def set_language(language: str) -> None:
    """Speak ``language`` from now on: ``"en"`` (the default) or ``"zh-CN"``."""
    global _language
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of {list(LANGUAGES)}")
    _language = language


def get_language() -> str:
    """The language the package speaks now."""
    return _language


@cache
def table(language: str) -> dict[str, str]:
    """The translations of ``language``: English template -> translated template."""
    if language == "en":
        return {}
    with (LOCALE_DIR / f"{language}.json").open(encoding="utf-8") as f:
        return json.load(f)


def fields(template: str) -> set[str]:
    """The named fields of a ``str.format`` template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def tr(template: str, /, **values: Any) -> str:
    """``template`` in the current language, its fields filled in from ``values``."""
    return tr_in(_language, template, **values)


def tr_in(language: str, template: str, /, **values: Any) -> str:
    """``template`` in ``language`` (whatever the current language), fields filled in (a
    text without fields is taken as it is: its braces, as in ``R_{t+1}``, stay)."""
    text = table(language).get(template)
    if text is None:
        text = template
        if language != "en":
            missing.add(template)
    return text.format(**values) if values else text


def N_(template: str) -> str:
    """``template`` itself: marks a text that the code keeps (in a table, as a dict key) and
    translates with :func:`tr` where it is shown, so that the tests find it."""
    return template


def label(text: str) -> str:
    """A name shown in a widget (an option of a dropdown) in the current language where it
    has a translation, else as it is (names like ``"FrozenLake 4x4"`` have none)."""
    return table(_language).get(text, text)


#: what a checker prints when the answer passes every check
PASSED = "{name}: all {n} checks passed ✓"
#: what the REINFORCE checker prints after PASSED: which of the two right forms it saw
RECOGNISED = "  recognised {form}"
#: the templates the package prints into a notebook's outputs (a checker that passes): a
#: translated edition's stored outputs get their translation (rlcourse.translate)
PRINTED: tuple[str, ...] = (PASSED, RECOGNISED)


def _pattern(template: str) -> re.Pattern[str]:
    """A regex that matches ``template`` filled in with any values (one group per field)."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts) + "$")


def translate_printed(text: str, language: str) -> str:
    """``text`` (an output of a notebook run in English) with each line that the package
    printed from one of the :data:`PRINTED` templates in ``language``; a value that is
    itself a translated fragment (the form REINFORCE's checker recognised) is translated
    too."""
    if language == "en" or not PRINTED:
        return text
    translations = table(language)
    patterns = [(_pattern(t), translations.get(t, t)) for t in PRINTED]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        for pattern, translated in patterns:
            match = pattern.match(line)
            if match:
                values = {k: translations.get(v, v) for k, v in match.groupdict().items()}
                lines[i] = translated.format(**values)
                break
    return "\n".join(lines)


# ------------------------------------------------------------------ figures
#: fonts that draw Chinese, in the order they are preferred; a figure's text is Chinese only
#: when matplotlib finds one of them (else its glyphs would be empty boxes)
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Heiti SC",
    "Droid Sans Fallback",
)


@cache
def cjk_font() -> str | None:
    """The first of :data:`CJK_FONTS` that matplotlib has, or None."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def figure_language() -> str:
    """The language of a figure's text: the current one, but English for Chinese when no
    font can draw it."""
    if _language == "zh-CN" and cjk_font() is None:
        return "en"
    return _language


def figure_tr(template: str, /, **values: Any) -> str:
    """``tr`` for a figure's text: in :func:`figure_language`."""
    return tr_in(figure_language(), template, **values)


def figure_font() -> Any:
    """A matplotlib ``rc_context`` that draws a figure's text with the Chinese font when the
    figure's language is Chinese (use it around drawing and saving the figure)."""
    import matplotlib

    font = cjk_font() if figure_language() == "zh-CN" else None
    if font is None:
        return matplotlib.rc_context()
    return matplotlib.rc_context(
        {"font.sans-serif": [font, *matplotlib.rcParams["font.sans-serif"]]}
    )
