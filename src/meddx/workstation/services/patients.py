"""Patients: pseudonyms, encrypted identifying fields, look-up by record number."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from meddx.safeguards.encryption import FieldCipher, new_pseudonym
from meddx.workstation.db.models import Patient
from meddx.workstation.db.session import insert_rows

# The upload path's statements, built once (building one costs about as much as running it).
_TABLE = Patient.__table__
_BY_INDEX = select(_TABLE.c.id, _TABLE.c.pseudonym).where(_TABLE.c.mrn_index == bindparam("index"))
_PSEUDONYM_TAKEN = select(_TABLE.c.id).where(_TABLE.c.pseudonym == bindparam("pseudonym"))


def find_or_create(session: Session, cipher: FieldCipher, mrn: str | None = None,
                   name: str | None = None, birth_date: str | None = None) -> Patient:
    """The patient with this record number (blind-index look-up), or a new pseudonymous one.

    Without a record number every call makes a new patient: nothing identifying links them.
    """
    index = cipher.blind_index(mrn) if mrn else None
    if index is not None:
        existing = session.scalar(select(Patient).where(Patient.mrn_index == index))
        if existing is not None:
            return existing
    patient = Patient(**_new_patient(session, cipher, index, mrn, name, birth_date))
    session.add(patient)
    session.flush()
    return patient


def find_or_insert(session: Session, cipher: FieldCipher, mrn: str | None = None,
                   name: str | None = None, birth_date: str | None = None) -> tuple[int, str]:
    """:func:`find_or_create` without the ORM: ``(id, pseudonym)`` of the patient.

    A new patient is written at once by one INSERT in the session's transaction (nothing is
    loaded into the session): the upload path's cheaper way to the same row.
    """
    index = cipher.blind_index(mrn) if mrn else None
    if index is not None:
        row = session.execute(_BY_INDEX, {"index": index}).first()
        if row is not None:
            return row.id, row.pseudonym
    values = _new_patient(session, cipher, index, mrn, name, birth_date)
    [patient_id] = insert_rows(session, Patient(**values))
    return patient_id, values["pseudonym"]


def _new_patient(session: Session, cipher: FieldCipher, index: str | None, mrn: str | None,
                 name: str | None, birth_date: str | None) -> dict[str, str | None]:
    """The column values of a new patient: an unused pseudonym and the encrypted fields."""
    pseudonym = new_pseudonym()
    while session.scalar(_PSEUDONYM_TAKEN, {"pseudonym": pseudonym}) is not None:
        pseudonym = new_pseudonym()
    return {"pseudonym": pseudonym, "mrn_index": index, "mrn_enc": cipher.encrypt(mrn or None),
            "name_enc": cipher.encrypt(name or None),
            "birth_date_enc": cipher.encrypt(birth_date or None)}


def identifying_fields(patient: Patient, cipher: FieldCipher) -> dict[str, str | None]:
    """The decrypted identifying fields (only for roles allowed to see them)."""
    return {"mrn": cipher.decrypt(patient.mrn_enc), "name": cipher.decrypt(patient.name_enc),
            "birth_date": cipher.decrypt(patient.birth_date_enc)}
