"""Teco-RAG's knowledge-base routes: POST, `{"code", "msg", "data"}` replies, the same status codes."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ...errors import InputError, KnowledgeBaseNotFound
from ...rag import validate_name
from ..auth import Caller
from ..deps import Rag, State
from ..ingest_jobs import ingest_uploads, keep_originals
from ..schemas import (CreateKnowledgeBaseRequest, Envelope, FileInfo, KnowledgeBaseDetails, KnowledgeBaseWithFiles,
                       UploadResult, kb_details)
from ..uploads import read_uploads, splitter_overrides

router = APIRouter(prefix="/knowledge_base", tags=["知识库管理 (Teco-RAG)"])

NAME_BODY = {
    "requestBody": {
        "description": 'The knowledge base name: a bare string (text/plain or JSON) or {"knowledge_base_name": ...}',
        "content": {
            "text/plain": {"schema": {"type": "string"}, "example": "test_rag"},
            "application/json": {"schema": {"oneOf": [
                {"type": "string"},
                {"type": "object", "properties": {"knowledge_base_name": {"type": "string"}},
                 "required": ["knowledge_base_name"]}]}},
        },
    }
}


async def name_from_body(request: Request) -> str:
    """Teco-RAG's documented client posts the bare name as text/plain; others send JSON or a form."""
    if "knowledge_base_name" in request.query_params:
        return request.query_params["knowledge_base_name"]
    raw = (await request.body()).decode("utf-8", errors="replace").strip()
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return parse_qs(raw).get("knowledge_base_name", [""])[0]
    try:
        value = json.loads(raw) if raw else ""
    except ValueError:
        value = raw
    except RecursionError:     # JSON nested thousands deep
        raise InputError("the request body is nested too deeply to be a knowledge base name") from None
    if isinstance(value, dict):
        value = value.get("knowledge_base_name", "")
    if not isinstance(value, str):
        raise InputError('expected the knowledge base name as a string or {"knowledge_base_name": "..."}')
    return value


def checked_name(name: str) -> str:
    """Teco-RAG answers 404 for an empty name and 403 for path tricks."""
    if not name.strip():
        raise KnowledgeBaseNotFound("knowledge base name is empty")
    return validate_name(name)


@router.post("/create_knowledge_base", response_model=Envelope[None], summary="创建知识库")
def create_knowledge_base(body: CreateKnowledgeBaseRequest, rag: Rag, caller: Caller) -> Envelope[None]:
    name = checked_name(body.knowledge_base_name)
    caller.check_write(name)
    rag.create_kb(name, body.kb_info)
    warning = rag.store.capabilities.warning    # e.g. Milvus < 2.5: dense-only retrieval
    return Envelope(msg=f"已新增知识库 {body.knowledge_base_name}" + (f"；warning: {warning}" if warning else ""))


@router.post("/delete_knowledge_base", response_model=Envelope[None], summary="删除知识库", openapi_extra=NAME_BODY)
async def delete_knowledge_base(request: Request, rag: Rag, caller: Caller) -> Envelope[None]:
    name = checked_name(await name_from_body(request))
    caller.check_write(name)
    await run_in_threadpool(rag.delete_kb, name)
    return Envelope(msg="success")


@router.post("/clear_knowledge_base", response_model=Envelope[None], summary="清空知识库（保留知识库，删除全部文件）",
             openapi_extra=NAME_BODY)
async def clear_knowledge_base(request: Request, rag: Rag, caller: Caller) -> Envelope[None]:
    name = checked_name(await name_from_body(request))
    caller.check_write(name)
    await run_in_threadpool(rag.clear_kb, name)
    return Envelope(msg="success")


@router.post("/list_knowledge_bases", response_model=Envelope[list[str]], summary="获取知识库列表")
def list_knowledge_bases(rag: Rag, caller: Caller) -> Envelope[list[str]]:
    return Envelope(data=[kb.name for kb in caller.visible(rag.list_kbs())])


@router.post("/get_kb_details", response_model=Envelope[list[KnowledgeBaseWithFiles]],
             summary="获取知识库详情（不带名称：全部知识库；带名称：该知识库及其文件）", openapi_extra=NAME_BODY)
async def get_kb_details(request: Request, state: State, caller: Caller) -> Envelope[list[KnowledgeBaseWithFiles]]:
    name = await name_from_body(request)
    embed_model = state.settings.embeddings.model_name_or_path
    rag = state.rag
    if not name.strip():
        kbs = caller.visible(await run_in_threadpool(rag.list_kbs))
        return Envelope(data=[KnowledgeBaseWithFiles(**kb_details(number, kb, embed_model).model_dump())
                              for number, kb in enumerate(kbs, start=1)])
    caller.check_read(checked_name(name))
    kb = await run_in_threadpool(rag.get_kb, name)
    files = await run_in_threadpool(rag.list_files, kb.name)
    details: KnowledgeBaseDetails = kb_details(1, kb, embed_model)
    return Envelope(data=[KnowledgeBaseWithFiles(**details.model_dump(), files=[FileInfo.of(f) for f in files])])


@router.post("/upload_docs", response_model=Envelope[UploadResult], summary="上传文件到知识库并完成索引")
async def upload_docs(
    state: State,
    caller: Caller,
    files: Annotated[list[UploadFile], File(description="one or more files")],
    knowledge_base_name: Annotated[str, Form()],
    override: Annotated[bool, Form(description="replace files of the same name")] = True,
    chunk_size: Annotated[int | None, Form()] = None,
    chunk_overlap: Annotated[int | None, Form()] = None,
    zh_title_enhance: Annotated[bool | None, Form()] = None,
) -> Envelope[UploadResult]:
    """Returns once every file is indexed (or failed: `data.failed_files` says which and why), so a client
    can ask about the files right after. For large uploads use `POST /knowledge_bases/{kb}/files` (a job)."""
    rag = state.rag
    name = checked_name(knowledge_base_name)
    caller.check_write(name)
    await run_in_threadpool(rag.get_kb, name)
    splitter = splitter_overrides(state.settings.text_splitter, chunk_size, chunk_overlap, zh_title_enhance)
    uploads = await read_uploads(files, state.limits)
    await run_in_threadpool(keep_originals, rag, name, uploads.documents, override=override)
    result = await run_in_threadpool(ingest_uploads, rag, name, uploads.documents, override=override,
                                     splitter=splitter)
    result.failed_files.update(uploads.rejected)
    msg = "success" if not result.failed_files else f"{len(result.failed_files)} 个文件处理失败"
    return Envelope(msg=msg, data=result)
