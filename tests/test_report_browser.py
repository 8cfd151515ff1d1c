"""The HTML reports opened in a real headless Chromium: they render, figures included, and no script runs.

Runs wherever Debian's ``chromium`` is installed (``make test`` installs it on Linux). Without it
the tests skip, saying why, except in CI (``CI`` set), where a missing browser is a failure.
Screenshots are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image
from sweep_data import SPEEDS, make_result

from mlxtune.compare import write_comparison_html

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
#: matplotlib's first colour (the measured points), absent from the page's own styles.
FIGURE_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is not installed, and CI is set: install Debian's chromium")
        pytest.skip("headless Chromium not found: install Debian's chromium (make test does on Linux)")
    return found


def run_chromium(chromium: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile}", *args, page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def screenshot(chromium: str, page: Path, name: str, tmp_path: Path) -> np.ndarray:
    """Render ``page`` at 1200x2000, keep the PNG as an artifact, return its RGB pixels."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    target.unlink(missing_ok=True)
    done = run_chromium(chromium, page, tmp_path / "profile", f"--screenshot={target}",
                        "--window-size=1200,2000")
    assert target.exists(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    pixels = image.imread(target)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    return pixels


def assert_rendered(pixels: np.ndarray) -> None:
    """Not blank: many colours, a fair share of ink, and the figures' own blue points drawn."""
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50
    ink = (pixels < 0.9).any(axis=-1).mean()
    assert 0.02 < ink < 0.9
    blue = (np.abs(pixels - FIGURE_BLUE) < 0.08).all(axis=-1).sum()
    assert blue > 100, "the figures did not render"


def test_html_report_renders_in_chromium(chromium, tmp_path):
    page = Path(make_result().to_html(str(tmp_path / "report.html")))
    assert_rendered(screenshot(chromium, page, "report.png", tmp_path))


def test_comparison_report_renders_in_chromium(chromium, tmp_path):
    slower = make_result({k: v * 0.8 for k, v in SPEEDS.items()}, label="slower", seed=1)
    page = Path(write_comparison_html(make_result(), slower, tmp_path / "compare.html",
                                      gates=["throughput<-5%"]))
    assert_rendered(screenshot(chromium, page, "comparison.png", tmp_path))


def test_a_hostile_label_does_not_run_in_the_browser(chromium, tmp_path):
    attack = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
    page = Path(make_result(label=attack, workload=attack).to_html(str(tmp_path / "hostile.html")))
    done = run_chromium(chromium, page, tmp_path / "profile", "--dump-dom")
    assert "<h1>" in done.stdout, done.stderr[-2000:]
    title = done.stdout.split("<title>")[1].split("</title>")[0]
    assert title.startswith("mlxtune report: &lt;script&gt;")  # had a script run, it would read "pwned"
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in done.stdout
    assert "<script" not in done.stdout
