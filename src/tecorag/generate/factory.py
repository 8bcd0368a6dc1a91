"""One factory for the generation stage: `llm.model_engine` picks where answers come from.

- `none`: the extractive generator given by the caller;
- `teco`: Triton + TecoInferenceEngine (`TritonClient`);
- `nvidia` / `openai`: an OpenAI-compatible server (`OpenAICompatClient`).

With `llm.fallback_to_extractive` the LLM generator is wrapped so that an unreachable, slow or broken LLM
still gives the extractive answer, with a notice on the returned stream (`GenerationStream.notice`).
"""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import Generator
from .llm import FallbackGenerator, LLMClient, LLMGenerator, SamplingParams
from .openai_compat import OpenAICompatClient, base_url_for
from .prompts import RagPrompt, TokenCounter
from .tokenizer import Tokenizer, estimate_tokens, load_tokenizer
from .triton import TritonClient, TritonTensorNames


def build_tokenizer(settings: Settings) -> Tokenizer | None:
    """The model's tokenizer when `llm.tokenizer_path` is set, else None."""
    path = settings.llm.tokenizer_path
    return load_tokenizer(path) if path else None


def build_llm_client(settings: Settings, tokenizer: Tokenizer | None = None) -> LLMClient | None:
    """The configured LLM client, or None for engine `none`. Nothing is contacted here."""
    llm = settings.llm
    sampling = SamplingParams.from_settings(llm)
    if llm.model_engine == "none":
        return None
    if llm.model_engine == "teco":
        if llm.grpc_port is None:
            raise ConfigError("llm engine 'teco' needs llm.grpc_port (APP_LLM_GRPC_PORT), e.g. 8001")
        if tokenizer is None and llm.triton_mode == "non-ensemble":
            tokenizer = build_tokenizer(settings)
        return TritonClient(
            llm.ip, llm.grpc_port, llm.model_name, model_version=llm.model_version, mode=llm.triton_mode,
            tokenizer=tokenizer, sampling=sampling, chat_template=llm.chat_template,
            first_token_timeout_s=llm.first_token_timeout_s, timeout_s=llm.timeout_s, retries=llm.retries,
            tensor_names=TritonTensorNames.with_overrides(llm.triton_tensor_names),
            cumulative_output=llm.triton_cumulative_output,
        )
    return OpenAICompatClient(
        llm.model_engine, base_url_for(llm.model_engine, llm.url, llm.ip, llm.port), llm.model_name,
        api_key=llm.api_key, sampling=sampling, first_token_timeout_s=llm.first_token_timeout_s,
        timeout_s=llm.timeout_s, retries=llm.retries,
    )


def build_rag_prompt(settings: Settings, tokenizer: Tokenizer | None = None) -> RagPrompt:
    count_tokens: TokenCounter = tokenizer.count if tokenizer is not None else estimate_tokens
    return RagPrompt(template=settings.prompts.rag_template, system_prompt=settings.llm.system_prompt,
                     context_token_budget=settings.llm.context_token_budget, count_tokens=count_tokens)


def build_generator(settings: Settings, extractive: Generator, client: LLMClient | None = None) -> Generator:
    """The generator for `llm.model_engine`: the given extractive one for `none`, else an LLM generator
    (wrapped with the extractive fallback when `llm.fallback_to_extractive`). Pass `client` to reuse one
    already built (e.g. the one used for query transforms)."""
    if settings.llm.model_engine == "none":
        return extractive
    tokenizer = build_tokenizer(settings)
    if client is None:
        client = build_llm_client(settings, tokenizer)
    assert client is not None
    generator = LLMGenerator(client, build_rag_prompt(settings, tokenizer))
    if settings.llm.fallback_to_extractive:
        return FallbackGenerator(generator, extractive)
    return generator
