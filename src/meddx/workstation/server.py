"""Running the workstation: demo accounts and the uvicorn server."""

from __future__ import annotations

import logging

from sqlalchemy import select

from meddx.safeguards.passwords import hash_password
from meddx.safeguards.tokens import generate_password
from meddx.workstation.core.config import Settings
from meddx.workstation.db.models import User
from meddx.workstation.db.session import make_engine, make_sessionmaker, transaction, upgrade

log = logging.getLogger(__name__)

DEMO_USERS = (("clinician", "clinician", "Demo Clinician"),
              ("researcher", "researcher", "Demo Researcher"),
              ("admin", "admin", "Demo Administrator"))


def ensure_demo_users(settings: Settings) -> dict[str, str]:
    """Demo mode only: (re)create the demo accounts with fresh random passwords.

    Returns:
        user name -> password, to print for whoever started the demo.

    Raises:
        ValueError: called outside demo mode (there are no default passwords otherwise).
    """
    if not settings.demo:
        raise ValueError("demo accounts exist only in demo mode")
    engine = make_engine(settings.db_url)
    upgrade(engine)
    credentials = {}
    with transaction(make_sessionmaker(engine)) as session:
        for username, role, full_name in DEMO_USERS:
            password = generate_password()
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                session.add(User(username=username, role=role, full_name=full_name,
                                 password_hash=hash_password(password), active=True))
            else:
                user.password_hash, user.role, user.active = hash_password(password), role, True
            credentials[username] = password
    engine.dispose()
    return credentials


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning") -> None:
    """Build the app and serve it until interrupted."""
    import torch
    import uvicorn

    from meddx.workstation.app import create_app

    # Requests run in parallel; intra-op threads on top of that contend for the same cores
    # (measured on 2 busy cores: 16 ms per 28 px prediction with 1 thread, 520 ms with 2).
    torch.set_num_threads(settings.torch_threads)
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
