"""Engine `teco`: TecoInferenceEngine (or any FasterTransformer-style backend) behind Triton, over gRPC
streaming against a decoupled model.

Two modes, as in Teco-RAG:
- `non-ensemble`: the client renders the chat prompt, tokenizes it with the model's own tokenizer, sends
  `input_ids` + FasterTransformer sampling tensors, and detokenizes `output_ids` incrementally;
- `ensemble`: the prompt goes as text (`text_input`, BYTES) and text comes back (`text_output`).

The model's metadata is read once per client and the request is fitted to it: inputs the model does not
declare are left out (Triton rejects unknown inputs), datatypes are cast to the declared ones (UINT32 vs
INT32...), so one client serves FasterTransformer-style configs that differ in their optional inputs.

Responses may carry the whole sequence so far (FasterTransformer: prompt + generated ids, growing) or
only the new part; `cumulative_output` says which, and a response that starts with the prompt ids is
always read as cumulative. The stream ends at the end id, a stop word, Triton's `triton_final_response`
flag, or when the server closes the stream.
"""

from __future__ import annotations

import codecs
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from ..config import LLMSettings
from ..errors import ConfigError, LLMError
from ..types import Message
from .llm import (LLMRequestRejected, LLMStreamBroken, LLMTimeout, LLMUnavailable, SamplingParams, StopTextFilter,
                  llm_error, retry_before_first_piece)
from .prompts import render_chat
from .tokenizer import REPLACEMENT_CHAR, Tokenizer, load_tokenizer

ENGINE = "teco"
MODES = ("non-ensemble", "ensemble")
FINAL_RESPONSE_PARAMETER = "triton_final_response"


@dataclass(frozen=True)
class TritonTensorNames:
    """Tensor names of the served model. Defaults follow the FasterTransformer Triton backend (the
    TecoInferenceEngine backend is FasterTransformer-derived); the ensemble names follow the usual
    text-in/text-out ensembles."""

    input_ids: str = "input_ids"
    input_lengths: str = "input_lengths"
    request_output_len: str = "request_output_len"
    runtime_top_k: str = "runtime_top_k"
    runtime_top_p: str = "runtime_top_p"
    temperature: str = "temperature"
    len_penalty: str = "len_penalty"
    repetition_penalty: str = "repetition_penalty"
    start_id: str = "start_id"
    end_id: str = "end_id"
    beam_width: str = "beam_width"
    stop_words_list: str = "stop_words_list"     # non-ensemble: int32 [1, 2, n] ids + offsets
    streaming: str = "streaming"
    text_input: str = "text_input"               # ensemble
    stop_words: str = "stop_words"               # ensemble: BYTES [1, k]
    output_ids: str = "output_ids"
    sequence_length: str = "sequence_length"
    text_output: str = "text_output"

    @classmethod
    def with_overrides(cls, overrides: dict[str, str]) -> TritonTensorNames:
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown Triton tensor roles {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**overrides)


@dataclass(frozen=True)
class TensorSpec:
    datatype: str
    shape: tuple[int, ...]


