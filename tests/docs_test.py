"""The shipped docs, docstrings, comments, configs, tests and notebooks are self-contained.

They must not send a user to files outside the repository (the project's internal spec files,
a sibling ``shared`` folder, tracker issues) nor to absolute paths of the machine they were
written on; what a user needs lives in docs/*.md.
"""

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUFFIXES = (".py", ".md", ".ipynb")
DOCS = ("README.md", "data.md", "recipe.md", "search.md", "pruners.md")

FORBIDDEN = {
    "an internal spec file": re.compile(r"\b(SPEC|PRUNERS|DESIGN)\.md\b|\bSPEC sections?\b"),
    "a folder outside the repository": re.compile(r"\.\./shared\b|(?<![\w.~-])/shared/"),
    "an absolute machine path": re.compile(r"(?<![\w.~-])/(work|tmp|home|Users)/"),
    "a tracker issue": re.compile(r"\bissues? (\"|#\d|\d)", re.IGNORECASE),
}


def _tracked_files() -> list[pathlib.Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    names = [n for n in out.stdout.decode().split("\0") if n.endswith(SUFFIXES)]
    me = pathlib.Path(__file__).resolve()
    return [ROOT / n for n in names if (ROOT / n).resolve() != me and (ROOT / n).exists()]


def test_docs_folder_exists_and_links_resolve():
    for name in DOCS:
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    index = (ROOT / "docs" / "README.md").read_text()
    for target in re.findall(r"\]\(([\w./-]+\.md)\)", index):
        assert (ROOT / "docs" / target).is_file(), f"docs/README.md links to missing {target}"


def test_no_references_outside_the_repository():
    files = _tracked_files()
    assert files, "no tracked .py/.md/.ipynb files found"
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}")
    if hits:
        pytest.fail("references outside the repository (point to docs/*.md instead):\n"
                    + "\n".join(hits))
