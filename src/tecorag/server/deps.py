"""What the routers take from the app: the one RAG, the ingestion job runner, the upload limits...,
created in the app's lifespan and kept on `app.state` (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..generate.llm import LLMClient
from ..rag import RAG
from .ingest_jobs import IngestJobRunner
from .uploads import UploadLimits


@dataclass
class ServerState:
    settings: Settings
    rag: RAG
    jobs: IngestJobRunner
    limits: UploadLimits
    llm_client: LLMClient | None      # for the readiness check; None when no LLM is configured
    auth_required: bool


def server_state(request: Request) -> ServerState:
    return request.app.state.tecorag


def rag_of(request: Request) -> RAG:
    return server_state(request).rag


State = Annotated[ServerState, Depends(server_state)]
Rag = Annotated[RAG, Depends(rag_of)]
