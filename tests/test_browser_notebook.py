"""The slider notebook in a real JupyterLab, in headless Chromium: widgets render and respond.

JupyterLab runs on 127.0.0.1 with a random port and token, over a copy of the notebooks; Playwright
drives Debian's Chromium (never a downloaded browser). If the widget front end and the kernel-side
ipywidgets disagree, the panel renders as text or as an error, and this test fails. Without
Chromium it skips, except in CI (``CI`` set), where it fails. A screenshot is kept in
``test-artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_env import copy_notebooks, jupyter_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("MLXTUNE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
NOTEBOOK = "02-cache-limit-slider.ipynb"


def _require_browser() -> None:
    """Skip (or, in CI, fail) when Chromium or Playwright is missing, saying which."""
    missing = None
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing = f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium on Linux)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright for Python is not installed (it is in the test extra)"
    if missing and os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {missing}")
    if missing:
        pytest.skip(missing)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path: Path, tiny_model_path: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server over a copy of the notebooks; yields the notebook's URL (token in the query)
    and the folder the server saves into."""
    _require_browser()
    root = copy_notebooks(tmp_path / "notebooks")
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "jupyterlab.log").open("w")
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
        f"--LabApp.user_settings_dir={_lab_settings(tmp_path / 'lab-settings')}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI runners often run as root
        command.append("--allow-root")
    env = jupyter_env(tmp_path)
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)  # no "get Jupyter news?" prompt over the page
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", server, tmp_path / "jupyterlab.log")
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}", root
    finally:
        with contextlib.suppress(OSError):
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait(timeout=10)
        log.close()


def _lab_settings(folder: Path) -> Path:
    """User settings: every cell stays in the page (no windowing), so off-screen outputs can be checked."""
    tracker = folder / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    return folder


