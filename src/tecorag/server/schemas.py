"""Request and response models of the HTTP API, and the conversions from pipeline types to them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InputError
from ..rag import is_valid_unicode
from ..store.catalog import FileRecord, Job, KnowledgeBase
from ..types import Chunk, Citation, Hit, Message
from .errors import file_error_code

T = TypeVar("T")


def utc(moment: datetime) -> datetime:
    """Catalog times are UTC; SQLite hands them back without a zone, and OpenAPI's date-time needs one."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class Envelope(BaseModel, Generic[T]):
    """Every Teco-RAG style reply: the HTTP status equals `code`."""

    code: int = 200
    msg: str = "success"
    data: T | None = None


class ErrorEnvelope(BaseModel):
    """An error reply of the Teco-RAG style routes; `data` may echo what was wrong (validation problems)."""

    code: int
    msg: str
    data: Any = None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    code: str | int | None = None
    param: str | None = None


class OpenAIError(BaseModel):
    """An error reply of the `/v1/...` routes, as OpenAI clients expect it."""

    error: OpenAIErrorDetail


ERROR_DESCRIPTIONS = {
    400: "the body cannot be parsed (malformed JSON or multipart, nested too deeply)",
    401: "API key missing or invalid",
    403: "a name with path tricks or control characters, or a read-only key writing",
    404: "no such knowledge base (or not one this key may use), file or job",
    413: "request body, upload, question or history over the limits",
    422: "the request does not validate (the message names the field)",
    502: "the LLM failed",
    504: "the answer took longer than limits.request_timeout_s, or the LLM timed out",
}
REQUEST_ERRORS = (400, 401, 403, 404, 413, 422)
QUESTION_ERRORS = (*REQUEST_ERRORS, 502, 504)


