"""The README's engine example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]
    assert "make test" in (README.parent / ".ci" / "run").read_text()


def test_readme_engine_example_runs(capsys) -> None:
    text = README.read_text(encoding="utf-8")
    example = re.search(r"## The engine API\n\n```python\n(.*?)```", text, re.DOTALL).group(1)
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "UPDATE Likes green tea <- Likes tea" in out and "Green tea." in out
