"""Engines `nvidia` and `openai`: any OpenAI-compatible chat-completions server (vLLM and other servers on
NVIDIA GPUs, or OpenAI itself) through the official `openai` client, streaming.

The server applies the model's chat template, so messages go as they are. Sampling follows the settings
with the meaning they have on Triton: top-k 1 is greedy decoding. For `nvidia` (vLLM-style servers) top_k
and repetition_penalty travel as extra body fields; OpenAI itself rejects unknown fields, so for `openai`
greedy decoding is asked for with temperature 0 instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import openai

from ..config import LLMSettings
from ..errors import ConfigError, LLMError
from ..types import Message
from .llm import (LLMRequestRejected, LLMStreamBroken, LLMTimeout, LLMUnavailable, SamplingParams, StopTextFilter,
                  llm_error, retry_before_first_piece)

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

OPENAI_API_URL = "https://api.openai.com/v1"
PLACEHOLDER_API_KEY = "EMPTY"      # vLLM and most self-hosted servers accept any key unless started with one


def base_url_for(engine: str, url: str | None, ip: str, port: int | None, default_url: str | None = None) -> str:
    """`llm.url` if set; else http://{ip}:{port}/v1; else the engine's default (OpenAI's own API for `openai`)."""
    if url:
        return url.rstrip("/")
    if port:
        return f"http://{ip}:{port}/v1"
    if default_url:
        return default_url
    raise ConfigError(f"llm engine '{engine}' needs llm.url (APP_LLM_URL) or llm.port (APP_LLM_PORT)")


class OpenAICompatClient:
    """LLMClient over `chat.completions.create(stream=True)`. One `openai.OpenAI` client (a connection pool)
    is shared by all threads; each request is its own HTTP stream, so users do not wait for each other."""

    def __init__(self, engine: str, base_url: str, model_name: str, *, api_key: str | None = None,
                 sampling: SamplingParams | None = None, first_token_timeout_s: float = 30.0,
                 timeout_s: float = 60.0, retries: int = 1, server_sampling_fields: bool = True):
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if base_url == OPENAI_API_URL:
                raise ConfigError("llm engine 'openai' needs llm.api_key (APP_LLM_API_KEY) or OPENAI_API_KEY")
            key = PLACEHOLDER_API_KEY
        self.engine = engine
        self.address = base_url
        self.model_name = model_name
        self.sampling = sampling or SamplingParams()
        # vLLM-style servers take top_k and repetition_penalty as extra body fields; OpenAI itself rejects them.
        self.server_sampling_fields = server_sampling_fields
        self.first_token_timeout_s = first_token_timeout_s
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        read_timeout = min(first_token_timeout_s, timeout_s)
        # The SDK's own retries are off: ours retry only while nothing has reached the caller.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=key, max_retries=0,
            timeout=openai.Timeout(timeout_s, connect=min(10.0, timeout_s), read=read_timeout),
        )

    def _error(self, kind: type[LLMError], detail: str) -> LLMError:
        return llm_error(kind, self.engine, self.address, detail)

    def _classify(self, error: Exception, started: bool) -> LLMError:
        if isinstance(error, (openai.APITimeoutError, httpx.TimeoutException)):
            what = "next token" if started else "first token"
            return self._error(LLMTimeout, f"no {what} within {min(self.first_token_timeout_s, self.timeout_s):g}s")
        detail = f"{type(error).__name__}: {error}"
        if error.__cause__ is not None:          # the SDK's "Connection error." hides the transport's reason
            detail += f" ({type(error.__cause__).__name__}: {error.__cause__})"
        if started:
            return self._error(LLMStreamBroken, f"stream broke off mid-answer: {detail}")
        if isinstance(error, (openai.APIConnectionError, httpx.TransportError)):
            return self._error(LLMUnavailable, f"unreachable: {detail}")
        if isinstance(error, openai.APIStatusError) and error.status_code >= 500:
            return self._error(LLMUnavailable, f"server error {error.status_code}: {error.message}")
        return self._error(LLMRequestRejected, f"request rejected for model '{self.model_name}': {error}")

    def _request_options(self, max_new_tokens: int) -> dict[str, Any]:
        sampling = self.sampling
        options: dict[str, Any] = {"max_tokens": max_new_tokens}
        stop = [word for word in sampling.stop_words if word][:4]    # OpenAI accepts at most 4
        if stop:
            options["stop"] = stop
        if sampling.top_p > 0:
            options["top_p"] = sampling.top_p
        if self.server_sampling_fields:
            options["temperature"] = sampling.temperature
            extra: dict[str, Any] = {"repetition_penalty": sampling.repetition_penalty}
            if sampling.top_k > 0:
                extra["top_k"] = sampling.top_k
            options["extra_body"] = extra
        else:
            options["temperature"] = 0.0 if sampling.top_k == 1 else sampling.temperature
        return options

    def check(self) -> None:
        try:
            models = self._client.models.list()
            names = [model.id for model in models]
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise self._classify(exc, started=False) from exc
        if names and self.model_name not in names:
            raise self._error(LLMRequestRejected, f"model '{self.model_name}' is not served; models: {names}")

    def stream_chat(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> Iterator[str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        limit = max_new_tokens or self.sampling.max_new_tokens
        return retry_before_first_piece(lambda: self._stream_once(payload, limit), self.retries)

    def complete(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> str:
        return "".join(self.stream_chat(messages, max_new_tokens))

    def _stream_once(self, payload: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        deadline = time.monotonic() + self.timeout_s
        yielded = False
        stop = StopTextFilter(self.sampling.stop_words)
        try:
            stream = self._client.chat.completions.create(
                model=self.model_name, messages=payload, stream=True, **self._request_options(max_new_tokens))
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise self._classify(exc, started=False) from exc
        try:
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise self._error(LLMTimeout, f"no complete answer within {self.timeout_s:g}s")
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content or ""
                piece = stop.push(delta)
                if piece:
                    yielded = True
                    yield piece
                if stop.stopped:
                    return
            tail = stop.finish()
            if tail:
                yield tail
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise self._classify(exc, started=yielded) from exc
        finally:
            stream.close()


def _from_settings(engine: str, llm: LLMSettings, default_url: str | None, server_sampling_fields: bool
                   ) -> OpenAICompatClient:
    return OpenAICompatClient(
        engine, base_url_for(engine, llm.url, llm.ip, llm.port, default_url), llm.model_name, api_key=llm.api_key,
        sampling=SamplingParams.from_settings(llm), first_token_timeout_s=llm.first_token_timeout_s,
        timeout_s=llm.timeout_s, retries=llm.retries, server_sampling_fields=server_sampling_fields)


def nvidia_from_settings(llm: LLMSettings, tokenizer: Tokenizer | None = None) -> OpenAICompatClient:
    """Engine `nvidia`: a self-hosted OpenAI-compatible server (vLLM, NIM) at llm.url or llm.ip:llm.port."""
    return _from_settings("nvidia", llm, default_url=None, server_sampling_fields=True)


def openai_from_settings(llm: LLMSettings, tokenizer: Tokenizer | None = None) -> OpenAICompatClient:
    """Engine `openai`: OpenAI's own API unless llm.url or llm.port says otherwise; greedy = temperature 0."""
    return _from_settings("openai", llm, default_url=OPENAI_API_URL, server_sampling_fields=False)