def _wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def test_slider_notebook_renders_widgets_and_runs(lab: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url)
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
            # the kernel named in the notebook's metadata starts by itself (no "Select Kernel" dialog)
            idle = page.get_by_role("button", name=re.compile(r"Python 3 \(ipykernel\) \| Idle"))
            expect(idle).to_be_visible(timeout=60_000)
            assert page.locator(".jp-Dialog").count() == 0
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

            panel = page.locator(".jp-OutputArea-output .widget-vbox")
            panel = panel.filter(has=page.locator(".mlxtune-plan")).first
            expect(panel).to_be_visible(timeout=60_000)
            table = panel.locator(".mlxtune-summary table tbody tr")
            expect(table).to_have_count(5, timeout=90_000)  # the notebook's own run: 5 points
            # widgets, not the text fallback: a noUiSlider range slider and the plot as an image widget
            expect(panel.locator(".widget-slider .noUi-handle")).to_have_count(3)  # range (2) + inspect (1)
            tradeoff = panel.locator(".widget-image.mlxtune-tradeoff")
            expect(tradeoff).to_be_visible()
            assert tradeoff.evaluate("img => img.naturalWidth") > 100
            assert page.get_by_text("Error displaying widget").count() == 0
            assert page.get_by_text("VBox(children=").count() == 0

            last_table = page.locator(".jp-CodeCell").last.locator(".jp-OutputArea-output table")
            expect(last_table).to_be_visible(timeout=90_000)  # the whole notebook ran
            expect(idle).to_be_visible(timeout=30_000)
            panel.scroll_into_view_if_needed()
            plan = panel.locator(".mlxtune-plan")
            before = plan.inner_text()
            assert "unlimited" in before
            _drag_upper_handle(page, panel.locator(".widget-slider").first, to_fraction=4 / 9)  # -> 16MB
            expect(plan).to_contain_text("16MB in", timeout=10_000)
            after = plan.inner_text()
            assert after != before and "unlimited" not in after and "256KB" in after

            assert _broken_images(page) == 0
            panel_cell = page.locator(".jp-CodeCell").filter(has=panel).first  # %%mlxsweep has one too
            expect(panel_cell.locator(".mlxtune-snapshot")).to_have_count(1)  # the notebook's own sweep's
            page.evaluate(_WATCH_SNAPSHOT)  # notes whether the snapshot leaves, however briefly
            run = panel.locator(".widget-button", has_text=re.compile(r"^\s*Run\s*$"))
            run.click()
            expect(run).to_be_disabled(timeout=10_000)
            # what a person waits for: Run is back, the status says how many blocks ended (lm runs in
            # steps, so the panel compares limits within runs), the table has them
            expect(run).to_be_enabled(timeout=60_000)
            expect(panel).to_contain_text("20 blocks", timeout=10_000)
            expect(panel).to_contain_text("Paired within runs: 4 cycles of 5 limits")
            expect(table).to_have_count(5)
            headers = [h.strip() for h in panel.locator(".mlxtune-summary table thead th").all_inner_texts()]
            blocks_column = headers.index("blocks") + 1
            first_cells = [c.split(" ")[0] for c in table.locator("td:nth-child(1)").all_inner_texts()]
            assert first_cells == ["0", "256KB", "1MB", "4MB", "16MB"]
            expect(table.locator(f"td:nth-child({blocks_column})")).to_have_text(["4"] * 5)  # 4 cycles
            _assert_size_ticks(tradeoff.evaluate(_TICK_LABELS))
            expect(panel_cell.locator(".mlxtune-snapshot")).to_have_count(1, timeout=10_000)
            # the second sweep replaced the first one's snapshot: never two views of two sweeps at once
            assert page.evaluate("window.mlxtuneSnapshotLeft") is True
            assert _broken_images(page) == 0

            panel.locator(".widget-button", has_text="Export HTML").click()
            link = panel.locator("a[href$='.html']")
            expect(link).to_be_visible(timeout=30_000)
            assert link.inner_text().startswith("mlxtune-out/tiny-model-")

            for width in (900, 1400):  # one screen tall, nothing cut off, in a narrow or a wide window
                page.set_viewport_size({"width": width, "height": 1000})
                page.wait_for_timeout(500)
                panel.scroll_into_view_if_needed()
                _assert_inside(panel, page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").first, width)
                for control in panel.locator(".widget-slider, .widget-button, .progress, .widget-hbox").all():
                    if control.is_visible():  # the folded details hold the rest
                        _assert_inside(control, panel, width)
                box = panel.bounding_box()
                assert box is not None and box["height"] <= 900, (width, box)

            # the saved notebook keeps a static view of the last sweep, shown when it is opened again
            page.keyboard.press("Control+s")
            saved = root / NOTEBOOK
            deadline = time.monotonic() + 30
            while "mlxtune-snapshot" not in saved.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            outputs = [o for c in json.loads(saved.read_text())["cells"] for o in c.get("outputs", [])]
            kept = [o for o in outputs
                    if "mlxtune-snapshot" in "".join(o.get("data", {}).get("text/html", ""))]
            assert kept and "data:image/png;base64," in "".join(kept[-1]["data"]["text/html"])
            page.reload()
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
            snapshot = page.locator(".mlxtune-snapshot").first  # the panel above; %%mlxsweep leaves one too
            snapshot.scroll_into_view_if_needed()
            snapshot.locator("summary").first.click()  # folded below the live panel: one click away
            expect(snapshot.locator("img")).to_be_visible(timeout=30_000)
            expect(snapshot.locator("table.summary tbody tr")).to_have_count(5)
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser-02-cache-limit-slider.png"), full_page=True)
            browser.close()


#: Watches the panel's cell and sets ``window.mlxtuneSnapshotLeft`` once its snapshot is gone.
_WATCH_SNAPSHOT = """() => {
  window.mlxtuneSnapshotLeft = false;
  const cell = [...document.querySelectorAll('.jp-CodeCell')].find(c => c.querySelector('.mlxtune-plan'));
  new MutationObserver(() => {
    if (!cell.querySelector('.mlxtune-snapshot')) window.mlxtuneSnapshotLeft = true;
  }).observe(cell, {subtree: true, childList: true});
}"""


#: The x-axis tick labels of an SVG image on the page, read from the image the page shows.
_TICK_LABELS = """async img => {
    const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(), 'image/svg+xml');
    return [...svg.querySelectorAll('g[id^="xtick_"] text')].map(t => t.textContent.trim()).filter(Boolean);
}"""


def _assert_size_ticks(labels: list[str]) -> None:
    """Axis labels a person can read: sizes, each once, in order, all in one unit."""
    from mlxtune.units import parse_size

    units = {re.fullmatch(r"[\d.]+\s*([KMGT]?i?B)", label)[1] for label in labels}  # type: ignore[index]
    values = [parse_size(label) for label in labels]
    assert len(labels) >= 2 and len(units) == 1, labels
    assert values == sorted(values) and len(set(values)) == len(values), labels


def _broken_images(page: Any) -> int:
    """How many images on the page are shown without a picture (the browser's broken-image icon)."""
    return page.evaluate("[...document.querySelectorAll('img')].filter(i => i.offsetParent !== null "
                         "&& i.complete && i.naturalWidth === 0).length")


def _assert_inside(inner: Any, outer: Any, width: int) -> None:
    """``inner``'s box lies within ``outer``'s horizontally (one pixel of rounding allowed)."""
    a, b = inner.bounding_box(), outer.bounding_box()
    assert a is not None and b is not None
    inside = a["x"] >= b["x"] - 1 and a["x"] + a["width"] <= b["x"] + b["width"] + 1
    assert inside, (width, inner.evaluate("e => e.className + ': ' + e.innerText.slice(0, 60)"), a, b)


def _drag_upper_handle(page: Any, slider: Any, to_fraction: float) -> None:
    """Drag a range slider's upper handle with the mouse to a fraction of its track, as a user would."""
    slider.scroll_into_view_if_needed()
    handle = slider.locator(".noUi-handle-upper").bounding_box()
    track = slider.locator(".noUi-base").bounding_box()
    assert handle is not None and track is not None
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    target_x = track["x"] + track["width"] * to_fraction
    page.mouse.move(target_x, handle["y"] + handle["height"] / 2, steps=12)
    page.mouse.up()


@pytest.mark.parametrize("notebook", ["01-mlxmem.ipynb", "03-reports.ipynb"])
def test_the_other_notebooks_run_end_to_end_in_the_browser(lab: tuple[str, Path], notebook: str) -> None:
    """Each walkthrough, Run All in JupyterLab: every cell runs without an error, no sentinel number and no
    broken image reaches the page."""
    from playwright.sync_api import expect, sync_playwright

    url, root = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url.replace(NOTEBOOK, notebook))
            idle = page.get_by_role("button", name=re.compile(r"Python 3 \(ipykernel\) \| Idle"))
            expect(idle).to_be_visible(timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # every code cell numbered: all ran (or one failed)
                texts = prompts.all_inner_texts()
                if texts and all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts):
                    break
                page.wait_for_timeout(500)
            expect(idle).to_be_visible(timeout=60_000)
            texts = prompts.all_inner_texts()
            assert all(re.fullmatch(r"\[\d+\]:", t.strip()) for t in texts), texts
            page.keyboard.press("Control+s")
            saved = root / notebook
            deadline = time.monotonic() + 30
            while not any(c.get("outputs") for c in json.loads(saved.read_text())["cells"]) \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            outputs = [o for c in json.loads(saved.read_text())["cells"] for o in c.get("outputs", [])]
            errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs  # 01 shows one error on purpose
                      if o.get("output_type") == "error" and "on purpose" not in str(o.get("evalue"))]
            assert outputs and errors == []
            assert "9223372036854775807" not in page.locator(".jp-NotebookPanel").inner_text()
            assert _broken_images(page) == 0
        finally:
            shot = ARTIFACTS / f"browser-{notebook.removesuffix('.ipynb')}.png"
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
