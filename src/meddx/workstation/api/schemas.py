"""Request and response models, one per use, so secrets and identities never leak by accident."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime as _datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
datetime = Annotated[_datetime, AfterValidator(
    lambda value: value if value.tzinfo else value.replace(tzinfo=UTC))]

Role = Literal["clinician", "researcher", "admin"]


class Orm(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    role: Role


class UserPublic(Orm):
    id: int
    username: str
    full_name: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None = None


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]+$")
    password: str = Field(min_length=10, max_length=256)
    role: Role
    full_name: str = Field(default="", max_length=200)


class UserUpdate(BaseModel):
    role: Role | None = None
    active: bool | None = None


class FilePublic(Orm):
    id: int
    original_name: str
    media_type: str
    size_bytes: int
    sha256: str


class ModelSummary(Orm):
    id: int
    name: str
    version: str
    task: str
    class_names: list[str]
    threshold: float | None = None
    dataset: str
    active: bool
    registered_at: datetime


class ModelDetail(ModelSummary):
    metrics: dict[str, Any]
    model_card: str
    report_files: list[str] = []


class PredictionPublic(Orm):
    id: int
    model: ModelSummary
    outputs: dict[str, Any]
    decision: str
    probability: float | None = None
    uncertainty: float | None = None
    has_heat_map: bool = False
    has_explanation_figure: bool = False
    artifacts: list[str] = []
    latency_ms: float
    created_at: datetime


class StudySummary(Orm):
    id: int
    patient: str | None = None
    kind: str
    status: str
    description: str
    created_at: datetime
    latest_decision: str | None = None
    latest_uncertainty: float | None = None
    disagreements: int


class StudyDetail(StudySummary):
    files: list[FilePublic]
    predictions: list[PredictionPublic]
    viewer: dict[str, Any] | None = None


class PatientIdentity(BaseModel):
    pseudonym: str
    mrn: str | None = None
    name: str | None = None
    birth_date: str | None = None


class FeedbackCreate(BaseModel):
    prediction_id: int
    agrees: bool
    corrected_label: str | None = Field(default=None, max_length=200)
    comment: str = Field(default="", max_length=2000)


class FeedbackPublic(Orm):
    id: int
    study_id: int
    prediction_id: int
    agrees: bool
    corrected_label: str | None = None
    comment: str
    reviewer: str
    created_at: datetime


class AuditEventPublic(Orm):
    id: int
    at: datetime
    username: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    client: str


class ServerInfo(BaseModel):
    max_upload_mb: float
    accepted: dict[str, list[str]]
    demo: bool
    version: str
