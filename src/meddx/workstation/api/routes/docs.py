"""The interactive API documentation (Swagger UI), served from a pinned local copy.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN and starts it with an inline script,
which neither an offline hospital network nor this app's content security policy allows. The
assets come instead from the ``swagger-ui-py`` package (a pinned PyPI wheel that vendors Swagger
UI 5's release files, which read OpenAPI 3.1 as FastAPI writes it), and the page is a static file
that starts Swagger UI from ``/static/docs.js``. The page and its assets are public, like
``/api/openapi.json``; every call made from it still needs a bearer token with the right role
("Authorize" signs in through ``/api/auth/token``).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
# Only what the page loads: the vendored folder also holds a demo page pointing at a remote
# example API, which this server has no reason to serve.
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
          "favicon-32x32.png": "image/png"}


@lru_cache(maxsize=1)
def assets_dir() -> Path:
    """The folder of the installed Swagger UI release (``swagger_ui/static`` of swagger-ui-py).

    Found without importing the package, whose start-up code is for other web frameworks.
    """
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "API docs unavailable: the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
def docs_page() -> FileResponse:
    """Swagger UI for ``/api/openapi.json``."""
    return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    """One file of the local Swagger UI release (a fixed list: no path from the client)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no documentation asset {name!r}")
    return FileResponse(assets_dir() / name, media_type=media_type)
