"""Protocol-level stand-ins for LLM servers, started inside tests on 127.0.0.1 (not mocks: real gRPC / HTTP
servers speaking the real protocols, with a deterministic reply and fault injection)."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterable

NO_ANSWER = "根据已知信息无法回答该问题"
_FIRST_SOURCE = re.compile(r"\[1\][^\n]*\n([^\n]+)")


def default_reply(prompt: str) -> str:
    """A deterministic answer derived from the prompt: quote the first sentence of source [1], or say
    the sources do not hold the answer when there are none."""
    match = _FIRST_SOURCE.search(prompt)
    if not match:
        return NO_ANSWER
    sentence = re.split(r"(?<=[。！？!?])", match.group(1).strip())[0]
    return f"根据已知信息，{sentence}[1]"


def closed_port() -> int:
    """A local port with nothing listening (for the 'refuse' fault)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stream_concurrently(stream: Callable[[], Iterable[str]], users: int) -> list[str]:
    """Run `users` streams at once, one thread each; their joined answers, in completion order."""
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append("".join(stream()))) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
