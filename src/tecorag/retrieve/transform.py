"""Query transforms that need an LLM (each off by default, switched on in `llm.*`):

- `rewrite_followup`: a follow-up question + history -> a standalone question for retrieval
  (`llm.rewrite_followups`);
- `expand_query`: N rephrasings of the question, retrieved separately and fused (`llm.multi_query`);
- `hypothetical_answer` (HyDE): a passage that would answer the question, embedded for dense search
  (`llm.hyde`).

`plan_queries` runs the enabled ones and never fails the question: a transform whose LLM call fails is
skipped and its error recorded, so retrieval goes on with what there is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import LLMSettings
from ..errors import LLMError
from ..generate.llm import LLMClient
from ..types import Message

REWRITE_MAX_TOKENS = 128
EXPAND_MAX_TOKENS = 256
HYDE_MAX_TOKENS = 320
HISTORY_TURNS_FOR_REWRITE = 6

REWRITE_SYSTEM = "你是一个检索查询改写助手。"
REWRITE_INSTRUCTION = (
    "下面是一段对话历史和用户的最新问题。最新问题可能省略了主语或用“它”“这个”等指代对话中的内容。"
    "请把最新问题改写成一个不依赖对话历史、意思完整的独立问题，保持原意，不要回答问题。"
    "只输出改写后的问题，不要输出其他内容。\n\n对话历史：\n{history}\n\n最新问题：{question}"
)
EXPAND_INSTRUCTION = (
    "请为下面的问题写出{n}个意思相同但用词或说法不同的问题，用于在企业知识库中检索资料。"
    "每行一个问题，不要编号，不要解释。\n\n问题：{question}"
)
HYDE_INSTRUCTION = (
    "请写一段像企业产品文档中的段落那样的文字，直接回答下面的问题。即使不确定也请给出最可能的内容，"
    "不超过150字，不要写“我不知道”之类的话。\n\n问题：{question}"
)

_LIST_MARKER = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,2}[.)、．:：]|[（(]\d{1,2}[)）]|[一二三四五六七八九十][、.．])\s*")
_ANSWER_LABEL = re.compile(r"^\s*(?:改写后的问题|独立问题|问题|答案|Question|Rewritten question)\s*[:：]\s*",
                           re.IGNORECASE)
_QUOTES = "\"'“”‘’「」『』"


def _clean_line(line: str) -> str:
    line = _LIST_MARKER.sub("", line)
    line = _ANSWER_LABEL.sub("", line)
    return line.strip().strip(_QUOTES).strip()


def format_history(history: Sequence[Message], max_turns: int = HISTORY_TURNS_FOR_REWRITE) -> str:
    labels = {"user": "用户", "assistant": "助手"}
    turns = [m for m in history if m.role in labels][-max_turns:]
    return "\n".join(f"{labels[m.role]}：{m.content.strip()}" for m in turns)


def rewrite_followup(client: LLMClient, question: str, history: Sequence[Message]) -> str:
    """A standalone version of `question` given the conversation; the question itself when there is no
    history or the LLM returns nothing usable."""
    history_text = format_history(history)
    if not history_text:
        return question
    prompt = REWRITE_INSTRUCTION.replace("{history}", history_text).replace("{question}", question)
    reply = client.complete([Message("system", REWRITE_SYSTEM), Message("user", prompt)],
                            max_new_tokens=REWRITE_MAX_TOKENS)
    lines = [_clean_line(line) for line in reply.splitlines()]
    return next((line for line in lines if line), question)


def expand_query(client: LLMClient, question: str, n: int) -> list[str]:
    """Up to `n` distinct rephrasings of `question` (the question itself not included)."""
    if n <= 0:
        return []
    prompt = EXPAND_INSTRUCTION.replace("{n}", str(n)).replace("{question}", question)
    reply = client.complete([Message("user", prompt)], max_new_tokens=EXPAND_MAX_TOKENS)
    seen = {question.strip()}
    rephrasings: list[str] = []
    for line in reply.splitlines():
        text = _clean_line(line)
        if text and text not in seen:
            seen.add(text)
            rephrasings.append(text)
    return rephrasings[:n]


def hypothetical_answer(client: LLMClient, question: str) -> str:
    """HyDE: a plausible answer passage, to be embedded instead of (or beside) the question."""
    prompt = HYDE_INSTRUCTION.replace("{question}", question)
    return client.complete([Message("user", prompt)], max_new_tokens=HYDE_MAX_TOKENS).strip()


@dataclass
class QueryPlan:
    """What to retrieve with: the standalone question, extra rephrasings, and a HyDE passage."""

    question: str                                    # as asked
    standalone: str                                  # rewritten when there was history, else as asked
    rephrasings: list[str] = field(default_factory=list)
    hyde_passage: str | None = None
    errors: list[str] = field(default_factory=list)  # transforms skipped because the LLM failed

    @property
    def queries(self) -> list[str]:
        """The text queries for BM25 and dense search: standalone first, then the rephrasings."""
        return [self.standalone, *self.rephrasings]


def plan_queries(client: LLMClient | None, llm: LLMSettings, question: str,
                 history: Sequence[Message] = ()) -> QueryPlan:
    """Run the transforms switched on in settings; without a client, the question as asked."""
    plan = QueryPlan(question=question, standalone=question)
    if client is None:
        return plan
    if llm.rewrite_followups and history:
        try:
            plan.standalone = rewrite_followup(client, question, history)
        except LLMError as exc:
            plan.errors.append(f"rewrite: {exc}")
    if llm.multi_query > 0:
        try:
            plan.rephrasings = expand_query(client, plan.standalone, llm.multi_query)
        except LLMError as exc:
            plan.errors.append(f"multi-query: {exc}")
    if llm.hyde:
        try:
            plan.hyde_passage = hypothetical_answer(client, plan.standalone) or None
        except LLMError as exc:
            plan.errors.append(f"hyde: {exc}")
    return plan
