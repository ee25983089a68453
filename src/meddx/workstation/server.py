"""Running the workstation: demo accounts and the uvicorn server."""

from __future__ import annotations

import contextlib
import logging
import os
import socket

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


SETTINGS_ENV = "MEDDX_WORKSTATION_SETTINGS_JSON"


def worker_app():
    """The app of one ``--workers`` process: settings from the parent, database already ready.

    uvicorn imports this by name in every worker it starts (``factory=True``); the parent
    migrated the database and registered the bundles once before, so workers do neither (N
    workers racing to migrate one database would fail or register a bundle twice).
    """
    import torch

    from meddx.workstation.app import create_app

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    torch.set_num_threads(settings.torch_threads)
    return create_app(settings, prepare=False)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning", workers: int = 1) -> None:
    """Build the app and serve it until interrupted.

    Args:
        workers: server processes. Each has its own interpreter (no shared GIL) and its own
            loaded models; they share the database, which holds everything that must be
            common (tokens, the login rate limit, feedback).
    """
    import torch
    import uvicorn

    from meddx.workstation.app import create_app, prepare_database

    # Requests run in parallel; intra-op threads on top of that contend for the same cores
    # (measured on 2 busy cores: 16 ms per 28 px prediction with 1 thread, 520 ms with 2).
    torch.set_num_threads(settings.torch_threads)
    # uvicorn's "auto" event loop and HTTP parser are uvloop and httptools, installed with meddx
    # (measured under 16 clients: about 1 of the 19 ms of server CPU per upload + review that
    # asyncio's loop and h11 took; small, and at the edge of a busy machine's noise).
    if workers <= 1:
        app = create_app(settings)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    for registered in prepare_database(settings):
        log.info("model registered: %s", registered)
    # The workers are new processes: the settings (CLI options included) travel in their
    # environment, which only this server's own child processes see.
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("meddx.workstation.server:worker_app", factory=True,
                            workers=workers, host=host, port=port, log_level=log_level,
                            access_log=False)
    sock = config.bind_socket()
    # The workers get this socket from the parent, and asyncio then leaves Nagle's algorithm on
    # for their connections: each response's body waited ~40 ms for the client's delayed ACK
    # of its headers (measured: 78 ms instead of 26 ms per upload for one client). Linux
    # passes TCP_NODELAY of the listening socket on to every accepted connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the workers stop, so do we
        Multiprocess(config, sockets=[sock]).run()
