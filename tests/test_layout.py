"""The package boundaries the docstrings promise: the server imports nothing from the robot agent,
and the shared packages import neither of the two programs (foreman_sim not even foreman_learning)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "webapp": {"robot_agent"},
    "foreman_learning": {"robot_agent", "webapp"},
    "foreman_sim": {"robot_agent", "webapp", "foreman_learning"},
    "foreman_protocol": {"robot_agent", "webapp", "foreman_learning", "foreman_sim"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages `path` imports, anywhere in the file (function-level imports count too)."""
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            packages.add(node.module.split(".")[0])
    return packages


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_their_layer(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_repository_tracks_no_symlinks() -> None:
    """A committed symlink (a worktree's `.venv -> /work/main/.venv`) resolves on the machine that
    made it and loops or dangles on every other clone; CI once failed on exactly that."""
    listing = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    symlinks = [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000 ")]
    assert symlinks == []
