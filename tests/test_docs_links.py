"""The documentation's relative links lead somewhere: every link in README.md, CHANGELOG.md and
docs/*.md to a file of the repository names one that exists, and every #anchor names a heading
of the page it points to (GitHub's rule for heading anchors). Docs were moved out of README
into docs/; a link left pointing at a section that moved would otherwise rot unnoticed.

Also: README's second command is exactly what CI runs (.ci/run), as README says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")


def _prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (a `# comment` there is not a heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(page.read_text()):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    out = []
    for line in _prose_lines(page.read_text()):
        out.extend(_LINK.findall(_CODE_SPAN.sub("", line)))
    return out


def test_slug_follows_githubs_rule():
    assert slug("Write path") == "write-path"
    assert slug("Measuring with s3free bench") == "measuring-with-s3free-bench"
    assert slug("Chaos suite: last long run") == "chaos-suite-last-long-run"
    assert slug("Engine (`tools/bench_engine.py`)") == "engine-toolsbench_enginepy"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_readme_runs_the_suite_as_ci_does():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    commands = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    assert commands.splitlines()[1] == ci
