"""Builds the project's Debian package as a user would (packaging/deb/build.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "packaging" / "deb" / "build.py"


def build_deb(arch: str, out: Path, source: Path = ROOT, epoch: str | None = None) -> Path:
    """The .deb for ``arch`` written into ``out``, built from the tree ``source`` (another
    commit's, without its git history: then ``epoch`` is its SOURCE_DATE_EPOCH); fails the
    test when it cannot be built."""
    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb not found: run scripts/setup.sh test")
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch} if epoch else None
    r = subprocess.run(
        [sys.executable, str(source / BUILD.relative_to(ROOT)), "--arch", arch, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1])
