"""Warm-up: N concurrent chat requests to the LLM.

TecoInferenceEngine with continuous batching (`FT_CB_BATCH_SIZE=N`) needs at least N concurrent requests
before the first real one; `tecorag warmup --concurrency N` and the server start (with
`llm.warmup_concurrency`) send them. Same prompt shape as the vendor's `concurrency_warm_up.py`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import LLMError
from .generate.llm import LLMClient
from .types import Message

DEFAULT_WARMUP_QUESTION = "介绍一下英伟达这家公司"
DEFAULT_WARMUP_SYSTEM = "You are a helpful assistant."
PREVIEW_CHARS = 40


@dataclass(frozen=True)
class WarmupResult:
    index: int                      # 1-based request number
    ok: bool
    latency_s: float                # request start to last piece (or to the failure)
    first_token_s: float | None     # request start to the first piece
    text: str
    error: str | None = None


def _one_request(client: LLMClient, index: int, question: str, max_new_tokens: int | None) -> WarmupResult:
    messages = [Message("system", DEFAULT_WARMUP_SYSTEM), Message("user", question)]
    started = time.perf_counter()
    first_token_s: float | None = None
    pieces: list[str] = []
    try:
        for piece in client.stream_chat(messages, max_new_tokens=max_new_tokens):
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
            pieces.append(piece)
    except LLMError as exc:
        return WarmupResult(index, False, time.perf_counter() - started, first_token_s, "".join(pieces), str(exc))
    return WarmupResult(index, True, time.perf_counter() - started, first_token_s, "".join(pieces))


def warmup(client: LLMClient, concurrency: int, question: str = DEFAULT_WARMUP_QUESTION,
           max_new_tokens: int | None = None) -> list[WarmupResult]:
    """Send `concurrency` requests at once (one thread each); results in request order.

    Raises LLMError, naming engine and address, when the LLM is unreachable or its model not ready (checked
    first) or when every request failed. Partial failures are returned for the caller to report."""
    if concurrency < 1:
        raise ValueError("warm-up concurrency must be at least 1")
    client.check()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="warmup") as pool:
        futures = [pool.submit(_one_request, client, i + 1, question, max_new_tokens) for i in range(concurrency)]
        results = [future.result() for future in futures]
    if not any(result.ok for result in results):
        raise LLMError(f"LLM engine '{client.engine}' at {client.address}: warm-up failed, all {concurrency} "
                       f"requests failed; first error: {results[0].error}")
    return results


def format_warmup_report(results: list[WarmupResult], engine: str = "", address: str = "") -> str:
    """Lines for the CLI: one per request (latency, first token, preview or error), then a summary."""
    lines = []
    if engine or address:
        lines.append(f"warm-up of {engine} at {address}: {len(results)} concurrent requests")
    for result in results:
        first = f"{result.first_token_s:6.2f}s" if result.first_token_s is not None else "     -"
        if result.ok:
            preview = result.text.replace("\n", " ")[:PREVIEW_CHARS]
            lines.append(f"#{result.index:<3} ok    total {result.latency_s:6.2f}s  first token {first}  {preview}")
        else:
            lines.append(f"#{result.index:<3} FAIL  total {result.latency_s:6.2f}s  first token {first}  {result.error}")
    ok = [r for r in results if r.ok]
    if ok:
        latencies = sorted(r.latency_s for r in ok)
        lines.append(f"{len(ok)}/{len(results)} ok; latency min {latencies[0]:.2f}s, "
                     f"median {latencies[len(latencies) // 2]:.2f}s, max {latencies[-1]:.2f}s")
    else:
        lines.append(f"0/{len(results)} ok")
    return "\n".join(lines)


def warmup_succeeded(results: list[WarmupResult]) -> bool:
    """For the CLI exit status: every request answered."""
    return bool(results) and all(result.ok for result in results)
