"""PACS: talk to a picture archive over DIMSE and DICOMweb, receive studies, send results back.

- :mod:`~meddx.pacs.dimse`: C-ECHO, C-FIND, C-MOVE, C-GET, C-STORE (pynetdicom);
- :mod:`~meddx.pacs.dicomweb`: QIDO-RS, WADO-RS, STOW-RS (dicomweb-client);
- :mod:`~meddx.pacs.results`: results as DICOM SEG, TID 1500 SR and secondary capture;
- :mod:`~meddx.pacs.listener`: ``meddx dicom listen``: a C-STORE receiver that stores every
  study first, runs the routed model when a series is complete and sends the results;
- :mod:`~meddx.pacs.routing`: routing rules (modality, body part, description -> bundle);
- :mod:`~meddx.pacs.orthanc`: a local Orthanc server (tests, benchmark, demos).

Every network call retries with exponential back-off (:mod:`~meddx.pacs.retry`) and ends in a
:class:`~meddx.pacs.errors.PacsError` naming the PACS and what it answered.
"""
