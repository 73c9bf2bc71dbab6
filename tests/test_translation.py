"""The zh-CN edition is what ``python -m rlcourse.translate zh-CN`` builds now from the
English notebooks and the catalogs: every cell translated, no translation older than its
English cell, and every number of the English text kept.

nbval (run by the same ``pytest``) re-executes the zh-CN notebooks and compares their
outputs, as it does the English ones.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest

from rlcourse import translate
from rlcourse.translate import (
    catalog_path,
    command,
    english_notebooks,
    language_line,
    load_catalog,
    source_hash,
    translate_notebook,
)

LANGUAGE = "zh-CN"
EDITION = translate.edition_dir(LANGUAGE)
NOTEBOOKS = english_notebooks()
# a number as the text writes it: 0.9, 1,000, 1e-8, 475 (signs and units aside)
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?")


def _numbers(text: str) -> Counter[str]:
    return Counter(n.replace(",", "") for n in NUMBER.findall(text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_translated_and_current(path: Path) -> None:
    """Each English cell has a translation whose hash is that of the cell as it is now;
    the failure names the notebook, the cell and the command that shows what to do."""
    nb = nbformat.read(path, as_version=4)
    _, problems = translate_notebook(nb, load_catalog(LANGUAGE, path.stem), LANGUAGE, path.stem)
    assert not problems, "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_edition_is_what_the_build_writes(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    translated, problems = translate_notebook(
        nb, load_catalog(LANGUAGE, path.stem), LANGUAGE, path.stem
    )
    if problems:
        pytest.fail(f"{path.stem} cannot be built (see test_every_cell_translated_and_current)")
    target = EDITION / path.name
    assert target.exists(), f"{target} is missing; run `{command(LANGUAGE)}`"
    assert target.read_text(encoding="utf-8") == nbformat.writes(translated) + "\n", (
        f"{target.relative_to(translate.ROOT)} is not what the build writes now (an English "
        f"notebook or a catalog changed since); run `{command(LANGUAGE)}`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_translation_keeps_every_number(path: Path) -> None:
    """A markdown cell's translation states the numbers its English cell states (the
    numbers a run printed and asserted), no more, no fewer."""
    nb = nbformat.read(path, as_version=4)
    entries = load_catalog(LANGUAGE, path.stem).get("cells", {})
    wrong = []
    for cell in nb.cells:
        text = entries.get(cell.id, {}).get("text")
        if cell.cell_type != "markdown" or not text:
            continue
        english, chinese = _numbers(cell.source), _numbers(text)
        if english != chinese:
            lost, added = english - chinese, chinese - english
            wrong.append(f"cell {cell.id}: lost {dict(lost)}, added {dict(added)}")
    assert not wrong, f"{path.stem}: numbers differ from the English:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_edition_keeps_the_code_and_sets_the_language(path: Path) -> None:
    """The translated notebook has the English cells' ids, in order, and the same code
    apart from the catalog's pairs; its first code cell sets the package's language."""
    target = EDITION / path.name
    if not target.exists():
        pytest.fail(f"{target} is missing; run `{command(LANGUAGE)}`")
    english = nbformat.read(path, as_version=4)
    chinese = nbformat.read(target, as_version=4)
    assert [c.id for c in chinese.cells] == [c.id for c in english.cells]
    assert [c.cell_type for c in chinese.cells] == [c.cell_type for c in english.cells]
    first = next(c for c in chinese.cells if c.cell_type == "code")
    assert first.source.startswith(language_line(LANGUAGE))
    assert "检查器" in first.source.splitlines()[2]  # its comment is in the language too
    assert chinese.metadata["rlcourse"]["language"] == LANGUAGE


def test_stale_and_missing_translations_are_named(tmp_path: Path) -> None:
    """The problems name the notebook, the cell and the command; a pair must be found."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title: 475 over 100 episodes", id="m1"),
        nbformat.v4.new_code_cell("x = 1  # the answer\nprint('hello')", id="c1"),
        nbformat.v4.new_markdown_cell("changed", id="m2"),
        nbformat.v4.new_code_cell("y = 2", id="c2"),
    ]
    catalog = {
        "cells": {
            "m1": {"source_hash": source_hash(nb.cells[0].source), "text": "# 标题：100 幕 475"},
            "c1": {
                "source_hash": source_hash(nb.cells[1].source),
                "replace": [["# the answer", "# 答案"], ["missing text", "?"]],
            },
            "m2": {"source_hash": "0" * 16, "text": "旧的"},
            "gone": {"source_hash": "0" * 16, "text": "?"},
        }
    }
    out, problems = translate_notebook(nb, catalog, LANGUAGE, "99_test")
    messages = {p.cell: p.what for p in problems}
    assert "does not contain 'missing text'" in messages["c1"]
    assert "stale" in messages["m2"] and "--status 99_test" in messages["m2"]
    assert "no translation" in messages["c2"]
    assert "no longer" in messages["gone"]
    assert str(problems[0]).startswith("99_test, cell ")
    assert out.cells[0].source == "# 标题：100 幕 475"
    assert "# 答案" in out.cells[1].source and out.cells[1].source.startswith("from rlcourse.i18n")


def test_catalogs_are_well_formed() -> None:
    """One catalog per English notebook, valid JSON, entries of the right kind."""
    for path in NOTEBOOKS:
        catalog_file = catalog_path(LANGUAGE, path.stem)
        assert catalog_file.exists(), (
            f"no catalog for {path.name}; see `{command(LANGUAGE, '--status', path.stem)}`"
        )
        catalog = json.loads(catalog_file.read_text(encoding="utf-8"))
        kinds = {c.id: c.cell_type for c in nbformat.read(path, as_version=4).cells}
        for cell_id, entry in catalog["cells"].items():
            assert set(entry) <= {"source_hash", "text", "replace"}, (path.stem, cell_id)
            if kinds.get(cell_id) == "code":
                assert all(len(pair) == 2 for pair in entry["replace"]), (path.stem, cell_id)


def test_glossary_exists_and_names_the_core_terms() -> None:
    glossary = (EDITION / "GLOSSARY.md").read_text(encoding="utf-8")
    for term in (
        "状态",
        "动作",
        "回报",
        "价值函数",
        "时序差分",
        "策略梯度",
        "优势函数",
        "近端策略优化",
    ):
        assert term in glossary, term
