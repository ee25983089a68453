"""Typed settings of the workstation, read from the environment by a cached factory.

Nothing is read at import: :func:`get_settings` builds the settings once on first call (tests
build their own :class:`Settings` and hand them to :func:`meddx.workstation.app.create_app`).

Environment variables (all optional unless noted):

==========================  ========================================================================
``MEDDX_DATABASE_URL``      SQLAlchemy URL; default ``sqlite:///<data root>/workstation.db``;
                            PostgreSQL as ``postgresql+psycopg://user:pw@host/db``
``MEDDX_WORKSTATION_DIR``   where uploads, explanations and the SQLite file live
                            (default ``runs/workstation``)
``MEDDX_SECRET_KEY``        key encrypting identifying fields (required outside demo mode, or
``MEDDX_SECRET_KEY_FILE``   a file holding it)
``MEDDX_BUNDLES``           model bundle folders to register, separated by ``os.pathsep``
``MEDDX_MAX_UPLOAD_MB``     upload size limit (default 50)
``MEDDX_DEMO``              ``1``: demo mode (creates demo users with printed passwords)
``MEDDX_TOKEN_TTL_MIN``     bearer-token lifetime in minutes (default 480)
``MEDDX_LOGIN_MAX_FAILURES`` / ``MEDDX_LOGIN_WINDOW_S``  login rate limit (default 5 per 300 s)
``MEDDX_TORCH_THREADS``     torch threads per prediction in the server (default 1)
``MEDDX_WORKERS``           server processes of ``meddx serve`` (default 1)
==========================  ========================================================================
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from meddx.errors import ConfigError
from meddx.safeguards.encryption import FieldCipher, generate_key

KEY_FILE = "secret.key"


class Settings(BaseModel):
    """Everything the server needs to know about its environment."""

    model_config = ConfigDict(frozen=True)

    data_root: Path = Path("runs/workstation")
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    secret_key_file: Path | None = None
    bundles: tuple[Path, ...] = ()
    max_upload_mb: float = Field(default=50.0, gt=0)
    demo: bool = False
    token_ttl_min: int = Field(default=480, gt=0)
    login_max_failures: int = Field(default=5, gt=0)
    login_window_s: float = Field(default=300.0, gt=0)
    explain: bool = True
    torch_threads: int = Field(default=1, ge=1)
    workers: int = Field(default=1, ge=1)

    @property
    def db_url(self) -> str:
        """The database URL (SQLite file under the data root unless configured)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_root / 'workstation.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        """Uploaded study files and explanation artifacts."""
        return (self.data_root / "storage").resolve()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def cipher(self) -> FieldCipher:
        """The cipher for identifying fields; demo mode creates a key file when none is set.

        Raises:
            ConfigError: no key configured outside demo mode, or an invalid key.
        """
        if self.secret_key:
            return FieldCipher(self.secret_key, "MEDDX_SECRET_KEY")
        path = self.secret_key_file or self.data_root / KEY_FILE
        if path.exists():
            return FieldCipher(path.read_text().strip(), str(path))
        if not self.demo:
            raise ConfigError(
                "MEDDX_SECRET_KEY: no key to encrypt identifying patient fields; set "
                "MEDDX_SECRET_KEY (or MEDDX_SECRET_KEY_FILE), e.g. from "
                "`meddx serve --generate-key`")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 and atomically: a half-written key would make the data unreadable.
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as fh:
            fh.write(generate_key())
        os.replace(temporary, path)
        return FieldCipher(path.read_text().strip(), str(path))


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def settings_from_env(environ: dict[str, str] | None = None, **overrides) -> Settings:
    """Settings from environment variables; keyword ``overrides`` (CLI options) win.

    Raises:
        ConfigError: a value that cannot be parsed, naming the variable.
    """
    env = os.environ if environ is None else environ
    values: dict = {}
    if env.get("MEDDX_WORKSTATION_DIR"):
        values["data_root"] = Path(env["MEDDX_WORKSTATION_DIR"])
    if env.get("MEDDX_DATABASE_URL"):
        values["database_url"] = env["MEDDX_DATABASE_URL"]
    if env.get("MEDDX_SECRET_KEY"):
        values["secret_key"] = env["MEDDX_SECRET_KEY"]
    if env.get("MEDDX_SECRET_KEY_FILE"):
        values["secret_key_file"] = Path(env["MEDDX_SECRET_KEY_FILE"])
    if env.get("MEDDX_BUNDLES"):
        values["bundles"] = tuple(Path(p) for p in env["MEDDX_BUNDLES"].split(os.pathsep) if p)
    values["demo"] = _flag(env.get("MEDDX_DEMO"))
    for variable, key, kind in (("MEDDX_MAX_UPLOAD_MB", "max_upload_mb", float),
                                ("MEDDX_TOKEN_TTL_MIN", "token_ttl_min", int),
                                ("MEDDX_LOGIN_MAX_FAILURES", "login_max_failures", int),
                                ("MEDDX_LOGIN_WINDOW_S", "login_window_s", float),
                                ("MEDDX_TORCH_THREADS", "torch_threads", int),
                                ("MEDDX_WORKERS", "workers", int)):
        if env.get(variable):
            try:
                values[key] = kind(env[variable])
            except ValueError as error:
                raise ConfigError(f"{variable}: {env[variable]!r} is not a number") from error
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValueError as error:
        raise ConfigError(f"workstation settings: {error}") from error


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built from the environment on first use."""
    return settings_from_env()
