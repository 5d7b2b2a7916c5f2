"""Upstream's own test suite, run on a tree: the check that a patched release still behaves as upstream's tests pin.

OpenRLHF ships its tests inside the wheel (a top-level `tests/` beside `openrlhf/`), so any unpacked release (and a
git checkout) carries the suite of exactly its version. It runs from the folder holding both, so `openrlhf` is
imported from that tree and not from the openrlhf installed in this Python.
"""
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .series import PACKAGE, PatchError


@dataclass
class SuiteResult:
    returncode: int
    summary: str  # pytest's last line, e.g. "221 passed, 31 warnings in 11.83s"
    output: str

    @property
    def passed(self) -> int:
        found = re.search(r"(\d+) passed", self.summary)
        return int(found.group(1)) if found else 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.passed > 0 and not re.search(r"failed|error", self.summary)


def run_upstream_suite(tree: Path, timeout: int = 900) -> SuiteResult:
    """Run `pytest tests` in `tree` (the folder that holds openrlhf/ and upstream's tests/) with this Python."""
    tree = Path(tree)
    if not (tree / "tests").is_dir():
        raise PatchError(f"{tree} holds no tests/ folder: upstream's suite ships beside {PACKAGE}/ in its wheel")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tree), "tests"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = out.stdout.strip().splitlines()
    return SuiteResult(out.returncode, lines[-1] if lines else out.stderr.strip()[-300:], out.stdout + out.stderr)
