"""The web UI in real headless Chromium (Debian's), driven by Playwright.

A clinician signs in, uploads a real PneumoniaMNIST test image, sees the finding and its heat map,
adjusts the viewer and submits a correction, which is then found in the database; an admin sees
it in the audit trail. Screenshots go to test-artifacts/. Any console error fails the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from tests.workstation.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def pneumonia_png(shared_data, tmp_path) -> Path:
    """One real PneumoniaMNIST test image exported to PNG, the way it would be uploaded."""
    data = np.load(shared_data / "medmnist-pneumoniamnist" / "pneumoniamnist.npz")
    path = tmp_path / "pneumonia-test-0.png"
    Image.fromarray(data["test_images"][0]).save(path)
    return path


def _watch(page, problems: list[str]) -> None:
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))


def _watched_page(browser, server_url: str, width: int = 1400, height: int = 1000):
    """A new page, the problems it reports (console errors, failed requests) and the requests
    it makes anywhere but the server (a CDN would show up there)."""
    problems: list[str] = []
    outside: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": height})
    _watch(page, problems)
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((server_url + "/", "blob:", "data:")) else None)
    return page, problems, outside


def _sign_in(page, url: str, username: str) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#username")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#worklist")


def test_clinician_reviews_a_real_image(browser, live_server, pneumonia_png, artifacts):
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    _watch(page, problems)
    external = []
    page.on("request", lambda r: external.append(r.url)
            if not r.url.startswith((live_server.url, "blob:", "data:")) else None)

    page.goto(live_server.url + "/")
    page.wait_for_selector("#login-button")
    page.screenshot(path=str(artifacts / "workstation-login.png"))
    _sign_in(page, live_server.url, "clinician1")

    page.click("a[data-route=upload]")
    page.wait_for_selector("#upload-form")
    page.set_input_files("#files", str(pneumonia_png))
    page.fill("#description", "Chest X-ray, cough for 3 weeks")
    page.click("#upload-button")
    page.wait_for_selector("#decision")
    # The heat map layer has been drawn at the relevance map's resolution.
    page.wait_for_selector("canvas.base[data-ready]")
    heat = page.wait_for_selector("canvas.overlay[data-layer=heatmap][data-ready]")
    assert int(heat.get_attribute("width")) == 28
    decision = page.inner_text("#decision")
    assert decision in {"0", "1"}
    assert "%" in page.inner_text("#uncertainty")
    assert page.inner_text("#model-card-link").startswith("blobs28 @ ")
    page.fill("#zoom", "12")
    page.dispatch_event("#zoom", "input")
    page.fill("#opacity-heatmap", "0.7")
    page.dispatch_event("#opacity-heatmap", "input")
    assert "opacity: 0.7" in heat.get_attribute("style")
    page.fill("#window", str(100))
    page.dispatch_event("#window", "input")
    page.screenshot(path=str(artifacts / "workstation-study.png"), full_page=True)

    corrected = "1" if decision == "0" else "0"
    page.check("#disagree")
    page.select_option("#corrected_label", corrected)
    page.fill("#comment", "Consolidation in the right lower lobe")
    page.click("#feedback-button")
    page.wait_for_selector("#reviews .badge.disagree")
    assert "clinician1" in page.inner_text("#reviews")
    page.screenshot(path=str(artifacts / "workstation-feedback.png"), full_page=True)
    study_id = int(page.url.rsplit("/", 1)[1])

    # The review is committed in the server's database.
    engine = create_engine(f"sqlite:///{live_server.root / 'workstation.db'}")
    with engine.connect() as connection:
        row = connection.execute(text(
            "SELECT f.agrees, f.corrected_label, f.comment, u.username FROM feedback f "
            "JOIN users u ON u.id = f.user_id WHERE f.study_id = :s"), {"s": study_id}).one()
    engine.dispose()
    assert tuple(row) == (False, corrected, "Consolidation in the right lower lobe", "clinician1")

    page.click("a[data-route=worklist]")
    page.select_option("#f-sort", "disagreement")
    page.wait_for_selector(f"tr[data-study='{study_id}'] .badge.disagree")
    page.screenshot(path=str(artifacts / "workstation-worklist.png"), full_page=True)

    page.click("#logout")
    page.wait_for_selector("#login-button")
    _sign_in(page, live_server.url, "admin1")
    page.click("a[data-route=audit]")
    page.wait_for_selector("#audit")
    audit_text = page.inner_text("#audit")
    assert "feedback" in audit_text and "clinician1" in audit_text
    page.screenshot(path=str(artifacts / "workstation-audit.png"), full_page=True)
    page.click("a[data-route=models]")
    page.wait_for_selector("#models")
    page.click("#models a")
    page.wait_for_selector("#plots[data-complete]")
    page.wait_for_selector("#plots img:not([data-loaded])", state="detached")
    assert page.locator("#plots img[data-loaded]").count() >= 3
    assert "Intended use" in page.inner_text("#model-card")
    page.screenshot(path=str(artifacts / "workstation-model.png"), full_page=True)

    assert not problems, problems
    assert not external, f"requests outside the server (CDN?): {external}"
    page.close()


def test_researcher_cannot_upload_or_review(browser, live_server, artifacts):
    problems: list[str] = []
    page = browser.new_page()
    _watch(page, problems)
    _sign_in(page, live_server.url, "researcher1")
    assert not page.is_visible("a[data-route=upload]")
    assert not page.is_visible("a[data-route=audit]")
    assert not problems, problems
    page.close()
