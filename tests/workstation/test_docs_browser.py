"""The API reference (/docs) in real headless Chromium: Swagger UI served by the app itself.

The page must render the workstation's operations from local assets only (no request leaves the
server's 127.0.0.1 address, so it works on a hospital network without internet access), without
console errors or content-security-policy violations; signing in through "Authorize" and trying
an endpoint still goes through the roles.
"""

from __future__ import annotations

from tests.workstation.conftest import PASSWORD
from tests.workstation.test_browser import _watched_page, browser  # noqa: F401


def test_docs_load_locally_and_try_an_endpoint(browser, live_server, artifacts):  # noqa: F811
    page, problems, outside = _watched_page(browser, live_server.url, 1300, 900)

    page.goto(live_server.url + "/docs")
    page.wait_for_selector("#operations-studies-upload_api_studies_post")
    titles = page.inner_text(".information-container")
    assert "meddx clinician workstation" in titles
    for tag in ("auth", "studies", "predictions", "feedback", "models", "audit"):
        assert page.locator(f"#operations-tag-{tag}").count() == 1, tag

    # Sign in as a researcher through the OAuth2 password flow of the page.
    page.click("button.authorize")
    page.fill("#oauth_username", "researcher1")
    page.fill("#oauth_password", PASSWORD)
    page.click(".modal-ux button.modal-btn.authorize")
    page.wait_for_selector(".modal-ux h6:has-text('Authorized')")
    page.click(".modal-ux button.btn-done")

    # A researcher may read the worklist...
    worklist = page.locator("#operations-studies-worklist_api_studies_get")
    worklist.locator(".opblock-summary").click()
    worklist.locator("button.try-out__btn").click()
    worklist.locator("button.execute").click()
    worklist.locator(".responses-wrapper .live-responses-table tbody .response-col_status").first \
        .wait_for()
    assert worklist.locator(".live-responses-table tbody .response-col_status").first \
        .inner_text().strip().startswith("200")
    page.screenshot(path=str(artifacts / "workstation-docs.png"), full_page=False)

    # ...but not the audit trail (admins only): the role rules hold from the docs page too.
    audit = page.locator("#operations-audit-events_api_audit_get")
    audit.locator(".opblock-summary").click()
    audit.locator("button.try-out__btn").click()
    audit.locator("button.execute").click()
    audit.locator(".live-responses-table tbody .response-col_status").first.wait_for()
    assert audit.locator(".live-responses-table tbody .response-col_status").first \
        .inner_text().strip().startswith("403")

    assert not outside, f"requests leaving the server (CDN?): {outside}"
    problems = [p for p in problems if "403" not in p]  # the refused call above, on purpose
    assert not problems, problems
    page.close()
