"""docs/extending.md's examples work as written: a new format and a new LLM engine, each one module plus a
registration line."""

from __future__ import annotations

import io
import zipfile

from conftest import make_settings
from tecorag.generate.factory import LLM_ENGINES, build_llm_client
from tecorag.ingest.loaders import LOADERS, DocumentLoader, Outline
from tecorag.types import Message


def load_epub(filename: str, data: bytes):
    outline = Outline(filename)
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        for name in sorted(n for n in book.namelist() if n.endswith(".xhtml")):
            outline.add_text(book.read(name).decode("utf-8"))
    return outline.finish()


class EchoClient:
    engine, address = "echo", "local"

    def stream_chat(self, messages, max_new_tokens=None):
        yield messages[-1].content

    def complete(self, messages, max_new_tokens=None):
        return "".join(self.stream_chat(messages))

    def check(self):
        pass


def test_a_new_format_is_one_function_and_one_registration_line():
    LOADERS.register(".epub", load_epub)
    try:
        book = io.BytesIO()
        with zipfile.ZipFile(book, "w") as archive:
            archive.writestr("ch1.xhtml", "第一章：安装 TecoDriver。")
        sections = DocumentLoader().load("手册.epub", book.getvalue())
        assert [section.text for section in sections] == ["第一章：安装 TecoDriver。"]
    finally:
        LOADERS._entries.pop(".epub")


def test_a_new_llm_engine_is_accepted_by_settings_once_registered(tmp_path):
    LLM_ENGINES.register("echo", lambda llm, tokenizer=None: EchoClient())
    try:
        settings = make_settings(tmp_path, llm={"model_engine": "echo"})
        client = build_llm_client(settings)
        assert isinstance(client, EchoClient)
        assert client.complete([Message("user", "你好")]) == "你好"
    finally:
        LLM_ENGINES._entries.pop("echo")
