"""User administration (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from meddx.safeguards import audit
from meddx.workstation.api.deps import Admin, ClientDep, SessionDep
from meddx.workstation.api.schemas import UserCreate, UserPublic, UserUpdate
from meddx.workstation.services import users

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserPublic])
def list_users(admin: Admin, session: SessionDep) -> list[UserPublic]:
    return [UserPublic.model_validate(user) for user in users.list_users(session)]


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, admin: Admin, session: SessionDep,
                client: ClientDep) -> UserPublic:
    user = users.create_user(session, body.username, body.password, body.role, body.full_name)
    audit.record(session, "user_create", admin, target_type="user", target_id=user.username,
                 detail={"role": user.role}, client=client)
    return UserPublic.model_validate(user)


@router.patch("/{username}", response_model=UserPublic)
def update_user(username: str, body: UserUpdate, admin: Admin, session: SessionDep,
                client: ClientDep) -> UserPublic:
    user = users.get_user(session, username)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}")
    if user.id == admin.id and (body.active is False or body.role not in (None, "admin")):
        raise HTTPException(status.HTTP_409_CONFLICT, "admins cannot demote or disable themselves")
    changes = body.model_dump(exclude_none=True)
    for key, value in changes.items():
        setattr(user, key, value)
    audit.record(session, "user_update", admin, target_type="user", target_id=username,
                 detail=changes, client=client)
    return UserPublic.model_validate(user)
