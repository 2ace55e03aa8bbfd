"""Every Python block of the README and of the documentation pages runs verbatim (in a temporary folder), with
the budgets it states, so no page can rot."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCKS = [
    (f"{page.relative_to(ROOT)} block {i + 1}", code)
    for page in PAGES
    if "_build" not in page.parts
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.DOTALL))
]


def test_the_readme_and_the_docs_have_python_blocks() -> None:
    assert sum(name.startswith("README.md") for name, _ in BLOCKS) >= 1  # the front page's example
    assert sum(name.startswith("docs") for name, _ in BLOCKS) >= 10  # the guide's pages moved out of the README


@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_block_runs_as_written(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files the examples write (models, runs/) land here
    exec(compile(code, name, "exec"), {"__name__": f"block_{abs(hash(name))}"})
    assert os.getcwd() == str(tmp_path)
