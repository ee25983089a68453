"""Results as DICOM, with highdicom: SEG, a TID 1500 measurement report, secondary captures.

- :func:`build_segmentation`: a label map on the source series -> DICOM Segmentation (binary,
  one segment per label present, each frame referencing its source slice);
- :func:`build_measurement_report`: Comprehensive 3D SR, TID 1500 Measurement Report: per label
  its volume in mL referencing its segment in the SEG (TID 1411), and for classifiers the
  decision as a qualitative evaluation plus one probability per class (TID 1501), observed by
  the model as a device observer;
- :func:`build_secondary_capture`: the image with the mask or the heat map burned in, and a
  caption saying it is an AI result, for viewers that cannot display SEG or SR.

Codes: SNOMED CT / DCM / UCUM where the standard has one; model-specific concepts (class names)
use the private coding scheme ``99MEDDX`` (PS3.16 8.2 allows local "99" schemes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from meddx import __version__

__all__ = [
    "AlgorithmInfo",
    "build_measurement_report",
    "build_secondary_capture",
    "build_segmentation",
    "burn_overlay",
]

LOCAL_SCHEME = "99MEDDX"
_LABEL_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                           [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]],
                          dtype=np.float32)


@dataclass(frozen=True)
class AlgorithmInfo:
    """The model that made a result: bundle name and version (content hash)."""

    name: str
    version: str

    def identification(self):
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.AlgorithmIdentificationSequence(
            name=self.name[:64], family=codes.cid7162.ArtificialIntelligence,
            version=self.version[:64])

    def sr_identification(self):
        import highdicom as hd

        return hd.sr.AlgorithmIdentification(name=self.name[:64], version=self.version[:64])


def _concept(value: str, meaning: str, scheme: str = LOCAL_SCHEME):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value[:16], scheme_designator=scheme, meaning=meaning[:64])


def _series_number(source: Any, offset: int) -> int:
    try:
        return int(source.get("SeriesNumber", 0) or 0) + offset
    except (TypeError, ValueError):
        return 900 + offset


# --------------------------------------------------------------------------------------------
# SEG
# --------------------------------------------------------------------------------------------


def build_segmentation(source_images: Sequence[Any], mask: np.ndarray,
                       class_names: Sequence[str], algorithm: AlgorithmInfo):
    """A DICOM SEG of ``mask`` over the source series; None when the mask is empty.

    Args:
        source_images: the series' datasets in slice order (the order of ``mask``'s last axis),
            as :func:`~meddx.data.dicom.series.read_series` lists them in ``meta["instances"]``.
        mask: label map ``(columns, rows, slices)`` (the series layout) or ``(columns, rows)``
            for one image; 0 is background, value ``v`` is ``class_names[v]``.
        class_names: names of the labels, index = value.
        algorithm: the model, recorded in every segment.

    Returns:
        The :class:`highdicom.seg.Segmentation` (segment numbers 1..n in label order, only
        labels present), or None if no voxel is labelled.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[:, :, np.newaxis]
    frames = np.ascontiguousarray(mask.transpose(2, 1, 0))  # -> (slices, rows, columns)
    if frames.shape[0] != len(source_images):
        raise ValueError(f"mask has {frames.shape[0]} slice(s) but {len(source_images)} source "
                         "image(s) were given")
    present = [int(v) for v in np.unique(frames) if v > 0]
    if not present:
        return None
    # Segment numbers must be 1..n without gaps: renumber the labels that occur.
    labelmap = np.zeros(frames.shape, dtype=np.uint8)
    descriptions = []
    category = _concept("91723000", "Anatomical Structure", "SCT")
    for number, value in enumerate(present, start=1):
        labelmap[frames == value] = number
        name = class_names[value] if value < len(class_names) else f"label {value}"
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64],
            segmented_property_category=category,
            segmented_property_type=_concept(f"MDXL{value}", name),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm.identification(),
            tracking_uid=generate_uid(), tracking_id=f"{name} ({algorithm.name})"[:64]))
    first = source_images[0]
    return hd.seg.Segmentation(
        source_images=list(source_images), pixel_array=labelmap,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=_series_number(first, 900), sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="meddx", manufacturer_model_name=algorithm.name[:64],
        software_versions=__version__, device_serial_number=algorithm.version[:64],
        content_description=f"AI segmentation by {algorithm.name}"[:64],
        content_label="AI_SEG", omit_empty_frames=True)