def error_responses(statuses: tuple[int, ...], openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a router's routes return, with the body they really have."""
    model = OpenAIError if openai else ErrorEnvelope
    return {status: {"model": model, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


class _Lenient(BaseModel):
    """Clients written for Teco-RAG or Langchain-Chatchat send fields we do not use (model_name, temperature...).
    Numbers must be finite (`1e309` is infinity in JSON parsers) and text valid Unicode (JSON can carry an
    unpaired surrogate such as "\\ud800", which no database, tokenizer or UTF-8 reply can hold)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="after")
    def _valid_unicode(self) -> _Lenient:
        for name in type(self).model_fields:
            if not _valid_text(getattr(self, name)):
                raise ValueError(f"{name}: not valid Unicode (an unpaired surrogate such as \\ud800)")
        return self


def _valid_text(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return is_valid_unicode(value)
    if depth > 4:      # request models nest shallowly; deeper values are kept as they are and never stored
        return True
    if isinstance(value, BaseModel):
        return all(_valid_text(getattr(value, name), depth + 1) for name in type(value).model_fields)
    if isinstance(value, dict):
        return all(_valid_text(key, depth + 1) and _valid_text(item, depth + 1) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_valid_text(item, depth + 1) for item in value)
    return True


# -- knowledge bases --------------------------------------------------------------------------------------


class CreateKnowledgeBaseRequest(_Lenient):
    knowledge_base_name: str = ""
    vector_store_type: str = "milvus"
    kb_info: str = Field("", description="Free-text description of the knowledge base")


class KnowledgeBaseDetails(BaseModel):
    No: int
    kb_name: str
    kb_info: str
    vs_type: str
    embed_model: str
    file_count: int
    chunk_count: int
    create_time: datetime


class FileInfo(BaseModel):
    name: str
    status: str = Field(description="pending | indexing | indexed | failed")
    error: str | None = None
    error_code: str | None = Field(None, description="stable code of `error` (unsupported_type, corrupt, ...)")
    chunk_count: int
    size: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: FileRecord) -> FileInfo:
        return cls(name=record.name, status=record.status, error=record.error,
                   error_code=file_error_code(record.error) if record.error else None, chunk_count=record.chunk_count,
                   size=record.size, created_at=utc(record.created_at), updated_at=utc(record.updated_at))


class KnowledgeBaseWithFiles(KnowledgeBaseDetails):
    files: list[FileInfo] | None = Field(None, description="only when one knowledge base was asked for")


def kb_details(number: int, kb: KnowledgeBase, embed_model: str) -> KnowledgeBaseDetails:
    return KnowledgeBaseDetails(No=number, kb_name=kb.name, kb_info=kb.description, vs_type="milvus",
                                embed_model=embed_model, file_count=kb.file_count, chunk_count=kb.chunk_count,
                                create_time=utc(kb.created_at))


class UploadResult(BaseModel):
    failed_files: dict[str, str] = Field(default_factory=dict, description="file name -> why it failed")
    indexed_files: list[str] = Field(default_factory=list)
    skipped_files: list[str] = Field(default_factory=list,
                                     description="unchanged, or already present and override was false")
    chunks: int = 0
    seconds: float = 0.0


class JobInfo(BaseModel):
    id: str
    kb: str
    kind: str
    status: str = Field(description="queued | running | done | failed")
    total: int
    done: int
    message: str
    result: Any = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    owner: str | None = Field(default=None, description="the server (host:pid:id) running the job")
    attempts: int = Field(default=0, description="how many times a server took the job (>1: resumed after a crash)")

    @classmethod
    def of(cls, job: Job) -> JobInfo:
        return cls(id=job.id, kb=job.kb, kind=job.kind, status=job.status, total=job.total, done=job.done,
                   message=job.message, result=_with_error_codes(job.result), error=job.error,
                   created_at=utc(job.created_at), updated_at=utc(job.updated_at), owner=job.owner, attempts=job.attempts)


def _with_error_codes(result: Any) -> Any:
    """A job's result with each failed file's `error_code` next to its English `error`."""
    if not isinstance(result, dict) or not isinstance(result.get("files"), dict):
        return result
    files = {name: {**entry, "error_code": file_error_code(entry["error"]) if entry.get("error") else None}
             for name, entry in result["files"].items()}
    return {**result, "files": files}


# -- questions --------------------------------------------------------------------------------------------


class TopKFields(_Lenient):
    """Teco-RAG calls it `topk`; Chatchat clients send `top_k`, newer ones `vectorstore_top_k`/`rerank_top_k`."""

    topk: int | None = Field(None, ge=1, le=100)
    top_k: int | None = Field(None, ge=1, le=100)
    vectorstore_top_k: int | None = Field(None, ge=1, le=100)
    rerank_top_k: int | None = Field(None, ge=1, le=100)
    score_threshold: float | None = None

    def resolved_top_k(self) -> int | None:
        return self.rerank_top_k or self.topk or self.top_k or self.vectorstore_top_k


class KnowledgeBaseChatRequest(TopKFields):
    query: str = Field(min_length=1)
    knowledge_base_name: str
    history: list[Any] = Field(default_factory=list,
                               description='[["question", "answer"], ...] or [{"role": ..., "content": ...}]')
    stream: bool = True
    return_docs: bool = False


class HitTestRequest(TopKFields):
    query: str = Field(min_length=1)
    knowledge_base_name: str


class SearchRequest(_Lenient):
    query: str = Field(min_length=1)
    top_k: int | None = Field(None, ge=1, le=100)
    score_threshold: float | None = None
    mode: Literal["hybrid", "dense", "bm25"] | None = None


class TecoDoc(BaseModel):
    """A retrieved passage as Teco-RAG returns it, plus where it is in its file."""

    filename: str
    context: str
    similarity_score: float
    page: int | None = None
    heading: str = ""


class SearchHit(BaseModel):
    file: str
    page: int | None
    heading: str
    text: str
    score: float
    chunk_id: str
    position: int


def teco_doc_of_hit(hit: Hit) -> TecoDoc:
    return TecoDoc(filename=hit.chunk.file, context=hit.chunk.text, similarity_score=round(hit.score, 6),
                   page=hit.chunk.page, heading=hit.chunk.heading)


def teco_doc_of_citation(citation: Citation) -> TecoDoc:
    return TecoDoc(filename=citation.file, context=citation.text, similarity_score=round(citation.score, 6),
                   page=citation.page, heading=citation.heading)


def search_hit(hit: Hit) -> SearchHit:
    return SearchHit(file=hit.chunk.file, page=hit.chunk.page, heading=hit.chunk.heading, text=hit.chunk.text,
                     score=round(hit.score, 6), chunk_id=hit.chunk.id, position=hit.chunk.position)


class ChunkInfo(BaseModel):
    """One chunk of a file as it was indexed: `index_text` is what retrieval matches, `text` what the answerer
    reads (the larger parent passage when small-to-big splitting is on)."""

    position: int
    page: int | None
    heading: str
    index_text: str
    text: str

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkInfo:
        return cls(position=chunk.position, page=chunk.page, heading=chunk.heading, index_text=chunk.index_text,
                   text=chunk.text)


class FeedbackRequest(_Lenient):
    question: str = Field(min_length=1)
    answer: str
    rating: Literal[1, -1] = Field(description="1: helpful, -1: not helpful")
    sources: list[dict[str, Any]] = Field(default_factory=list, description="the passages shown with the answer")
    comment: str = ""


class FeedbackInfo(BaseModel):
    id: int
    kb: str
    question: str
    answer: str
    rating: int
    sources: list[dict[str, Any]]
    comment: str
    created_at: datetime


def history_messages(history: list[Any]) -> list[Message]:
    """Teco-RAG's [question, answer] pairs or Chatchat's {"role", "content"} dicts, as Messages."""
    messages: list[Message] = []
    for turn in history:
        if isinstance(turn, dict) and isinstance(turn.get("content"), str):
            messages.append(Message(role=str(turn.get("role") or "user"), content=turn["content"]))
        elif isinstance(turn, (list, tuple)) and len(turn) == 2 and all(isinstance(part, str) for part in turn):
            messages.append(Message(role="user", content=turn[0]))
            messages.append(Message(role="assistant", content=turn[1]))
        else:
            raise InputError(f"history entries must be [question, answer] pairs or {{role, content}} objects: "
                             f"{turn!r}"[:300])
    return messages


# -- OpenAI-compatible ------------------------------------------------------------------------------------


class ChatMessage(_Lenient):
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(_Lenient):
    model: str = Field(description="the knowledge base name")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=100, description="extension: passages to retrieve")
    score_threshold: float | None = Field(None, description="extension: drop passages scoring below")


class Source(BaseModel):
    """A cited passage in an OpenAI-compatible reply (extra field `sources`)."""

    index: int
    file: str
    page: int | None
    heading: str
    text: str
    score: float


def sources_of(citations: list[Citation]) -> list[Source]:
    return [Source(index=number, file=c.file, page=c.page, heading=c.heading, text=c.text, score=round(c.score, 6))
            for number, c in enumerate(citations, start=1)]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tecorag"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
