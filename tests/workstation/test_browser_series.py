"""A real ECG200 heartbeat in headless Chromium: upload, series strip with saliency, finding,
review; a series of the wrong length is refused with a message naming the file.

A tiny series bundle is trained once per session on the shared ECG200 training split (2 epochs,
a narrow ResNet) and served by a real ``meddx serve``. The clinician uploads one series of the
official TEST split the way a device export would hold it (one row of numbers, no label).
"""

from __future__ import annotations

import numpy as np
import pytest

import meddx
from tests.workstation.conftest import start_server
from tests.workstation.test_browser import _sign_in, _watched_page, browser  # noqa: F401
from tests.workstation.test_browser_findings import _data_dir, _upload

TASK = "ecg-series-classification"
CASE = 4  # a test series of the "abnormal" class (label -1)


@pytest.fixture(scope="session")
def ecg200_bundle(tmp_path_factory):
    data = _data_dir()
    out = tmp_path_factory.mktemp("ecg200-bundle") / "ecg200"
    meddx.train("ecg200", out, data_dir=data, epochs=2, amp="off", progress=False,
                num_threads=1, plan={"arch": "resnet", "network_options": {"widths": [8, 8, 8]}})
    return out


@pytest.fixture(scope="module")
def series_server(tmp_path_factory, ecg200_bundle):
    server = start_server(tmp_path_factory.mktemp("series-ws"), ecg200_bundle,
                          users_to_create=("clinician",))
    yield server
    server.stop()


def test_ecg200_series_strip_finding_and_review(browser, series_server, tmp_path,  # noqa: F811
                                                artifacts):
    test_split = np.loadtxt(_data_dir() / "ecg200-ucr" / "ECG200_TEST.txt")
    label, values = test_split[CASE, 0], test_split[CASE, 1:]
    truth = {-1.0: "abnormal", 1.0: "normal"}[label]
    beat = tmp_path / f"ecg200-test-{CASE}.csv"
    beat.write_text(",".join(f"{v:.7g}" for v in values) + "\n")
    short = tmp_path / "short-beat.csv"
    short.write_text(",".join(f"{v:.7g}" for v in values[:80]) + "\n")

    page, problems, outside = _watched_page(browser, series_server.url)
    _sign_in(page, series_server.url, "clinician1")
    _upload(page, [beat], TASK, "Single heartbeat, chest pain")
    assert page.get_attribute("#viewer", "data-viewer") == "series"
    canvas = page.wait_for_selector("#series-canvas[data-ready]")
    assert canvas.get_attribute("data-points") == "96"
    assert canvas.get_attribute("data-saliency") == "true"
    assert 0 <= int(canvas.get_attribute("data-peak")) < 96
    facts = page.inner_text("#series-facts")
    assert "96 values" in facts and "one row of numbers" in facts and "Most salient" in facts
    decision = page.inner_text("#decision")
    assert decision in {"abnormal", "normal"}
    assert page.locator("#probabilities .prob").count() == 2
    assert page.inner_text("#probability").endswith("%")
    assert page.inner_text("#model-card-link").startswith("ecg200 @ ")
    assert "null" not in page.inner_text("#viewer")
    page.screenshot(path=str(artifacts / "workstation-series.png"), full_page=True)

    # The clinician's review: agree when the model found the reference class, else correct it.
    if decision == truth:
        page.check("#agree")
    else:
        page.check("#disagree")
        page.select_option("#corrected_label", truth)
    page.fill("#comment", "ST elevation in this beat" if truth == "abnormal" else "normal beat")
    page.click("#feedback-button")
    badge = "predicted" if decision == truth else "disagree"
    page.wait_for_selector(f"#reviews .badge.{badge}")
    assert "clinician1" in page.inner_text("#reviews")
    page.screenshot(path=str(artifacts / "workstation-series-reviewed.png"), full_page=True)

    # A series of the wrong length is refused, and the message says which file and why.
    page.click("a[data-route=upload]")
    page.wait_for_selector("#upload-form")
    page.set_input_files("#files", [str(short)])
    page.click("#upload-button")
    page.wait_for_selector("#banner:not([hidden])")
    message = page.inner_text("#banner")
    assert message.startswith("short-beat.csv: line 1: 80 values")
    assert "this model classifies series of 96 values" in message
    assert page.url.endswith("#/upload")  # no study was made
    # Chromium logs the refused upload (422) as a console error; nothing else may be there.
    unexpected = [p for p in problems if "status of 422" not in p]
    assert not unexpected, unexpected
    assert not outside, f"requests outside the server (CDN?): {outside}"
    page.close()
