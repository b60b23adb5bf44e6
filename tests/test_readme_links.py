"""README is a front door: short, and every link in it and in docs/ reaches a file and a heading."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]*)(#[^)\s]*)?\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in page.read_text().splitlines():
        heading = re.match(r"#+ (.*)", line)
        if heading:
            kept = "".join(c for c in heading[1].strip().lower() if c.isalnum() or c in " -_")
            found.add(kept.replace(" ", "-"))
    return found


def test_the_readme_stays_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    assert len(PAGES) >= 5  # README and at least four docs pages


def test_every_link_reaches_a_file_and_its_heading():
    broken = []
    for page in PAGES:
        for target, anchor in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target) if target else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and path.suffix == ".md" and anchor[1:] not in _anchors(path):
                broken.append(f"{page.name}: {target}{anchor}")
    assert broken == []
