"""Background jobs (asynchronous uploads). Jobs live in the catalog, so any server process can answer."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import Caller
from ..deps import Rag
from ..errors import JobNotFound
from ..schemas import Envelope, JobInfo

router = APIRouter(prefix="/jobs", tags=["任务"])


@router.get("/{job_id}", response_model=Envelope[JobInfo], summary="任务状态与进度")
def get_job(job_id: str, rag: Rag, caller: Caller) -> Envelope[JobInfo]:
    job = rag.get_job(job_id)
    if job is None or not caller.can_read(job.kb):      # another knowledge base's job is not there for this key
        raise JobNotFound(f"no such job: {job_id}")
    return Envelope(data=JobInfo.of(job))
