"""The README's opening: what the workbench is first, then the two commands, then how to reach the lab."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def opening() -> list[str]:
    """The README's blocks before its first `##` section: paragraphs and fenced code, in order."""
    text = README.read_text().split("\n## ", 1)[0]
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    return blocks[1:]  # past the "# Workbench" title


def test_the_readme_says_what_it_is_then_the_two_commands() -> None:
    first, commands = opening()[:2]
    assert not first.startswith("```") and "GPU" in first and "notebooks" in first, first
    assert commands.startswith("```bash") and "make lab" in commands and "make test" in commands, commands


def test_the_readme_says_make_lab_prints_a_url_with_a_token_and_how_to_choose_the_port() -> None:
    text = "\n\n".join(opening())
    assert "token" in text and "URL" in text
    assert "make lab PORT=8899" in text and "workbench lab --port" in text
    makefile = (README.parent / "Makefile").read_text()
    assert "--port $(PORT)" in makefile  # what the README promises, the Makefile does
