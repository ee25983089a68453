"""JSON answers serialised in the handler's own thread.

A sync handler that returns a Pydantic object has FastAPI validate it against the route's
``response_model`` a second time and serialise it, in one more thread-pool hop after the
handler's own (measured on the upload + review path under 16 concurrent clients: about a tenth of
the server's CPU, most of it the hop's bookkeeping on the event loop). The response models are
already validated when they are built, so the hot routes return the serialised bytes instead;
``response_model`` stays on the route for the OpenAPI schema and the docs.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as a JSON response (the bytes FastAPI would send for it as response_model)."""
    return Response(model.model_dump_json(), status_code=status_code,
                    media_type="application/json")