# --------------------------------------------------------------------------------------------
# SR (TID 1500)
# --------------------------------------------------------------------------------------------


def build_measurement_report(source_images: Sequence[Any], algorithm: AlgorithmInfo, *,
                             volumes_ml: dict[str, float] | None = None,
                             segmentation: Any = None,
                             class_names: Sequence[str] = (),
                             classification: dict[str, Any] | None = None):
    """A Comprehensive 3D SR holding a TID 1500 Measurement Report of a model's result.

    Args:
        source_images: the analysed instances (put in the evidence and the image library).
        algorithm: the model (device observer and algorithm identification).
        volumes_ml: label name -> volume in mL (segmentation); labels found in ``segmentation``
            reference their segment (TID 1411), the others are plain measurements (TID 1501).
        segmentation: the SEG built from the same result, or None.
        class_names: the segmentation's label names, index = label value (to find segments).
        classification: a classifier's ``predict_file`` result (``decision``,
            ``probabilities``, optional ``uncertainty``).

    Returns:
        The :class:`highdicom.sr.Comprehensive3DSR`.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=algorithm.name[:64], manufacturer_name="meddx",
            model_name=algorithm.version[:64]))
    context = hd.sr.ObservationContext(observer_device_context=observer)
    groups: list[Any] = []
    volume_code = _concept("118565006", "Volume", "SCT")
    millilitre = _concept("ml", "milliliter", "UCUM")
    segment_numbers: dict[str, int] = {}
    if segmentation is not None:
        for item in segmentation.SegmentSequence:
            segment_numbers[str(item.SegmentLabel)] = int(item.SegmentNumber)
    for name, volume in (volumes_ml or {}).items():
        measurement = hd.sr.Measurement(name=volume_code, value=float(volume), unit=millilitre,
                                        algorithm_id=algorithm.sr_identification())
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{name}"[:64])
        finding = _concept(f"MDXL{list(class_names).index(name)}" if name in class_names
                           else "MDXL", name)
        number = segment_numbers.get(name[:64])
        if number is not None:
            referenced = hd.sr.ReferencedSegment(
                sop_class_uid=segmentation.SOPClassUID,
                sop_instance_uid=segmentation.SOPInstanceUID, segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(
                    str(source_images[0].SeriesInstanceUID)))
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, referenced_segment=referenced,
                finding_type=finding, measurements=[measurement]))
        else:  # an empty label has no segment to point at: 0 mL still belongs in the report
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, finding_type=finding, measurements=[measurement]))
    if classification is not None:
        probabilities = classification.get("probabilities", {})
        names = list(probabilities) or list(class_names)
        decision = str(classification.get("decision", ""))
        index = names.index(decision) if decision in names else 0
        measurements = [hd.sr.Measurement(
            name=_concept(f"MDXP{i}", f"Probability of {cls}"), value=float(p),
            unit=_concept("1", "no units", "UCUM"), algorithm_id=algorithm.sr_identification())
            for i, (cls, p) in enumerate(probabilities.items())]
        if classification.get("uncertainty") is not None:
            measurements.append(hd.sr.Measurement(
                name=_concept("MDXU", "Normalized predictive entropy"),
                value=float(classification["uncertainty"]),
                unit=_concept("1", "no units", "UCUM"),
                algorithm_id=algorithm.sr_identification()))
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(),
                                                         identifier="AI classification"),
            finding_type=_concept("MDXCLS", "AI classification"),
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                name=_concept("439401001", "Diagnosis", "SCT"),
                value=_concept(f"MDXC{index}", decision or "unknown"))],
            measurements=measurements,
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)
                           for ds in source_images[:1]]))
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=_concept("363679005", "Imaging procedure", "SCT"),
        imaging_measurements=groups, referenced_images=list(source_images))
    evidence = list(source_images) + ([segmentation] if segmentation is not None else [])
    first = source_images[0]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(),
        series_number=_series_number(first, 901), sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="meddx", is_complete=True, is_final=False,
        is_verified=False)
    sr.SeriesDescription = f"AI report: {algorithm.name}"[:64]
    return sr


# --------------------------------------------------------------------------------------------
# Secondary capture with the result burned in
# --------------------------------------------------------------------------------------------


def _grey(image: np.ndarray, window: Any = None) -> np.ndarray:
    """``[0, 1]`` grey levels: the CT window when given, else the 1-99th percentiles."""
    from meddx.data.dicom.windowing import apply_window

    if window is not None:
        return apply_window(image, window)
    low, high = np.percentile(image, [1, 99])
    if high <= low:
        high = low + 1.0
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def burn_overlay(image: np.ndarray, *, mask: np.ndarray | None = None,
                 heat: np.ndarray | None = None, caption: str = "", window: Any = None,
                 min_size: int = 384) -> np.ndarray:
    """RGB ``uint8`` ``(rows, columns, 3)``: the image with a label mask or a heat map on top.

    Args:
        image: grey image ``(rows, columns)`` in its own units (HU for CT).
        mask: label map of the same shape (colours per label, 45% opacity), or
        heat: relevance map (any shape; resized), drawn with a jet colour map where it is high.
        caption: text burned into a band at the bottom.
        window: CT window preset or ``(center, width)``; default percentiles.
        min_size: small images are enlarged (nearest neighbour) so the caption stays legible.
    """
    from matplotlib import colormaps
    from PIL import Image as PILImage
    from PIL import ImageDraw

    grey = _grey(np.asarray(image, dtype=np.float32), window)
    rgb = np.repeat(grey[..., None], 3, axis=-1) * 255.0
    if mask is not None:
        mask = np.asarray(mask)
        for value in (int(v) for v in np.unique(mask) if v > 0):
            colour = _LABEL_COLOURS[(value - 1) % len(_LABEL_COLOURS)]
            where = mask == value
            rgb[where] = 0.55 * rgb[where] + 0.45 * colour
    if heat is not None:
        heat = np.asarray(heat, dtype=np.float32)
        if heat.shape != grey.shape:
            heat = np.asarray(PILImage.fromarray(heat).resize(
                (grey.shape[1], grey.shape[0]), PILImage.BILINEAR))
        span = float(heat.max() - heat.min()) or 1.0
        heat = (heat - heat.min()) / span
        colours = colormaps["jet"](heat)[..., :3] * 255.0
        alpha = 0.5 * heat[..., None]
        rgb = (1 - alpha) * rgb + alpha * colours
    picture = PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    scale = max(1, int(np.ceil(min_size / max(grey.shape))))
    if scale > 1:
        picture = picture.resize((grey.shape[1] * scale, grey.shape[0] * scale),
                                 PILImage.NEAREST)
    if caption:
        band = 14 * (1 + caption.count("\n"))
        canvas = PILImage.new("RGB", (picture.width, picture.height + band + 6), (0, 0, 0))
        canvas.paste(picture, (0, 0))
        ImageDraw.Draw(canvas).text((4, picture.height + 3), caption, fill=(255, 255, 0))
        picture = canvas
    return np.asarray(picture, dtype=np.uint8)


def _patient_orientation(ds: Any) -> tuple[str, str]:
    """Anatomical directions of the rows and columns (from the image orientation)."""
    orientation = ds.get("ImageOrientationPatient")
    if orientation is not None and len(orientation) == 6:
        letters = (("L", "R"), ("P", "A"), ("H", "F"))  # + and - of LPS x, y, z
        result = []
        for cosines in (orientation[:3], orientation[3:]):
            axis = int(np.argmax(np.abs(cosines)))
            result.append(letters[axis][0 if float(cosines[axis]) > 0 else 1])
        return result[0], result[1]
    given = ds.get("PatientOrientation")
    if given is not None and len(given) == 2 and all(given):
        return str(given[0]), str(given[1])
    return "L", "F"  # frontal radiograph convention when the source does not say


def build_secondary_capture(source: Any, rgb: np.ndarray, algorithm: AlgorithmInfo,
                            series_uid: str | None = None, instance_number: int = 1):
    """A Secondary Capture image (RGB) of a burned-in result, in the source's study."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB, bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid or generate_uid(),
        series_number=_series_number(source, 902), sop_instance_uid=generate_uid(),
        instance_number=instance_number, manufacturer="meddx",
        patient_orientation=_patient_orientation(source),
        transfer_syntax_uid="1.2.840.10008.1.2.1")
    sc.SeriesDescription = f"AI overlay: {algorithm.name}"[:64]
    sc.ImageComments = "AI result with overlay burned in; not for primary diagnosis"
    sc.BurnedInAnnotation = "YES"
    return sc
