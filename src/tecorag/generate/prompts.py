"""Prompts: the RAG template, numbered sources packed to a token budget, history, chat templates.

The RAG template (`prompts.rag_template`, `APP_PROMPTS_RAG_TEMPLATE`) holds `{context}` and `{query}`;
they are substituted literally (not with str.format), so a template may contain other braces.
Sources are numbered in relevance order as "[n] 文件名 > 标题\\n内容"; the answer cites them as [n].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..types import Hit, Message

TokenCounter = Callable[[str], int]

CONTEXT_FIELD = "{context}"
QUERY_FIELD = "{query}"
SOURCE_SEPARATOR = "\n\n"
MIN_TRUNCATED_SOURCE_TOKENS = 64       # below this a truncated source is more noise than help
NO_CONTEXT_TEXT = "（没有检索到相关信息）"

CHATML_START = "<|im_start|>"
CHATML_END = "<|im_end|>"
CHAT_CONTROL_STRINGS = (CHATML_START, CHATML_END, "<|endoftext|>")
CHAT_TEMPLATES = ("qwen", "plain")


@dataclass(frozen=True)
class PackedContext:
    """The context block given to the LLM and the hits it holds: source [n] is `hits[n-1]`."""

    text: str
    hits: list[Hit]
    tokens: int
    truncated: bool                    # the last source was cut to fit the budget


def source_title(hit: Hit) -> str:
    heading = hit.chunk.heading
    return f"{hit.chunk.file} > {heading}" if heading else hit.chunk.file


def format_source(number: int, hit: Hit, text: str | None = None) -> str:
    return f"[{number}] {source_title(hit)}\n{(hit.chunk.text if text is None else text).strip()}"


def _truncate_to_tokens(text: str, max_tokens: int, count_tokens: TokenCounter) -> str:
    """The longest prefix of `text` that fits in `max_tokens` (binary search over characters)."""
    if count_tokens(text) <= max_tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def pack_context(hits: Sequence[Hit], token_budget: int, count_tokens: TokenCounter) -> PackedContext:
    """Number the hits in the order given (best first) and keep whole sources while they fit the budget;
    the first source that does not fit is truncated to the room left (if that room is worth it), then stop.
    Keeping a prefix of the ranking means [n] always refers to the n-th best hit."""
    parts: list[str] = []
    used: list[Hit] = []
    used_tokens = 0
    truncated = False
    for hit in hits:
        number = len(used) + 1
        separator_tokens = count_tokens(SOURCE_SEPARATOR) if parts else 0
        source = format_source(number, hit)
        source_tokens = count_tokens(source)
        if used_tokens + separator_tokens + source_tokens <= token_budget:
            parts.append(source)
            used.append(hit)
            used_tokens += separator_tokens + source_tokens
            continue
        header_tokens = count_tokens(format_source(number, hit, text=""))
        room = token_budget - used_tokens - separator_tokens - header_tokens
        if room >= MIN_TRUNCATED_SOURCE_TOKENS or not parts:
            body = _truncate_to_tokens(hit.chunk.text.strip(), max(room, 0), count_tokens)
            if body:
                source = format_source(number, hit, text=body)
                parts.append(source)
                used.append(hit)
                used_tokens += separator_tokens + count_tokens(source)
                truncated = True
        break
    return PackedContext(text=SOURCE_SEPARATOR.join(parts), hits=used, tokens=used_tokens, truncated=truncated)


def check_template(template: str) -> None:
    """A RAG template must hold both placeholders: without {context} the LLM never sees the sources, without
    {query} it never sees the question."""
    missing = [field for field in (CONTEXT_FIELD, QUERY_FIELD) if field not in template]
    if missing:
        raise ConfigError(f"prompts.rag_template (APP_PROMPTS_RAG_TEMPLATE) must contain {' and '.join(missing)}")


def render_rag_prompt(template: str, context: str, query: str) -> str:
    """Fill the RAG template (checked by `check_template` when the settings were loaded)."""
    check_template(template)
    # Substitute the query last so a question that happens to contain "{context}" stays literal.
    return template.replace(CONTEXT_FIELD, context or NO_CONTEXT_TEXT).replace(QUERY_FIELD, query)


def strip_chat_markup(text: str) -> str:
    """Remove ChatML control strings from text (questions, documents) so it cannot open or close a turn:
    the Qwen tokenizer would otherwise turn them into the real control tokens."""
    for control in CHAT_CONTROL_STRINGS:
        text = text.replace(control, "")
    return text


def render_chatml(messages: Sequence[Message]) -> str:
    """Qwen ChatML: each turn `<|im_start|>role\\ncontent<|im_end|>\\n`, then the open assistant turn."""
    turns = [f"{CHATML_START}{m.role}\n{strip_chat_markup(m.content)}{CHATML_END}\n" for m in messages]
    return "".join(turns) + f"{CHATML_START}assistant\n"


def render_plain(messages: Sequence[Message]) -> str:
    """A model-agnostic transcript for base models without a chat format."""
    labels = {"system": "", "user": "User: ", "assistant": "Assistant: "}
    lines = [f"{labels.get(m.role, m.role + ': ')}{m.content}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant: "


def render_chat(messages: Sequence[Message], template: str) -> str:
    """Render messages as one prompt string for engines that take raw text (Triton)."""
    if template == "qwen":
        return render_chatml(messages)
    if template == "plain":
        return render_plain(messages)
    raise ConfigError(f"unknown chat template {template!r}; known: {', '.join(CHAT_TEMPLATES)}")


def trim_history(history: Sequence[Message], token_budget: int, count_tokens: TokenCounter) -> list[Message]:
    """The most recent turns that fit the budget, whole turns only, oldest first; system turns dropped
    (the RAG prompt brings its own)."""
    kept: list[Message] = []
    used = 0
    for message in reversed([m for m in history if m.role in ("user", "assistant")]):
        cost = count_tokens(message.content)
        if used + cost > token_budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    # A history that starts with an assistant turn reads oddly to the model: start at a user turn.
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


@dataclass(frozen=True)
class RagPrompt:
    """Builds the chat messages for one RAG question."""

    template: str
    system_prompt: str
    context_token_budget: int
    count_tokens: TokenCounter
    history_token_budget: int = 1000

    def pack(self, hits: Sequence[Hit]) -> PackedContext:
        return pack_context(hits, self.context_token_budget, self.count_tokens)

    def render(self, question: str, hits: Sequence[Hit],
               history: Sequence[Message] = ()) -> tuple[list[Message], PackedContext]:
        """The chat messages (system, recent history, the RAG prompt) and the context they carry."""
        context = self.pack(hits)
        user_prompt = render_rag_prompt(self.template, context.text, question)
        turns = trim_history(history, self.history_token_budget, self.count_tokens)
        system = [Message("system", self.system_prompt)] if self.system_prompt else []
        return [*system, *turns, Message("user", user_prompt)], context

    def messages(self, question: str, hits: Sequence[Hit], history: Sequence[Message] = ()) -> list[Message]:
        return self.render(question, hits, history)[0]
