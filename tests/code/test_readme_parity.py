"""README.es.md keeps full parity with README.md: same sections, code, commands and tables.

The course's students read the Spanish file first, so a section or command added to one file
only must fail here. Prose is free; everything a reader copies or navigates by must match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGLISH = ROOT / "README.md"
SPANISH = ROOT / "README.es.md"

FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{2,3}) +(.+?) *$", re.MULTILINE)
MARKER = re.compile(r"<!-- *(?:end )?section: *[\w-]+ *-->")
MAKE = re.compile(r"\bmake +([a-z][a-z0-9-]*)")
CLI = re.compile(r"\bmlplatform +([a-z][a-z0-9-]*)")
URL = re.compile(r"https?://[^\s)>`|]+")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
ANCHOR = re.compile(r"\]\(#([^)\s]+)\)")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def prose(text: str) -> str:
    """The text outside fenced blocks (a `#` comment in a block is not a heading)."""
    return FENCE.sub("", text)


def headings(text: str) -> list[str]:
    return [f"{hashes} {title}" for hashes, title in HEADING.findall(prose(text))]


def first_difference(a: list[str], b: list[str]) -> int:
    """Index of the first item that differs; the shorter length when one extends the other."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def at(items: list[str], index: int) -> str:
    return items[index] if index < len(items) else "(none)"


def markers(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", m) for m in MARKER.findall(text)]


def commands(text: str) -> tuple[set[str], set[str]]:
    return set(MAKE.findall(text)), set(CLI.findall(text))


def table_rows(text: str) -> list[int]:
    """Rows per table (header and separator included), tables in order."""
    counts: list[int] = []
    run = 0
    for line in [*prose(text).splitlines(), ""]:
        if line.lstrip().startswith("|"):
            run += 1
        elif run:
            counts.append(run)
            run = 0
    return counts


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(ch for ch in text if ch in " -" or unicodedata.category(ch)[0] in {"L", "N"})
    return kept.replace(" ", "-")


def check_parity(english: str, spanish: str) -> list[str]:
    """Every difference a reader would notice, as one line each; empty when in step."""
    problems = []
    # Titles are translated, so headings match by count and level: "## X" against "## Y".
    en_heads, es_heads = headings(english), headings(spanish)
    en_levels = [h.split(" ", 1)[0] for h in en_heads]
    es_levels = [h.split(" ", 1)[0] for h in es_heads]
    if en_levels != es_levels:
        i = first_difference(en_levels, es_levels)
        problems.append(
            f"## and ### headings differ: {len(en_heads)} en / {len(es_heads)} es, first at #{i}:"
            f" en {at(en_heads, i)!r} / es {at(es_heads, i)!r}"
        )
    en_code, es_code = code_blocks(english), code_blocks(spanish)
    if en_code != es_code:
        i = first_difference(en_code, es_code)
        problems.append(
            f"code blocks differ: {len(en_code)} en / {len(es_code)} es, first at #{i}:"
            f" en {at(en_code, i)!r} / es {at(es_code, i)!r}"
        )
    (en_make, en_cli), (es_make, es_cli) = commands(english), commands(spanish)
    if en_make != es_make:
        problems.append(
            f"make targets differ: only en {en_make - es_make}, only es {es_make - en_make}"
        )
    if en_cli != es_cli:
        problems.append(
            f"mlplatform commands differ: only en {en_cli - es_cli}, only es {es_cli - en_cli}"
        )
    if markers(english) != markers(spanish):
        problems.append(f"section markers differ: en {markers(english)} / es {markers(spanish)}")
    if table_rows(english) != table_rows(spanish):
        problems.append(f"table rows differ: en {table_rows(english)} / es {table_rows(spanish)}")
    if set(URL.findall(english)) != set(URL.findall(spanish)):
        en_urls, es_urls = set(URL.findall(english)), set(URL.findall(spanish))
        problems.append(f"URLs differ: only en {en_urls - es_urls}, only es {es_urls - en_urls}")
    en_images, es_images = IMAGE.findall(english), IMAGE.findall(spanish)
    if en_images != es_images:
        problems.append(f"images differ: en {en_images} / es {es_images}")
    if "](README.es.md)" not in english:
        problems.append("README.md does not link to README.es.md")
    if "](README.md)" not in spanish:
        problems.append("README.es.md does not link to README.md")
    for name, text in (("en", english), ("es", spanish)):
        anchors = {slug(title) for _, title in HEADING.findall(prose(text))}
        anchors |= {slug(title) for title in re.findall(r"^# +(.+?) *$", prose(text), re.M)}
        dangling = sorted(set(ANCHOR.findall(text)) - anchors)
        if dangling:
            problems.append(f"{name}: links to missing headings {dangling}")
    return problems


def test_readmes_are_in_step() -> None:
    problems = check_parity(
        ENGLISH.read_text(encoding="utf-8"), SPANISH.read_text(encoding="utf-8")
    )
    assert not problems, "README.es.md is out of step with README.md:\n" + "\n".join(problems)


EXTRA_SECTION = "\n## Extra\n\nMore.\n\n```bash\nmake extra-target\nmlplatform extra-cmd\n```\n"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t + EXTRA_SECTION, ["headings", "code blocks", "make targets", "mlplatform"]),
        (lambda t: t + "\nRun `make only-here` first.\n", ["make targets"]),
        (lambda t: t + "\nOr `mlplatform only-here`.\n", ["mlplatform commands"]),
        (lambda t: t.replace("<!-- end section: docker -->", ""), ["section markers"]),
        (lambda t: t + "\n| a | b |\n|---|---|\n| 1 | 2 |\n", ["table rows"]),
        (lambda t: t.replace("](README.es.md)", "](README.md)"), ["does not link"]),
        (lambda t: t + "\n![shot](docs/screenshots/new.png)\n", ["images differ"]),
    ],
)
def test_a_change_to_one_file_only_fails(edit: Callable[[str], str], expected: list[str]) -> None:
    english = ENGLISH.read_text(encoding="utf-8")
    found = "\n".join(check_parity(edit(english), SPANISH.read_text(encoding="utf-8")))
    for what in expected:
        assert what in found, f"{what!r} not reported:\n{found}"


def test_slug_follows_github() -> None:
    assert (
        slug("Monitoring: ground truth, drift, retraining")
        == "monitoring-ground-truth-drift-retraining"
    )
    assert slug("Predicciones por lotes") == "predicciones-por-lotes"
    assert slug("Configuración") == "configuración"
    assert slug("Data lake layout (bucket `data`)") == "data-lake-layout-bucket-data"
