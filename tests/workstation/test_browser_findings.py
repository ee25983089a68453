"""Every kind of finding in real headless Chromium, from real data: ECG strip, risk card, text.

Three tiny bundles are trained once per test session on the shared datasets (an ECG beat
classifier on the first minutes of three MIT-BIH DS1 records, a Pima diabetes risk model, a
Symptom2Disease text classifier) and served by one real ``meddx serve``. A clinician uploads a
whole MIT-BIH record (header, signal, annotations), rows of the Pima table and a symptom
description through the UI, and each study must show its finding panel and its viewer: beat
marks on the strip, explanation bars on the risk card, highlighted words in the text. Screenshots
go to test-artifacts/; a console error, a failed request or a request leaving the server fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import meddx
from tests.workstation.conftest import start_server
from tests.workstation.test_browser import _sign_in, _watched_page, browser  # noqa: F401

ECG_TRAIN_RECORDS = ("106", "119", "208")  # with many V beats, so every class is learnt a bit
ECG_TRAIN_SECONDS = 240
ECG_CASE = "109"  # a patient the model never saw: left bundle branch block with V beats
TEXT_PLAN = {"model": "ensemble", "vocab_size": 800, "hidden_size": 32, "layers": 1, "heads": 2,
             "intermediate_size": 64, "max_length": 64,
             "tfidf": {"ngram_range": [2, 4], "max_features": 8000}}


def _data_dir() -> Path:
    value = os.environ.get("MEDDX_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MEDDX_DATA_DIR is not set: no real datasets to test on")
    return Path(value)


def _first_minutes(source: Path, name: str, folder: Path, seconds: float) -> None:
    """The first ``seconds`` of a WFDB record with its beat annotations, as a new record."""
    import wfdb

    record = wfdb.rdrecord(str(source / name))
    end = int(seconds * record.fs)
    annotation = wfdb.rdann(str(source / name), "atr", sampto=end - 1)
    wfdb.wrsamp(name, fs=record.fs, units=record.units, sig_name=record.sig_name,
                p_signal=record.p_signal[:end], fmt=record.fmt, adc_gain=record.adc_gain,
                baseline=record.baseline, write_dir=str(folder))
    wfdb.wrann(name, "atr", annotation.sample, annotation.symbol, write_dir=str(folder))


@pytest.fixture(scope="session")
def finding_bundles(tmp_path_factory) -> dict[str, Path]:
    """ECG, risk and text bundles trained with tiny budgets (once per test session)."""
    data = _data_dir()
    root = tmp_path_factory.mktemp("finding-bundles")
    records = root / "mitdb-first-minutes"
    records.mkdir()
    for name in ECG_TRAIN_RECORDS:
        _first_minutes(data / "mitdb-arrhythmia-ds1", name, records, ECG_TRAIN_SECONDS)
    quick = {"progress": False, "amp": "off"}
    meddx.train(str(records), root / "ecg", plan={"epoch_size": 1024, "batch_size": 64},
                epochs=5, patience=0, num_threads=1, **quick)
    meddx.train("pima-diabetes", root / "risk", data_dir=data, epochs=2,
                plan={"max_rounds": 40, "background_size": 8}, **quick)
    meddx.train("symptom2disease", root / "text", data_dir=data, epochs=1, plan=TEXT_PLAN,
                **quick)
    return {"ecg": root / "ecg", "risk": root / "risk", "text": root / "text", "data": data}


@pytest.fixture(scope="module")
def findings_server(tmp_path_factory, finding_bundles):
    bundles = os.pathsep.join(str(finding_bundles[k]) for k in ("ecg", "risk", "text"))
    server = start_server(tmp_path_factory.mktemp("findings-ws"), bundles,
                          users_to_create=("clinician",))
    yield server
    server.stop()


@pytest.fixture
def clinician_page(browser, findings_server):  # noqa: F811
    page, problems, outside = _watched_page(browser, findings_server.url)
    _sign_in(page, findings_server.url, "clinician1")
    yield page
    assert not problems, problems
    assert not outside, f"requests outside the server (CDN?): {outside}"
    page.close()


def _upload(page, files: list[Path], task: str, description: str) -> None:
    """Upload ``files`` through the form, run by the model of ``task``; wait for the study."""
    page.click("a[data-route=upload]")
    page.wait_for_selector("#upload-form")
    page.select_option("#model_id", label=next(
        o for o in page.locator("#model_id option").all_inner_texts() if f"({task})" in o))
    page.set_input_files("#files", [str(f) for f in files])
    page.fill("#description", description)
    page.click("#upload-button")
    page.wait_for_selector("#decision", timeout=120_000)


def test_ecg_record_strip_with_beat_marks(clinician_page, finding_bundles, artifacts):
    page = clinician_page
    source = finding_bundles["data"] / "mitdb-arrhythmia-ds1"
    _upload(page, [source / f"{ECG_CASE}.{s}" for s in ("hea", "dat", "atr")],
            "ecg-beat-classification", "Holter, palpitations")
    assert page.get_attribute("#viewer", "data-viewer") == "ecg"
    canvas = page.wait_for_selector("#ecg-canvas[data-ready]")
    assert int(canvas.get_attribute("data-marks")) >= 5  # ~10 s of beats at 60-100 bpm
    assert page.locator("#ecg-beats tr.beat").count() == int(canvas.get_attribute("data-marks"))
    assert int(page.inner_text("#ecg-beat-count").split()[0]) > 2000  # the whole 30 min
    decision = page.inner_text("#decision")
    assert "ectopic" in decision
    assert page.locator("#probabilities .prob").count() == 5  # N S V F Q, share of beats
    assert "bpm" in page.inner_text("#beat-count")
    assert page.inner_text("#burden").endswith("%")
    # The default model's second opinion for S beats says what it changed in this record.
    assert "called S by a second model" in page.inner_text("#ecg-second-opinion")
    assert page.locator("#probability").count() == 0  # no single probability for a record
    assert page.inner_text("#model-card-link").startswith("ecg @ ")
    page.screenshot(path=str(artifacts / "workstation-ecg.png"), full_page=True)

    # The signal comes a window at a time, clipped to the record (30 min at 360 Hz).
    study_id = int(page.url.rsplit("/", 1)[1])
    tail = page.evaluate("""async (id) => (await fetch(`/api/studies/${id}/signal?start=99999`,
        {headers: {Authorization: `Bearer ${sessionStorage.getItem("meddx.token")}`}})).json()""",
                         study_id)
    assert tail["record"] == ECG_CASE and tail["sampling_rate_hz"] == 360
    assert len(tail["samples"]) == 3600 and tail["start_s"] == pytest.approx(
        tail["duration_s"] - 10, abs=0.01)

    # Scrolling the strip fetches another window of the signal; the marks follow.
    before = canvas.get_attribute("data-start")
    page.click("#ecg-next")
    # (Selector waits: the page's CSP forbids the eval behind wait_for_function.)
    page.wait_for_selector(f"#ecg-canvas:not([data-start='{before}'])")
    assert float(canvas.get_attribute("data-start")) == pytest.approx(float(before) + 10, abs=0.01)
    page.fill("#ecg-position", "600")
    page.dispatch_event("#ecg-position", "input")
    page.wait_for_selector("#ecg-canvas[data-start='600']")
    assert int(canvas.get_attribute("data-marks")) >= 5
    # The jump is offered exactly when the finding has ectopic beats (a small model may find
    # none in record 109); when offered, it lands on one.
    detail = page.evaluate("""async (id) => (await fetch(`/api/studies/${id}`,
        {headers: {Authorization: `Bearer ${sessionStorage.getItem("meddx.token")}`}})).json()""",
                           study_id)
    counts = detail["predictions"][-1]["outputs"]["summary"]["counts"]
    ectopic = sum(n for name, n in counts.items() if name != "N")
    assert page.is_enabled("#ecg-next-ectopic") == (ectopic > 0)
    if ectopic:
        page.click("#ecg-next-ectopic")
        page.wait_for_selector("#ecg-canvas:not([data-start='600'])")
        assert page.locator("#ecg-beats tr.beat:not(.beat-N)").count() >= 1
        page.screenshot(path=str(artifacts / "workstation-ecg-ectopic.png"), full_page=True)


def test_clinical_record_risk_card(clinician_page, finding_bundles, artifacts, tmp_path):
    page = clinician_page
    table = (finding_bundles["data"] / "pima-indians-diabetes" / "diabetes.csv").read_text()
    lines = table.splitlines()
    rows = tmp_path / "pima-clinic-visit.csv"
    rows.write_text("\n".join([lines[0], lines[1], lines[2], lines[3]]) + "\n")
    _upload(page, [rows], "tabular-classification", "Annual diabetes screening")
    assert page.get_attribute("#viewer", "data-viewer") == "risk-card"
    assert page.inner_text("#decision") in {"no_diabetes", "diabetes"}
    # The first row heads the finding panel (badges are capitalised by CSS: compare the text).
    assert page.text_content("#risk-decision") == page.text_content("#decision")
    assert "%" in page.inner_text("#probability")
    bars = page.locator("#risk-card .bar-row")
    assert bars.count() == 8  # one per Pima measurement
    assert page.locator("#risk-card .bar-row .pos, #risk-card .bar-row .neg").count() == 8
    assert "Glucose" in page.inner_text("#risk-card")
    assert "null" not in page.inner_text("#viewer")
    assert page.locator("#risk-record option").count() == 3
    first_risk = page.inner_text("#risk-value")
    page.screenshot(path=str(artifacts / "workstation-risk-card.png"), full_page=True)
    page.select_option("#risk-record", "1")
    page.wait_for_selector("#risk-card[data-record='1']")
    assert page.inner_text("#risk-value") != first_risk
    assert "pima-clinic-visit.csv:3" in page.inner_text("#risk-card")


def test_symptom_text_with_highlighted_words(clinician_page, tmp_path, artifacts):
    page = clinician_page
    note = tmp_path / "triage-note.txt"
    note.write_text("I have had itchy red patches on my arms and scaly skin on my elbows for "
                    "weeks, and the rash gets worse when I scratch it.\n", encoding="utf-8")
    _upload(page, [note], "text-classification", "Triage note")
    assert page.get_attribute("#viewer", "data-viewer") == "text"
    passage = page.wait_for_selector("#text-explained[data-highlighted]")
    assert int(passage.get_attribute("data-highlighted")) >= 10
    assert page.locator("#text-explained mark.attr.pos").count() >= 1
    assert "itchy red patches" in page.inner_text("#text-explained")
    assert "null" not in page.inner_text("#viewer")
    assert page.locator("#text-top-words .bar-row").count() >= 5
    assert page.locator("#probabilities .prob").count() == 5  # the five likeliest of 24
    page.screenshot(path=str(artifacts / "workstation-text.png"), full_page=True)
    # Both explanations of the ensemble can be shown over the same text.
    page.check("#text-method-tfidf")
    page.wait_for_selector("#text-explained[data-method=tfidf]")
    assert int(page.get_attribute("#text-explained", "data-highlighted")) >= 10
    page.screenshot(path=str(artifacts / "workstation-text-tfidf.png"), full_page=True)
