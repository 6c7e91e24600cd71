"""The README's settings table is the configuration: one row per setting, with its default and its doc."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from training.pipeline.config import SECTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_its_readme_row():
    text = README.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+\.[a-z_0-9]+)` \|.*$", text, re.MULTILINE))
    expected, wrong = set(), []
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            expected.add(key)
            default = list(field.default) if isinstance(field.default, tuple) else field.default
            line = f"| `{key}` | `{default}` | {field.metadata['doc']} |"
            if line not in text:
                wrong.append(line)
    assert not wrong, "README settings rows missing or out of date:\n" + "\n".join(wrong)
    assert not rows - expected, f"README rows for settings that do not exist: {sorted(rows - expected)}"
