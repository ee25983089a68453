"""DICOM in: series folders as oriented volumes, codecs, CT windows, de-identification.

- :mod:`~meddx.data.dicom.series`: a folder of slices (or one multi-frame file) -> one
  :class:`~meddx.data.images.Image` with spacing and a NIfTI (RAS) affine; inconsistent series
  are refused with the reason.
- :mod:`~meddx.data.dicom.codecs`: which compressed transfer syntaxes can be decoded here.
- :mod:`~meddx.data.dicom.windowing`: CT window presets (brain, lung, bone...).
- :mod:`~meddx.data.dicom.deidentify`: PS3.15 Annex E Basic Application Level Confidentiality
  Profile, with its action table as data in :mod:`~meddx.data.dicom.annex_e`.
"""
