"""Benchmark: last C-STORE of a series -> AI results stored back in a real Orthanc PACS.

The path a hospital would run: a modality sends a series to ``meddx dicom listen`` (C-STORE); the
listener waits until the series is complete (``--idle`` seconds without a new instance), routes
it, runs the model, writes the results as DICOM (SEG + TID 1500 SR + secondary capture for the
segmentation; SR + secondary capture with the Grad-CAM heat map for the classifier) and sends
them to Orthanc by C-STORE. The clock starts when the sender's last C-STORE is acknowledged and
stops when Orthanc lists the result SR in the study (polled every 20 ms over its REST API).

Cases:

- **volume**: MSD hippocampus case 001 (35 x 51 x 35 voxels, 35 MR slices) through a hippocampus
  segmentation bundle (``--seg-bundle``, else ``runs/bench/hippocampus-seg``, else one trained
  now with a tiny budget: its Dice is printed, the timing is what is measured);
- **image**: one 28 x 28 PneumoniaMNIST test image as a DICOM image through a pneumonia
  classifier (``--cls-bundle``, else the demo's or the workstation benchmark's, else trained now).

The first run of each case includes loading the model (cold); later runs reuse it (warm).
Prints a table and writes ``benchmarks/results/dicom.json``.

    python benchmarks/dicom_roundtrip.py [--repeats 4] [--idle 1.0]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
console = Console()


def _bundle(given: Path | None, candidates: list[Path], train) -> tuple[Path, str]:
    from meddx.decision.bundle import METADATA_FILE

    for candidate in [given, *candidates]:
        if candidate is not None and (candidate / METADATA_FILE).exists():
            return candidate, "existing"
    out = candidates[0]
    train(out)
    return out, "trained now"


def seg_bundle(given: Path | None) -> tuple[Path, str]:
    import meddx

    def train(out: Path) -> None:
        console.print(f"training a small hippocampus segmentation bundle into {out} (~3 min)")
        # Short epochs so the wall-clock budget is honoured on a busy CPU.
        meddx.train("msd-task04-hippocampus", out, epochs=20, time_budget_min=3.0,
                    progress=False, plan={"batches_per_epoch": 8, "batch_size": 2})

    return _bundle(given, [Path("runs/bench/hippocampus-seg")], train)


def cls_bundle(given: Path | None) -> tuple[Path, str]:
    import meddx

    def train(out: Path) -> None:
        console.print(f"training a small PneumoniaMNIST classifier into {out} (1 min)")
        meddx.train("pneumoniamnist", out, epochs=3, time_budget_min=1.0, progress=False)

    return _bundle(given, [Path("runs/bench/dicom-pneumoniamnist"),
                           Path("runs/demo/pneumoniamnist"),
                           Path("runs/bench/workstation-pneumoniamnist")], train)


def volume_case(work: Path, index: int) -> list[Path]:
    import nibabel as nib

    from meddx.data.catalog import locate
    from meddx.data.dicom.series import write_series

    nifti = nib.load(str(locate("msd-task04-hippocampus") / "imagesTr" /
                         "hippocampus_001.nii.gz"))
    return write_series(np.asarray(nifti.get_fdata()), nifti.affine, work / f"volume-{index}",
                        modality="MR", series_description="T1 hippocampus",
                        patient_id=f"BENCH{index:03d}")


def image_case(work: Path, index: int) -> list[Path]:
    from meddx.data.dicom.series import write_series
    from meddx.data.loading import load_dataset

    image = load_dataset("pneumoniamnist").split("test").images[index][0]
    return write_series(image.T[:, :, None], np.eye(4),  # (rows, cols) -> (x=col, y=row, z)
                        work / f"image-{index}", modality="MR",
                        series_description="chest radiograph", patient_id=f"BENCH{index:03d}")


def run_case(name: str, make_files, orthanc, listener_port: int, processor, repeats: int,
             idle: float, work: Path) -> list[dict]:
    import pydicom

    from meddx.pacs.dimse import DicomNode, DimseClient
    from meddx.pacs.listener import DicomListener

    runs = []
    done = threading.Event()
    statuses: list[dict] = []

    def on_done(folder, status):
        statuses.append(status)
        done.set()

    modality = DimseClient(DicomNode("127.0.0.1", listener_port, "MEDDX"), "MODALITY")
    pacs = DimseClient(DicomNode("127.0.0.1", orthanc.dicom_port, orthanc.aet), "MODALITY")
    with DicomListener(work / f"spool-{name}", processor, port=listener_port,
                       idle_seconds=idle, on_done=on_done):
        for index in range(repeats):
            files = make_files(work, index)
            study = str(pydicom.dcmread(files[0]).StudyInstanceUID)
            pacs.store(files)  # the PACS holds the source too, so SEG/SR references resolve
            done.clear()
            modality.store(files)
            t0 = time.perf_counter()
            stored_at = None
            while time.perf_counter() - t0 < 600:
                found = orthanc.rest("POST", "/tools/find", json={
                    "Level": "Series", "Query": {"StudyInstanceUID": study, "Modality": "SR"}})
                if found:
                    stored_at = time.perf_counter()
                    break
                time.sleep(0.02)
            done.wait(60)
            status = statuses[-1]
            if stored_at is None or status.get("state") != "done":
                raise RuntimeError(f"{name} run {index}: {status.get('state')} "
                                   f"{status.get('error')}")
            analysis = float(status["result"]["latency_ms"]) / 1000
            runs.append({
                "run": index, "cold": index == 0, "instances": len(files),
                "seconds": round(stored_at - t0, 3),
                "completion_wait_s": round(idle, 3),
                "model_s": round(analysis, 3),
                # Model loading (cold run only), DICOM SEG/SR/SC building, C-STORE to Orthanc.
                "load_build_send_s": round(float(status["finished"]) - float(status["started"])
                                           - analysis, 3),
                "objects": len(status["sent"]),
            })
            console.print(f"{name} run {index}: {runs[-1]['seconds']:.2f} s")
    return runs


def summarise(runs: list[dict]) -> dict:
    warm = [r for r in runs if not r["cold"]] or runs
    return {
        "cold_s": runs[0]["seconds"],
        "warm_median_s": round(statistics.median(r["seconds"] for r in warm), 3),
        "warm_min_s": round(min(r["seconds"] for r in warm), 3),
        "warm_max_s": round(max(r["seconds"] for r in warm), 3),
        "warm_model_median_s": round(statistics.median(r["model_s"] for r in warm), 3),
        "warm_build_send_median_s": round(
            statistics.median(r["load_build_send_s"] for r in warm), 3),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--idle", type=float, default=1.0,
                        help="series-completion wait of the listener (s)")
    parser.add_argument("--seg-bundle", type=Path)
    parser.add_argument("--cls-bundle", type=Path)
    args = parser.parse_args()

    from meddx.decision.bundle import load_bundle
    from meddx.pacs.dimse import DicomNode
    from meddx.pacs.listener import ResultSender, SeriesProcessor
    from meddx.pacs.orthanc import OrthancServer, free_port
    from meddx.pacs.routing import rules_from_dict

    seg, seg_origin = seg_bundle(args.seg_bundle)
    cls, cls_origin = cls_bundle(args.cls_bundle)
    seg_test = load_bundle(seg).metadata.get("metrics", {}).get("test", {})
    cls_test = load_bundle(cls).metadata.get("metrics", {}).get("test", {})
    work = Path(tempfile.mkdtemp(prefix="meddx-dicom-bench-"))
    listener_port = free_port()
    rules = rules_from_dict({"rules": [
        {"name": "hippocampus", "modality": "MR", "series_description": "hippocampus",
         "bundle": str(seg.resolve())},
        {"name": "chest", "series_description": "chest", "bundle": str(cls.resolve())}]},
        work, "benchmark rules")
    with OrthancServer(work / "orthanc", modalities={"MEDDX": ("127.0.0.1", listener_port)}) \
            as orthanc:
        sender = ResultSender(node=DicomNode("127.0.0.1", orthanc.dicom_port, orthanc.aet))
        processor = SeriesProcessor(rules, sender=sender)
        volume = run_case("volume", volume_case, orthanc, listener_port, processor,
                          args.repeats, args.idle, work)
        image = run_case("image", image_case, orthanc, listener_port, processor,
                         args.repeats + 1, args.idle, work)
    report = {
        "benchmark": "dicom_roundtrip",
        "what": "seconds from the last C-STORE of a series to the result SR stored in Orthanc",
        "machine": {"cpu_count": __import__("os").cpu_count(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "orthanc": "Debian orthanc 1.10 + orthanc-dicomweb, 127.0.0.1",
        "listener_completion_wait_s": args.idle,
        "volume": {"input": "MSD hippocampus_001 as 35 MR slices (35x51x35 voxels)",
                   "bundle": str(seg), "bundle_origin": seg_origin, "task": "segmentation",
                   "bundle_test_dice": seg_test.get("dice"),
                   "results": "SEG + TID 1500 SR + secondary capture",
                   **summarise(volume)},
        "image": {"input": "PneumoniaMNIST test image (28x28) as one DICOM image",
                  "bundle": str(cls), "bundle_origin": cls_origin,
                  "task": "image-classification", "bundle_test_auc": cls_test.get("auc"),
                  "results": "TID 1500 SR + secondary capture with Grad-CAM",
                  **summarise(image)},
    }
    table = Table(title="DICOM round trip: last C-STORE -> results in Orthanc (s)")
    for column in ("case", "instances", "cold", "warm median", "warm min-max", "model (warm)",
                   "SEG/SR/SC + C-STORE (warm)", "completion wait"):
        table.add_column(column)
    for case in ("volume", "image"):
        row = report[case]
        table.add_row(case, str(row["runs"][0]["instances"]), f"{row['cold_s']:.2f}",
                      f"{row['warm_median_s']:.2f}",
                      f"{row['warm_min_s']:.2f}-{row['warm_max_s']:.2f}",
                      f"{row['warm_model_median_s']:.2f}",
                      f"{row['warm_build_send_median_s']:.2f}", f"{args.idle:.1f}")
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "dicom.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(target)
    console.print(f"written {target}")


if __name__ == "__main__":
    main()