def stop_words_tensor(stop_word_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """FasterTransformer's word-list layout for one request: int32 [1, 2, n], row 0 the concatenated ids of
    all words (padded with 0), row 1 the end offset of each word (padded with -1)."""
    flat: list[int] = [token for word in stop_word_ids for token in word]
    offsets = list(np.cumsum([len(word) for word in stop_word_ids])) if stop_word_ids else []
    width = max(1, len(flat))
    ids_row = flat + [0] * (width - len(flat))
    offsets_row = [int(offset) for offset in offsets] + [-1] * (width - len(offsets))
    return np.array([[ids_row, offsets_row]], dtype=np.int32)


def _fit_tensor(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Cast to the declared datatype and match the declared rank by adding or dropping leading 1-dims."""
    if spec.datatype != "BYTES":
        array = array.astype(triton_to_np_dtype(spec.datatype))
    rank = len(spec.shape)
    while array.ndim > rank and array.shape[0] == 1:
        array = array[0]
    while array.ndim < rank:
        array = array[np.newaxis, ...]
    return array


def _is_final(result: grpcclient.InferResult) -> bool:
    parameter = result.get_response().parameters.get(FINAL_RESPONSE_PARAMETER)
    return bool(parameter is not None and parameter.bool_param)


class _IdStreamReader:
    """Turns `output_ids` responses into text pieces (non-ensemble)."""

    def __init__(self, tokenizer: Tokenizer, prompt_ids: list[int], names: TritonTensorNames,
                 end_id: int, stop_words: Sequence[str], cumulative: bool):
        self._prompt_ids = prompt_ids
        self._names = names
        self._end_id = end_id
        self._cumulative = cumulative
        self._received: list[int] = []
        self._detokenizer = tokenizer.detokenizer()
        self._stop = StopTextFilter(stop_words)

    def read(self, result: grpcclient.InferResult) -> tuple[str, bool]:
        ids_array = result.as_numpy(self._names.output_ids)
        if ids_array is None:
            raise ValueError(f"response has no output '{self._names.output_ids}'")
        ids = [int(token) for token in ids_array.reshape(-1)]
        lengths = result.as_numpy(self._names.sequence_length)
        if lengths is not None and lengths.size:
            ids = ids[:int(lengths.reshape(-1)[0])]
        prompt_length = len(self._prompt_ids)
        cumulative = self._cumulative
        if prompt_length and ids[:prompt_length] == self._prompt_ids:
            ids, cumulative = ids[prompt_length:], True
        new_ids = ids[len(self._received):] if cumulative else ids
        self._received.extend(new_ids)
        ended = self._end_id in new_ids
        if ended:
            new_ids = new_ids[:new_ids.index(self._end_id)]
        text = self._stop.push(self._detokenizer.push(new_ids))
        return text, ended or self._stop.stopped

    def finish(self) -> str:
        return self._stop.push(self._detokenizer.finish()) + self._stop.finish()


class _TextStreamReader:
    """Turns `text_output` responses into text pieces (ensemble)."""

    def __init__(self, prompt: str, names: TritonTensorNames, stop_words: Sequence[str], cumulative: bool):
        self._prompt = prompt
        self._names = names
        self._cumulative = cumulative
        self._emitted = ""                       # cumulative mode: stable text already passed on
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = StopTextFilter(stop_words)

    def read(self, result: grpcclient.InferResult) -> tuple[str, bool]:
        output = result.as_numpy(self._names.text_output)
        if output is None:
            raise ValueError(f"response has no output '{self._names.text_output}'")
        flat = output.reshape(-1)
        data = flat[0] if flat.size else b""
        data = data if isinstance(data, bytes) else str(data).encode("utf-8")
        if self._cumulative:
            # A trailing U+FFFD (or cut bytes) is a character the server has not finished yet.
            text = data.decode("utf-8", errors="replace").rstrip(REPLACEMENT_CHAR)
            if text.startswith(self._prompt):
                text = text[len(self._prompt):]
            new_text = text[len(self._emitted):] if len(text) > len(self._emitted) else ""
            self._emitted = max(text, self._emitted, key=len)
        else:
            new_text = self._utf8.decode(data, final=False).replace(REPLACEMENT_CHAR, "")
        piece = self._stop.push(new_text)
        return piece, self._stop.stopped

    def finish(self) -> str:
        self._utf8.reset()
        return self._stop.finish()


_STREAM_END = object()


def _enqueue(results: queue.Queue, result: Any, error: Any) -> None:
    results.put((result, error))


def _own_stream_until_closed(client: grpcclient.InferenceServerClient, results: queue.Queue) -> None:
    """Half-close the request side (one request per stream), wait until the server has sent everything and
    closed the stream (or the stream deadline passed), then release the channel.

    This thread owns the client from here on: the reader may stop early (stop word, timeout, consumer
    gone) and simply walk away; the stream deadline (`timeout_s`) bounds how long this thread can live.
    (Cancelling through tritonclient instead would leave gRPC's request-reader thread blocked on its queue
    until the client object happens to be garbage-collected.)"""
    try:
        client.stop_stream(cancel_requests=False)
    finally:
        client.close()
        results.put((_STREAM_END, None))


class TritonClient:
    """LLMClient for Triton + TecoInferenceEngine. Each request uses its own gRPC stream, so concurrent
    users never wait for each other in the client."""

    engine = ENGINE

    def __init__(self, host: str, port: int, model_name: str, *, model_version: str = "",
                 mode: str = "non-ensemble", tokenizer: Tokenizer | None = None,
                 sampling: SamplingParams | None = None, chat_template: str = "qwen",
                 first_token_timeout_s: float = 30.0, timeout_s: float = 60.0, retries: int = 1,
                 tensor_names: TritonTensorNames = TritonTensorNames(), cumulative_output: bool = True):
        if mode not in MODES:
            raise ConfigError(f"llm.triton_mode must be one of {MODES}, not {mode!r}")
        if mode == "non-ensemble" and tokenizer is None:
            raise ConfigError("llm.triton_mode non-ensemble needs the model's tokenizer: set llm.tokenizer_path "
                              "(APP_LLM_TOKENIZER_PATH) to the model directory holding qwen.tiktoken or tokenizer.json")
        self.address = f"{host}:{port}"
        self.model_name = model_name
        self.model_version = model_version or ""
        self.mode = mode
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingParams()
        self.chat_template = chat_template
        self.first_token_timeout_s = first_token_timeout_s
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.names = tensor_names
        self.cumulative_output = cumulative_output
        self._metadata_lock = threading.Lock()
        self._model_inputs: dict[str, TensorSpec] | None = None

    # -- errors ----------------------------------------------------------------------------------------

    def _error(self, kind: type[LLMError], detail: str) -> LLMError:
        return llm_error(kind, self.engine, self.address, detail)

    def _classify(self, error: InferenceServerException, started: bool) -> LLMError:
        status = error.status() or ""
        detail = f"{status + ': ' if status else ''}{error.message()}"
        if "DEADLINE_EXCEEDED" in status:
            return self._error(LLMTimeout, f"timed out after {self.timeout_s:g}s ({detail})")
        if started:
            return self._error(LLMStreamBroken, f"stream broke off mid-answer: {detail}")
        if "UNAVAILABLE" in status:
            return self._error(LLMUnavailable, f"unreachable: {detail}")
        return self._error(LLMRequestRejected, f"request rejected by model '{self.model_name}': {detail}")

    # -- model metadata ----------------------------------------------------------------------------------

    def _connect(self) -> grpcclient.InferenceServerClient:
        return grpcclient.InferenceServerClient(self.address)

    def declared_inputs(self) -> dict[str, TensorSpec]:
        """The model's inputs as its metadata declares them (read once, then kept)."""
        with self._metadata_lock:
            if self._model_inputs is None:
                client = self._connect()
                try:
                    metadata = client.get_model_metadata(self.model_name, self.model_version,
                                                         client_timeout=self.first_token_timeout_s)
                except InferenceServerException as exc:
                    raise self._classify(exc, started=False) from exc
                finally:
                    client.close()
                self._model_inputs = {tensor.name: TensorSpec(tensor.datatype, tuple(tensor.shape))
                                      for tensor in metadata.inputs}
            return self._model_inputs

    def check(self) -> None:
        client = self._connect()
        try:
            if not client.is_server_live(client_timeout=self.first_token_timeout_s):
                raise self._error(LLMUnavailable, "server is not live")
            if not client.is_model_ready(self.model_name, self.model_version,
                                         client_timeout=self.first_token_timeout_s):
                raise self._error(LLMUnavailable, f"model '{self.model_name}' is not ready")
        except InferenceServerException as exc:
            raise self._classify(exc, started=False) from exc
        finally:
            client.close()
        self._require_prompt_input(self.declared_inputs())

    def _require_prompt_input(self, declared: dict[str, TensorSpec]) -> None:
        """The prompt tensor must exist: a missing one means the wrong mode or tensor names."""
        required = self.names.input_ids if self.mode == "non-ensemble" else self.names.text_input
        if required not in declared:
            raise self._error(LLMRequestRejected, f"model '{self.model_name}' has no input '{required}' "
                              f"({self.mode} mode); its inputs are {sorted(declared)}")

    # -- request -----------------------------------------------------------------------------------------

    def _request_tensors(self, prompt: str, max_new_tokens: int) -> tuple[dict[str, np.ndarray], list[int]]:
        names, sampling = self.names, self.sampling
        per_request = {
            names.request_output_len: (max_new_tokens, np.uint32),
            names.runtime_top_k: (sampling.top_k, np.uint32),
            names.runtime_top_p: (sampling.top_p, np.float32),
            names.temperature: (sampling.temperature, np.float32),
            names.len_penalty: (sampling.len_penalty, np.float32),
            names.repetition_penalty: (sampling.repetition_penalty, np.float32),
            names.start_id: (sampling.start_id, np.uint32),
            names.end_id: (sampling.end_id, np.uint32),
            names.beam_width: (1, np.uint32),
            names.streaming: (True, np.bool_),
        }
        tensors = {name: np.array([[value]], dtype=dtype) for name, (value, dtype) in per_request.items()}
        prompt_ids: list[int] = []
        if self.mode == "non-ensemble":
            assert self.tokenizer is not None
            prompt_ids = self.tokenizer.encode(prompt)
            tensors[names.input_ids] = np.array([prompt_ids], dtype=np.uint32)
            tensors[names.input_lengths] = np.array([[len(prompt_ids)]], dtype=np.uint32)
            stop_ids = [self.tokenizer.encode(word) for word in sampling.stop_words if word]
            tensors[names.stop_words_list] = stop_words_tensor(stop_ids)
        else:
            tensors[names.text_input] = np.array([[prompt.encode("utf-8")]], dtype=object)
            if sampling.stop_words:
                tensors[names.stop_words] = np.array([[w.encode("utf-8") for w in sampling.stop_words]], dtype=object)
        return tensors, prompt_ids

    def _infer_inputs(self, tensors: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
        declared = self.declared_inputs()
        self._require_prompt_input(declared)
        inputs = []
        for name, array in tensors.items():
            spec = declared.get(name)
            if spec is None:
                continue
            array = _fit_tensor(array, spec)
            infer_input = grpcclient.InferInput(name, list(array.shape), spec.datatype)
            infer_input.set_data_from_numpy(array)
            inputs.append(infer_input)
        return inputs

    # -- streaming ---------------------------------------------------------------------------------------

    def stream_chat(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> Iterator[str]:
        prompt = render_chat(messages, self.chat_template)
        limit = max_new_tokens or self.sampling.max_new_tokens
        return retry_before_first_piece(lambda: self._stream_once(prompt, limit), self.retries)

    def complete(self, messages: Sequence[Message], max_new_tokens: int | None = None) -> str:
        return "".join(self.stream_chat(messages, max_new_tokens))

    def _reader(self, prompt: str, prompt_ids: list[int]) -> _IdStreamReader | _TextStreamReader:
        if self.mode == "non-ensemble":
            assert self.tokenizer is not None
            return _IdStreamReader(self.tokenizer, prompt_ids, self.names, self.sampling.end_id,
                                   self.sampling.stop_words, self.cumulative_output)
        return _TextStreamReader(prompt, self.names, self.sampling.stop_words, self.cumulative_output)

    def _stream_once(self, prompt: str, max_new_tokens: int) -> Iterator[str]:
        tensors, prompt_ids = self._request_tensors(prompt, max_new_tokens)
        inputs = self._infer_inputs(tensors)
        results: queue.Queue = queue.Queue()
        client = self._connect()
        try:
            client.start_stream(callback=partial(_enqueue, results), stream_timeout=self.timeout_s)
            client.async_stream_infer(self.model_name, inputs, model_version=self.model_version,
                                      request_id=uuid.uuid4().hex)
        except InferenceServerException as exc:
            client.close()
            raise self._classify(exc, started=False) from exc
        threading.Thread(target=_own_stream_until_closed, args=(client, results), daemon=True,
                         name="triton-stream").start()

        reader = self._reader(prompt, prompt_ids)
        started_at = time.monotonic()
        answered = False          # a response arrived (the first-token clock stops)
        yielded = False           # text reached the caller (a failure now breaks a visible answer)
        while True:
            limit = self.timeout_s if answered else min(self.first_token_timeout_s, self.timeout_s)
            remaining = started_at + limit - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                result, error = results.get(timeout=remaining)
            except queue.Empty:
                what = "the answer" if answered else "the first token"
                raise self._error(LLMTimeout, f"no {what} within {limit:g}s") from None
            if result is _STREAM_END:
                break
            if error is not None:
                raise self._classify(error, started=yielded)
            answered = True
            try:
                piece, finished = reader.read(result)
            except ValueError as exc:
                raise self._error(LLMRequestRejected, f"unexpected response from '{self.model_name}': {exc}") from exc
            if piece:
                yielded = True
                yield piece
            if finished or _is_final(result):
                break
        tail = reader.finish()
        if tail:
            yield tail


def from_settings(llm: LLMSettings, tokenizer: Tokenizer | None = None) -> TritonClient:
    """Engine `teco`. Non-ensemble mode needs the model's tokenizer: the one given, else llm.tokenizer_path."""
    if llm.grpc_port is None:
        raise ConfigError("llm engine 'teco' needs llm.grpc_port (APP_LLM_GRPC_PORT), e.g. 8001")
    if tokenizer is None and llm.triton_mode == "non-ensemble" and llm.tokenizer_path:
        tokenizer = load_tokenizer(llm.tokenizer_path)
    return TritonClient(
        llm.ip, llm.grpc_port, llm.model_name, model_version=llm.model_version, mode=llm.triton_mode,
        tokenizer=tokenizer, sampling=SamplingParams.from_settings(llm), chat_template=llm.chat_template,
        first_token_timeout_s=llm.first_token_timeout_s, timeout_s=llm.timeout_s, retries=llm.retries,
        tensor_names=TritonTensorNames.with_overrides(llm.triton_tensor_names),
        cumulative_output=llm.triton_cumulative_output,
    )
