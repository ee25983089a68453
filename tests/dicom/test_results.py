"""Results as DICOM: SEG, TID 1500 SR and secondary capture, stored in Orthanc and read back."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    Comprehensive3DSRStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from meddx.data.dicom.series import read_series, write_series
from meddx.pacs.dicomweb import DicomWebClient
from meddx.pacs.results import (
    AlgorithmInfo,
    build_measurement_report,
    build_secondary_capture,
    build_segmentation,
    burn_overlay,
)

NAMES = ["background", "anterior", "posterior"]
ALGORITHM = AlgorithmInfo("hippocampus-test", "0123456789ab")


@pytest.fixture
def hippo_series(hippocampus, tmp_path):
    """Case 001 as a DICOM series, its label map, and the source datasets in slice order."""
    image = nib.load(str(hippocampus / "imagesTr" / "hippocampus_001.nii.gz"))
    label = np.asarray(nib.load(str(hippocampus / "labelsTr" / "hippocampus_001.nii.gz"))
                       .dataobj).astype(np.uint8)
    write_series(np.asarray(image.get_fdata()), image.affine, tmp_path / "series",
                 series_description="T1 hippocampus")
    volume = read_series(tmp_path / "series")
    sources = [pydicom.dcmread(p) for p in volume.meta["instances"]]
    return volume, label, sources


def test_seg_sr_sc_round_trip_through_orthanc(clean_orthanc, hippo_series, tmp_path):
    volume, label, sources = hippo_series
    web = DicomWebClient(clean_orthanc.dicomweb_url)
    web.store(sources)
    seg = build_segmentation(sources, label, NAMES, ALGORITHM)
    volumes = {name: float((label == value).sum()) / 1000.0  # 1 mm voxels: mL
               for value, name in enumerate(NAMES) if value}
    sr = build_measurement_report(sources, ALGORITHM, volumes_ml=volumes, segmentation=seg,
                                  class_names=NAMES)
    k = int(np.argmax((label > 0).sum(axis=(0, 1))))
    rgb = burn_overlay(volume.array[0][:, :, k].T, mask=label[:, :, k].T, caption="test")
    sc = build_secondary_capture(sources[k], rgb, ALGORITHM)
    assert web.store([seg, sr, sc]) == [seg.SOPInstanceUID, sr.SOPInstanceUID,
                                         sc.SOPInstanceUID]

    study = sources[0].StudyInstanceUID
    series = {s["00080060"]["Value"][0]: s["0020000E"]["Value"][0]
              for s in web.search_series(study)}
    assert set(series) == {"MR", "SEG", "SR", "OT"}

    # SEG: parses, references the source series, and gives back the label map.
    seg_back = hd.seg.Segmentation.from_dataset(
        web.retrieve_series(study, series["SEG"])[0])
    assert seg_back.SOPClassUID == SegmentationStorage
    assert seg_back.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    referenced = {r.ReferencedSOPInstanceUID
                  for r in seg_back.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= {ds.SOPInstanceUID for ds in sources}
    assert seg_back.get_segment_numbers() == [1, 2]
    assert [seg_back.get_segment_description(n).SegmentLabel for n in (1, 2)] == NAMES[1:]
    rebuilt = seg_back.get_volume(combine_segments=True, relabel=True)
    # The SEG's frames are the source slices: compare against the label in the same grid.
    assert int((rebuilt.array > 0).sum()) == int((label > 0).sum())

    # SR: TID 1500 with one volume per label, referencing the SEG and the source images.
    sr_back = hd.sr.srread(_to_file(web.retrieve_series(study, series["SR"])[0], tmp_path))
    assert sr_back.SOPClassUID == Comprehensive3DSRStorage
    assert sr_back.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    groups = sr_back.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 2
    found = {}
    for group in groups:
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert segment.source_series_for_segmentation.value == sources[0].SeriesInstanceUID
        measurement = group.get_measurements()[0]
        found[segment.referenced_segment_numbers[0]] = measurement.value
        assert measurement.unit.value == "ml"
    assert found == pytest.approx({1: volumes["anterior"], 2: volumes["posterior"]}, abs=1e-4)
    evidence = {ref.ReferencedSOPInstanceUID
                for study_item in sr_back.CurrentRequestedProcedureEvidenceSequence
                for series_item in study_item.ReferencedSeriesSequence
                for ref in series_item.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in evidence and sources[0].SOPInstanceUID in evidence

    # SC: RGB with the overlay burned in, in the same study, flagged as burned-in.
    sc_back = web.retrieve_series(study, series["OT"])[0]
    assert sc_back.SOPClassUID == SecondaryCaptureImageStorage
    assert sc_back.StudyInstanceUID == study and sc_back.BurnedInAnnotation == "YES"
    pixels = sc_back.pixel_array
    assert pixels.shape[-1] == 3 and (pixels[..., 0] != pixels[..., 1]).any()  # colour overlay


def test_classification_report(samples, tmp_path):
    source = pydicom.dcmread(samples / "CT_small.dcm")
    result = {"decision": "pneumonia", "probabilities": {"normal": 0.25, "pneumonia": 0.75},
              "uncertainty": 0.81}
    sr = build_measurement_report([source], ALGORITHM, classification=result)
    back = hd.sr.srread(_to_file(sr, tmp_path))
    groups = back.content.get_image_measurement_groups()
    assert len(groups) == 1
    evaluation = groups[0].get_qualitative_evaluations()[0]
    assert evaluation.name.meaning == "Diagnosis" and evaluation.value.meaning == "pneumonia"
    values = {m.name.meaning: m.value for m in groups[0].get_measurements()}
    assert values["Probability of pneumonia"] == pytest.approx(0.75)
    assert values["Normalized predictive entropy"] == pytest.approx(0.81)
    heat = np.zeros((8, 8), np.float32)
    heat[2:4, 2:4] = 1
    rgb = burn_overlay(source.pixel_array.astype(np.float32), heat=heat, caption="p=0.75")
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 384


def test_empty_mask_gives_no_seg_and_wrong_sizes_fail(hippo_series):
    _, label, sources = hippo_series
    assert build_segmentation(sources, np.zeros_like(label), NAMES, ALGORITHM) is None
    with pytest.raises(ValueError, match="source image"):
        build_segmentation(sources[:3], label, NAMES, ALGORITHM)


def _to_file(ds, tmp_path):
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
