"""The tour in python/README.md runs as written, so it cannot drift from the package."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_tour_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "python/README.md has no python block"
    namespace: dict = {}  # later blocks use what earlier ones defined, as a reader would
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "AppendResult(version=2, rows=115" in out
    assert "'missing_buckets': 5" in out
