"""Patients: pseudonyms, encrypted identifying fields, look-up by record number."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from meddx.safeguards.encryption import FieldCipher, new_pseudonym
from meddx.workstation.db.models import Patient


def find_or_create(session: Session, cipher: FieldCipher, mrn: str | None = None,
                   name: str | None = None, birth_date: str | None = None,
                   flush: bool = True) -> Patient:
    """The patient with this record number (blind-index look-up), or a new pseudonymous one.

    Without a record number every call makes a new patient: nothing identifying links them.
    With ``flush=False`` a new patient is only added to the session (no id yet; written with
    the caller's next flush).
    """
    if mrn:
        index = cipher.blind_index(mrn)
        existing = session.scalar(select(Patient).where(Patient.mrn_index == index))
        if existing is not None:
            return existing
    else:
        index = None
    pseudonym = new_pseudonym()
    while session.scalar(select(Patient.id).where(Patient.pseudonym == pseudonym)) is not None:
        pseudonym = new_pseudonym()
    patient = Patient(pseudonym=pseudonym, mrn_index=index, mrn_enc=cipher.encrypt(mrn or None),
                      name_enc=cipher.encrypt(name or None),
                      birth_date_enc=cipher.encrypt(birth_date or None))
    session.add(patient)
    if flush:
        session.flush()
    return patient


def identifying_fields(patient: Patient, cipher: FieldCipher) -> dict[str, str | None]:
    """The decrypted identifying fields (only for roles allowed to see them)."""
    return {"mrn": cipher.decrypt(patient.mrn_enc), "name": cipher.decrypt(patient.name_enc),
            "birth_date": cipher.decrypt(patient.birth_date_enc)}
