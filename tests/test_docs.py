"""The docs stay true: their generated tables match the committed results they are made from,
every relative link resolves, and the work-log words stay in docs/lab/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import ROOT, make_docs

DOCS = make_docs.doc_files()
LAB = ROOT / "docs" / "lab"

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
WORK_LOG = re.compile(r"\blease[sd]?\b|\bstop \d+\b|\bissues? \d+", re.I)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def outside_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def links(path: Path) -> list[str]:
    text = outside_code(path.read_text())  # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_the_generated_tables_match_their_sources():
    stale = {rel(p) for p in make_docs.drift()}
    assert not stale, f"run python -m tools.make_docs: out of date in {sorted(stale)}"


def test_every_block_is_used_and_every_marker_is_known():
    used = {m.group(2) for p in DOCS for m in make_docs.MARK.finditer(outside_code(p.read_text()))}
    assert used <= set(make_docs.BLOCKS), sorted(used - set(make_docs.BLOCKS))
    assert set(make_docs.BLOCKS) <= used, f"blocks no page shows: {sorted(set(make_docs.BLOCKS) - used)}"
    for path in DOCS:  # a marker the pattern does not match would never be filled
        text = outside_code(path.read_text())
        assert text.count("<!-- generated:") == len(make_docs.MARK.findall(text)), rel(path)


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_resolve(path):
    broken = []
    for target in links(path):
        if re.match(r"[a-z]+:", target) or target.startswith("//"):
            continue  # a web address
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{rel(path)}: {broken}"


@pytest.mark.parametrize("path", [p for p in DOCS if LAB not in p.parents], ids=rel)
def test_no_work_log_words_outside_the_lab(path):
    found = [m.group(0) for m in WORK_LOG.finditer(path.read_text())]
    assert not found, f"{rel(path)}: {found}; dated logs belong in docs/lab/"


def commands(text: str) -> list[str]:
    """The command lines of a shell script or of a page's bash blocks, without their comments."""
    return [re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines()
            if re.match(r"(python3?|pip|arasfsr) ", line)]


def test_ci_runs_the_readme_commands():
    """.ci/run is the README's set-up and test commands, exactly (the browser install aside)."""
    readme = commands("\n".join(re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)))
    ci = commands((ROOT / ".ci" / "run").read_text())
    assert ci and "python -m pytest -q" in ci[-1] and any(line.startswith("arasfsr demo") for line in ci)
    missing = [line for line in ci if line not in readme]
    assert not missing, f".ci/run runs commands the README does not give: {missing}"


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_the_checks_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n## Two words\n\n[x](page.md#two-words) [y](page.md#three) [z](missing.md)\n"
                    "<!-- generated: parity -->\nstale\n<!-- end -->\n")
    assert anchors(page) == {"a-title", "two-words"}
    assert links(page) == ["page.md#two-words", "page.md#three", "missing.md"]
    assert make_docs.render(page.read_text()) != page.read_text()
    assert WORK_LOG.search("the second lease of the day") and WORK_LOG.search("in stop 20")
    assert not WORK_LOG.search("releases and please: the issue is")
