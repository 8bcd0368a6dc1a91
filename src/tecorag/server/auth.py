"""API keys.

Global keys: `server.api_keys` (APP_SERVER_API_KEYS, comma-separated) and/or `server.api_keys_file` (one key per
line, `#` comments). A global key may do everything.

Scoped keys: created with `tecorag keys create --kb NAME [--kb NAME...] [--read-only]`, kept (hashed) in the
catalog. A scoped key sees only its knowledge bases: any other one answers exactly as a knowledge base that
does not exist (404), lists leave them out, and their jobs are not found. A read-only key that tries to change
one of its knowledge bases gets 403.

No key of either kind configured means the API is open. A key is accepted from `Authorization: Bearer <key>`
(what OpenAI clients send) or `X-API-Key: <key>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from ..config import ServerSettings
from ..errors import ConfigError, Forbidden, KnowledgeBaseNotFound, Unauthorized
from ..rag import kb_name_key
from ..store.catalog import ApiKey

T = TypeVar("T")


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


@dataclass(frozen=True)
class Access:
    """What the caller of one request may do: every knowledge base (`kbs` None) or the named ones, read or write."""

    kbs: frozenset[str] | None        # kb_name_key of each allowed knowledge base
    can_write: bool
    authenticated: bool               # a valid key was presented (False: the API is open)

    @classmethod
    def of_key(cls, key: ApiKey) -> Access:
        return cls(kbs=frozenset(kb_name_key(name) for name in key.knowledge_bases), can_write=key.can_write,
                   authenticated=True)

    @property
    def is_full(self) -> bool:
        return self.kbs is None and self.can_write

    def can_read(self, kb: str) -> bool:
        return self.kbs is None or kb_name_key(kb) in self.kbs

    def check_read(self, kb: str) -> None:
        """A knowledge base outside the key's scope is answered as one that does not exist."""
        if not self.can_read(kb):
            raise KnowledgeBaseNotFound(f"knowledge base not found: {kb}")

    def check_write(self, kb: str) -> None:
        self.check_read(kb)
        if not self.can_write:
            raise Forbidden(f"this API key is read-only: it cannot change knowledge base {kb}")

    def visible(self, items: Iterable[T], name_of=lambda item: item.name) -> list[T]:
        return [item for item in items if self.can_read(name_of(item))]


OPEN_ACCESS = Access(kbs=None, can_write=True, authenticated=False)
GLOBAL_KEY_ACCESS = Access(kbs=None, can_write=True, authenticated=True)


class ApiKeyGuard:
    """A FastAPI dependency; routers that need a key are included with `dependencies=[Depends(guard)]`.
    The Access it grants is kept on `request.state.access` for the routes (`Caller`)."""

    def __init__(self, keys: frozenset[str]):
        self.keys = keys

    def required(self, request: Request) -> bool:
        return bool(self.keys) or _catalog(request).has_active_api_keys()

    def access(self, request: Request) -> Access | None:
        """The caller's access, or None when a key is required and none valid was presented."""
        key = presented_key(request)
        if key is not None:
            # Compare against every global key in constant time so the reply time does not hint at a prefix.
            matches = [hmac.compare_digest(key.encode("utf-8", "replace"), known.encode("utf-8"))
                       for known in self.keys]
            if any(matches):
                return GLOBAL_KEY_ACCESS
            scoped = _catalog(request).find_api_key(key)
            if scoped is not None:
                return Access.of_key(scoped)
        return None if self.required(request) else OPEN_ACCESS

    def __call__(self, request: Request) -> Access:
        cached = getattr(request.state, "access", None)
        if cached is not None:
            return cached
        access = self.access(request)
        if access is None:
            if presented_key(request) is None:
                raise Unauthorized("API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            raise Unauthorized("invalid API key")
        request.state.access = access
        return access


def _catalog(request: Request):
    return request.app.state.tecorag.rag.catalog


def caller_access(request: Request) -> Access:
    return request.app.state.api_key_guard(request)


Caller = Annotated[Access, Depends(caller_access)]
