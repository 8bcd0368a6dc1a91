"""Beyond Teco-RAG: the files of a knowledge base (status, errors, delete) and the asynchronous upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...errors import FileNotInKnowledgeBase
from ...rag import validate_name
from ..deps import Rag, State
from ..schemas import Envelope, FileInfo, JobInfo
from ..uploads import read_uploads, splitter_overrides

router = APIRouter(prefix="/knowledge_bases/{kb}/files", tags=["文件"])


@router.get("", response_model=Envelope[list[FileInfo]], summary="知识库中的文件及其状态")
def list_files(kb: str, rag: Rag) -> Envelope[list[FileInfo]]:
    rag.get_kb(kb)
    return Envelope(data=[FileInfo.of(record) for record in rag.list_files(kb)])


@router.post("", status_code=202, response_model=Envelope[JobInfo],
             summary="异步上传：立即返回任务，后台索引（进度见 GET /jobs/{id}）")
async def upload_files(
    kb: str,
    state: State,
    files: Annotated[list[UploadFile], File(description="one or more files")],
    override: Annotated[bool, Form()] = True,
    chunk_size: Annotated[int | None, Form()] = None,
    chunk_overlap: Annotated[int | None, Form()] = None,
    zh_title_enhance: Annotated[bool | None, Form()] = None,
) -> JSONResponse:
    validate_name(kb)
    await run_in_threadpool(state.rag.get_kb, kb)
    splitter = splitter_overrides(state.settings.text_splitter, chunk_size, chunk_overlap, zh_title_enhance)
    documents = await read_uploads(files, state.limits)
    job = await run_in_threadpool(state.jobs.submit, kb, documents, override=override, splitter=splitter)
    body = Envelope(code=202, msg="accepted", data=JobInfo.of(job))
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": f"/jobs/{job.id}"})


@router.get("/{file_name:path}", response_model=Envelope[FileInfo], summary="一个文件的状态与错误")
def get_file(kb: str, file_name: str, rag: Rag) -> Envelope[FileInfo]:
    rag.get_kb(kb)
    for record in rag.list_files(kb):
        if record.name == file_name:
            return Envelope(data=FileInfo.of(record))
    raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {file_name}")


@router.delete("/{file_name:path}", response_model=Envelope[None], summary="从知识库删除文件")
def delete_file(kb: str, file_name: str, rag: Rag) -> Envelope[None]:
    rag.delete_file(kb, file_name)
    return Envelope(msg=f"已删除 {file_name}")
