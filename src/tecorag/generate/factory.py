"""One factory for the generation stage: `llm.model_engine` picks where answers come from.

`LLM_ENGINES` maps an engine name to a builder `from_settings(LLMSettings, tokenizer) -> LLMClient`, imported
only when that engine is used (tritonclient and openai are extras):
- `none`: no LLM; the extractive generator given by the caller answers;
- `teco`: Triton + TecoInferenceEngine (`TritonClient`);
- `nvidia` / `openai`: an OpenAI-compatible server (`OpenAICompatClient`).

With `llm.fallback_to_extractive` the LLM generator is wrapped so that an unreachable, slow or broken LLM
still gives the extractive answer, with a notice on the returned stream (`GenerationStream.notice`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry
from .base import Generator

if TYPE_CHECKING:
    from ..config import Settings
    from .llm import LLMClient
    from .prompts import RagPrompt
    from .tokenizer import Tokenizer

NO_LLM = "none"
LLM_ENGINES = Registry("LLM engine", entry_point_group="tecorag.llm_engines")
LLM_ENGINES.register(NO_LLM, lambda llm, tokenizer=None: None)
LLM_ENGINES.register("teco", f"{__package__}.triton:from_settings", extra="triton")
LLM_ENGINES.register("nvidia", f"{__package__}.openai_compat:nvidia_from_settings", extra="openai")
LLM_ENGINES.register("openai", f"{__package__}.openai_compat:openai_from_settings", extra="openai")


def build_tokenizer(settings: Settings) -> Tokenizer | None:
    """The model's tokenizer when `llm.tokenizer_path` is set, else None."""
    from .tokenizer import load_tokenizer

    path = settings.llm.tokenizer_path
    return load_tokenizer(path) if path else None


def build_llm_client(settings: Settings, tokenizer: Tokenizer | None = None) -> LLMClient | None:
    """The configured LLM client, or None for engine `none`. Nothing is contacted here."""
    return LLM_ENGINES.build(settings.llm.model_engine, settings.llm, tokenizer)


def build_rag_prompt(settings: Settings, tokenizer: Tokenizer | None = None) -> RagPrompt:
    from .prompts import RagPrompt
    from .tokenizer import estimate_tokens

    count_tokens = tokenizer.count if tokenizer is not None else estimate_tokens
    return RagPrompt(template=settings.prompts.rag_template, system_prompt=settings.llm.system_prompt,
                     context_token_budget=settings.llm.context_token_budget, count_tokens=count_tokens)


def build_generator(settings: Settings, extractive: Generator, client: LLMClient | None = None) -> Generator:
    """The generator for `llm.model_engine`: the given extractive one for `none`, else an LLM generator
    (wrapped with the extractive fallback when `llm.fallback_to_extractive`). Pass `client` to reuse one
    already built (e.g. the one used for query transforms)."""
    from .llm import FallbackGenerator, LLMGenerator

    if settings.llm.model_engine == NO_LLM:
        return extractive
    tokenizer = build_tokenizer(settings)
    if client is None:
        client = build_llm_client(settings, tokenizer)
    assert client is not None
    generator = LLMGenerator(client, build_rag_prompt(settings, tokenizer))
    if settings.llm.fallback_to_extractive:
        return FallbackGenerator(generator, extractive)
    return generator
