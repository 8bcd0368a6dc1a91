"""Beyond Teco-RAG: the files of a knowledge base (status, errors, chunks, delete, retry), the asynchronous upload,
and a PDF page rendered with a cited passage highlighted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import FileNotInKnowledgeBase, InputError
from ...ingest.pipeline import SourceDocument
from ...rag import RAG, validate_name
from ...store.catalog import Job
from ..auth import Caller
from ..deps import Rag, State
from ..errors import OriginalNotKept
from ..ingest_jobs import keep_originals
from ..pdf_pages import render_page
from ..schemas import ChunkInfo, Envelope, FileInfo, JobInfo
from ..uploads import read_uploads, splitter_overrides

router = APIRouter(prefix="/knowledge_bases/{kb}/files", tags=["文件"])


@router.get("", response_model=Envelope[list[FileInfo]], summary="知识库中的文件及其状态")
def list_files(kb: str, rag: Rag, caller: Caller) -> Envelope[list[FileInfo]]:
    caller.check_read(kb)
    rag.get_kb(kb)
    return Envelope(data=[FileInfo.of(record) for record in rag.list_files(kb)])


@router.post("", status_code=202, response_model=Envelope[JobInfo],
             summary="异步上传：立即返回任务，后台索引（进度见 GET /jobs/{id}）")
async def upload_files(
    kb: str,
    state: State,
    caller: Caller,
    files: Annotated[list[UploadFile], File(description="one or more files")],
    override: Annotated[bool, Form()] = True,
    chunk_size: Annotated[int | None, Form()] = None,
    chunk_overlap: Annotated[int | None, Form()] = None,
    zh_title_enhance: Annotated[bool | None, Form()] = None,
) -> JSONResponse:
    validate_name(kb)
    caller.check_write(kb)
    await run_in_threadpool(state.rag.get_kb, kb)
    splitter = splitter_overrides(state.settings.text_splitter, chunk_size, chunk_overlap, zh_title_enhance)
    uploads = await read_uploads(files, state.limits)
    await run_in_threadpool(keep_originals, state.rag, kb, uploads.documents, override=override)
    job = await run_in_threadpool(state.jobs.submit, kb, uploads.documents, override=override, splitter=splitter,
                                  rejected=uploads.rejected)
    return accepted(job)


def accepted(job: Job) -> JSONResponse:
    body = Envelope(code=202, msg="accepted", data=JobInfo.of(job))
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": f"/jobs/{job.id}"})


def original_of(rag: RAG, kb: str, file_name: str) -> bytes:
    """The uploaded bytes of a file of the KB, kept in the catalog (see keep_originals)."""
    name = rag.get_kb(kb).name
    if rag.catalog.get_file(name, file_name) is None:
        raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {file_name}")
    data = rag.catalog.get_original(name, file_name)
    if data is None:
        raise OriginalNotKept(f"the server keeps no copy of {file_name} (it was not uploaded through the API): "
                              f"upload it again")
    return data


# The routes below end in a fixed word after the file name, so they come before the catch-all file routes.

@router.get("/{file_name:path}/chunks", response_model=Envelope[list[ChunkInfo]], summary="文件的切分片段")
def file_chunks(kb: str, file_name: str, rag: Rag, caller: Caller) -> Envelope[list[ChunkInfo]]:
    caller.check_read(kb)
    return Envelope(data=[ChunkInfo.of(chunk) for chunk in rag.file_chunks(kb, file_name)])


@router.post("/{file_name:path}/retry", status_code=202, response_model=Envelope[JobInfo],
             summary="重新索引一个文件（例如失败的文件），使用服务器保存的原文件")
async def retry_file(kb: str, file_name: str, state: State, caller: Caller) -> JSONResponse:
    caller.check_write(kb)
    data = await run_in_threadpool(original_of, state.rag, kb, file_name)
    job = await run_in_threadpool(state.jobs.submit, kb, [SourceDocument.from_bytes(file_name, data)])
    return accepted(job)


@router.get("/{file_name:path}/pages/{page}", summary="PDF 页面图片（PNG），可高亮一段引用原文",
            responses={200: {"content": {"image/png": {}}}}, response_class=Response)
def pdf_page(kb: str, file_name: str, page: int, rag: Rag, caller: Caller,
             highlight: Annotated[str, Query(max_length=8000, description="passage to mark on the page")] = ""
             ) -> Response:
    caller.check_read(kb)
    if not file_name.lower().endswith(".pdf"):
        raise InputError(f"pages can only be shown for PDF files, not {file_name}")
    png = render_page(original_of(rag, kb, file_name), file_name, page, highlight)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{file_name:path}", response_model=Envelope[FileInfo], summary="一个文件的状态与错误")
def get_file(kb: str, file_name: str, rag: Rag, caller: Caller) -> Envelope[FileInfo]:
    caller.check_read(kb)
    rag.get_kb(kb)
    for record in rag.list_files(kb):
        if record.name == file_name:
            return Envelope(data=FileInfo.of(record))
    raise FileNotInKnowledgeBase(f"file not in knowledge base {kb}: {file_name}")


@router.delete("/{file_name:path}", response_model=Envelope[None], summary="从知识库删除文件")
def delete_file(kb: str, file_name: str, rag: Rag, caller: Caller) -> Envelope[None]:
    caller.check_write(kb)
    rag.delete_file(kb, file_name)
    return Envelope(msg=f"已删除 {file_name}")
