"""Shared by the benchmark scripts: replace one script's section of RESULTS.md."""

from __future__ import annotations

import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(section: str, text: str) -> None:
    """Put ``text`` (which starts with the ``section`` heading) in place of that section of
    RESULTS.md, or append it; the other sections are left as they are."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if section in existing:
        before, rest = existing.split(section, 1)
        after = rest.split("\n## ", 1)
        existing = before + text + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        existing = existing.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(existing)


def publish(section: str, text: str, quick: bool) -> None:
    """Print a benchmark's text; a full (not quick) run also records it in RESULTS.md."""
    print(text)
    if not quick:
        write_section(section, text)
        print(f"written to {RESULTS}", file=sys.stderr)
