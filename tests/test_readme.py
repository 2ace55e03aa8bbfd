"""Every Python block of the README runs verbatim (in a temporary folder), with the budgets it states."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_as_written(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # files the examples write (models, runs/) land here
    code = compile(BLOCKS[index], f"README.md block {index + 1}", "exec")
    exec(code, {"__name__": f"readme_block_{index + 1}"})
    assert os.getcwd() == str(tmp_path)
