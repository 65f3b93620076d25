"""The README stays true: every setting documented, and CI runs exactly its test command."""
from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_environment_table() -> None:
    table = README.split("## Environment", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} - documented == set()


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = [line for line in blocks[1].splitlines() if line and not line.startswith("#")]
    assert len(test_command) == 1
    assert test_command[0] in (ROOT / ".ci/run").read_text()
