"""Runs the lab extension's unit tests (Vitest) and end-to-end tests (Playwright in
Debian's headless Chromium against a real ``jupyter lab``) and asserts they pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .runner import need, npm_install, playwright, run

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "labextension"
BUILT = ROOT / "jupyter_ext" / "labextension"


def _newest(*paths: Path) -> float:
    return max((f.stat().st_mtime for p in paths for f in p.rglob("*") if f.is_file()), default=0)


@pytest.fixture(scope="module")
def lab_extension() -> Path:
    """The lab extension built from this checkout's sources (rebuilt when stale)."""
    need(shutil.which("node") is not None and shutil.which("npm") is not None,
         "Node.js and npm are needed to build and test the lab extension")
    npm_install(SOURCE)
    marker = BUILT / "package.json"
    sources = _newest(SOURCE / "src", SOURCE / "style", SOURCE / "package.json")
    if not marker.exists() or marker.stat().st_mtime < sources:
        run(["npm", "run", "build"], SOURCE, 600)
    return BUILT


@pytest.mark.timeout(300)
def test_unit(lab_extension: Path) -> None:
    """Vitest: API error parsing, SSE parsing, formatting, state updates."""
    run(["npx", "--no-install", "vitest", "run"], SOURCE, 240)


@pytest.mark.timeout(1500)
def test_end_to_end(lab_extension: Path, images_dir: Path) -> None:
    """Playwright: the panel, creating/stopping/starting/removing boxes, exec output,
    errors, a terminal, both themes; screenshots in test-artifacts/."""
    playwright([], {"BOXRUN_IMAGES_DIR": str(images_dir)}, 1400)
