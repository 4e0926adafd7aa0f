"""The documentation stands on its own: every relative link in README.md, docs/*.md and
config/README.md resolves inside the repository (file and, for Markdown, the #anchor by
GitHub's rules), nothing points at files outside it, and every method-notes section the code
and configs cite ("spec §5.2", "docs/methods.md §5.2", "§5.2") is a numbered heading of
docs/methods.md. Pure Python, no workflow run."""

import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
METHODS = REPO / "docs" / "methods.md"
# Directories whose code, rules and configs cite method-notes sections.
CITING = ("src", "workflow", "config")
CITING_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".md", ""}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) or ![alt](target); target without spaces, optional "title".
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SECTION = re.compile(r"§\s?(\d+(?:\.\d+)?)")
# A § right after one of these is a section of a paper, not of docs/methods.md
# ("Hinton, Vinyals & Dean 2015 §2", "ICLR 2022, §2.4", "LRCp §3", "paper.pdf §2").
PAPER_SECTION = re.compile(
    r"(?:et al\.?|\(\d{4}\)|(?:ICCV|ICLR|ICML|CVPR|NeurIPS|AAAI|ECCV) \d{4}|Dean \d{4}|LRCp|paper\.pdf|BEiT)"
    r"[ ,(]*$"
)
# A numbered heading of docs/methods.md: "## 5. Study ..." or "### 5.2 cifar_1k ...".
NUMBERED = re.compile(r"^(\d+(?:\.\d+)?)\.?\s")


def doc_files() -> list[Path]:
    return [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def outside_fences(text: str):
    """(line number, line) for every line not inside a fenced code block."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: rendered text, lower-cased, punctuation dropped
    (letters, digits, marks, '_', '-' and spaces stay), spaces become '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor GitHub makes for the headings of a Markdown text (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in outside_fences(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text: str):
    """(line number, target) of every link outside code blocks and inline code."""
    for number, line in outside_fences(text):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """What is wrong with each relative link of `path` (its content: `text`, default the file's)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    problems = []
    for number, target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(REPO)}:{number}: ({target})"
        resolved = (path.parent / file_part).resolve() if file_part else path
        if REPO not in resolved.parents and resolved != REPO:
            problems.append(f"{where} points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where} {resolved.relative_to(REPO)} does not exist")
            continue
        target_text = text if resolved == path else resolved.read_text(encoding="utf-8")
        if anchor and resolved.suffix == ".md" and anchor not in anchors(target_text):
            problems.append(f"{where} no heading of {resolved.relative_to(REPO)} has the anchor #{anchor}")
    return problems


def methods_sections() -> set[str]:
    sections = set()
    for _, line in outside_fences(METHODS.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match and (number := NUMBERED.match(match.group(2))):
            sections.add(number.group(1))
    return sections


def cited_sections() -> dict[str, list[str]]:
    """Section number -> where the code, rules and configs cite it."""
    cited: dict[str, list[str]] = {}
    for top in CITING:
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or path.suffix not in CITING_SUFFIXES:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for number, line in enumerate(text.splitlines(), 1):
                for match in SECTION.finditer(line):
                    if PAPER_SECTION.search(line[: match.start()]):
                        continue
                    cited.setdefault(match.group(1), []).append(f"{path.relative_to(REPO)}:{number}")
    return cited


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves_inside_the_repository(path):
    assert path.exists(), f"{path.relative_to(REPO)} is missing"
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_do_not_point_at_the_team_folder(path):
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/spec" not in text, (
        f"{path.relative_to(REPO)} points at ../shared; the method notes are docs/methods.md"
    )


def test_every_cited_method_section_is_a_heading_of_docs_methods():
    sections = methods_sections()
    assert {"1", "2", "3", "4", "5", "6", "7", "8"} <= sections
    missing = {n: where for n, where in cited_sections().items() if n not in sections}
    assert not missing, "cited as §N but no such section in docs/methods.md:\n" + "\n".join(
        f"  §{n}: {', '.join(where[:5])}" for n, where in sorted(missing.items())
    )


def test_slug_follows_githubs_rules():
    assert slug("What the default run measured") == "what-the-default-run-measured"
    assert slug("`dvc-restore`: pull without retraining") == "dvc-restore-pull-without-retraining"
    assert slug("5.4 Known issues / user reports") == "54-known-issues--user-reports"
    assert slug("1.1 LeRaC — the paper (LRCp §3, Tab. 1)") == "11-lerac--the-paper-lrcp-3-tab-1"
    assert slug("Config (`studies.coreset`, schema `$defs.coreset_study`)") == (
        "config-studiescoreset-schema-defscoreset_study"
    )
    assert slug("Schedule of μ(t)") == "schedule-of-μt"


def test_the_checks_catch_what_they_are_for():
    """A missing anchor, a missing file and a link out of the repository are each reported; a
    paper's own section ("Dean 2015 §2") is not taken for a section of docs/methods.md."""
    text = "# T\n\n## 1. A\n\n[x](#1-a) [y](#nope) [z](nowhere.md) [w](../../x) `[v](#code)`\n"
    problems = broken_links(METHODS, text)
    assert len(problems) == 3, problems
    assert "#nope" in problems[0] and "nowhere.md" in problems[1] and "outside" in problems[2]
    assert PAPER_SECTION.search("Hinton, Vinyals & Dean 2015 ")
    assert PAPER_SECTION.search("(ICLR 2022, ")
    assert not PAPER_SECTION.search("spec/methods.md ")
    assert not PAPER_SECTION.search("FE ")
