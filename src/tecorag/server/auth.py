"""Optional API keys: `server.api_keys` (APP_SERVER_API_KEYS, comma-separated) and/or `server.api_keys_file`
(one key per line, `#` comments). No keys configured means the API is open.

A key is accepted from `Authorization: Bearer <key>` (what OpenAI clients send) or `X-API-Key: <key>`.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from fastapi import Request

from ..config import ServerSettings
from ..errors import ConfigError, Unauthorized


def load_api_keys(settings: ServerSettings) -> frozenset[str]:
    keys = {key.strip() for key in settings.api_keys if key.strip()}
    if settings.api_keys_file:
        path = Path(settings.api_keys_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read server.api_keys_file {path}: {exc}") from exc
        keys.update(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return frozenset(keys)


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key") or None


class ApiKeyGuard:
    """A FastAPI dependency; routers that need a key are included with `dependencies=[Depends(guard)]`."""

    def __init__(self, keys: frozenset[str]):
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def __call__(self, request: Request) -> None:
        if not self.keys:
            return
        key = presented_key(request)
        if key is None:
            raise Unauthorized("API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        # Compare against every key in constant time so the reply time does not hint at a prefix.
        matches = [hmac.compare_digest(key.encode("utf-8"), known.encode("utf-8")) for known in self.keys]
        if not any(matches):
            raise Unauthorized("invalid API key")
