"""Specification: the repository stands alone.

A newcomer has the repository and nothing else, so no file in it — docs, README, docstrings,
comments, tests — may send the reader to a document that is not in it (the project's internal
design notes lived outside it). The fixed design decisions are in docs/architecture.md, under
"Decisions", and every "decision N" cited in the code is one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".json", ".sh"}
OUTSIDE_DOCUMENTS = (
    *(name + ".md" for name in ("DESIGN", "PBFT", "STYLE")),  # spelled apart: cites none
    "../" + "shared",
)
CITED_DECISION = re.compile(r"docs/architecture\.md,?\s+decisions?\s+([0-9]+)")


def repository_text_files() -> list[Path]:
    files = []
    for path in REPOSITORY.rglob("*"):
        relative = path.relative_to(REPOSITORY)
        if any(part in SKIPPED_FOLDERS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return files


def test_no_file_cites_a_document_outside_the_repository() -> None:
    files = repository_text_files()
    assert len(files) > 100, "the walk found too few files to be the repository"
    citations = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for name in OUTSIDE_DOCUMENTS:
                if name in line:
                    citations.append(f"{path.relative_to(REPOSITORY)}:{number}: {name}")
    assert not citations, "cited but not in the repository:\n" + "\n".join(citations)


def test_every_cited_decision_is_in_the_architecture_doc() -> None:
    architecture = (REPOSITORY / "docs" / "architecture.md").read_text()
    decisions_section = architecture.split("\n## Decisions\n", 1)
    assert len(decisions_section) == 2, "docs/architecture.md has no Decisions section"
    section = decisions_section[1].split("\n## ", 1)[0]
    numbered = {int(number) for number in re.findall(r"^([0-9]+)\. \*\*", section, re.M)}
    assert numbered == set(range(1, len(numbered) + 1)), numbered
    cited: dict[int, list[str]] = {}
    for path in repository_text_files():
        text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
        for number in CITED_DECISION.findall(text):
            cited.setdefault(int(number), []).append(str(path.relative_to(REPOSITORY)))
    assert cited, "no code cites a decision: the pattern no longer matches the citations"
    missing = {number: paths for number, paths in cited.items() if number not in numbered}
    assert not missing, f"decisions cited but not in docs/architecture.md: {missing}"
