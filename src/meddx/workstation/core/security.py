"""Security primitives of the server: the bearer scheme, who may do what, protective middleware.

Roles and their rights (enforced by the dependencies in :mod:`meddx.workstation.api.deps`):

* ``clinician``: read the worklist and studies, upload, run models, review findings, see the
  identifying fields of their patients;
* ``researcher``: read pseudonymous studies, findings, feedback and models; no uploads, no
  reviews, no identifying fields;
* ``admin``: everything, plus users and the audit trail.
"""

from __future__ import annotations

import json

from fastapi.security import OAuth2PasswordBearer

READ = ("clinician", "researcher", "admin")
CLINICAL = ("clinician", "admin")
ADMIN = ("admin",)

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)

# No CDN, no inline script: the UI is served by the app itself.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                           "script-src 'self'; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeadersMiddleware:
    """Adds CSP and related headers to every response (pure ASGI: no buffering)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in SECURITY_HEADERS if header[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413 before the app reads them all.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted as
    it arrives. The margin covers the multipart framing around the file.
    """

    def __init__(self, app, limit: int, margin: int = 256 * 1024):
        self.app = app
        self.limit = limit + margin

    async def _refuse(self, send):
        body = json.dumps({"detail": f"request body larger than the upload limit of "
                                     f"{(self.limit - 256 * 1024) / 2**20:.1f} MB "
                                     "(MEDDX_MAX_UPLOAD_MB)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)
