"""The model's own tokenizer, loaded from a local model directory, and incremental detokenization.

Two on-disk formats are supported:
- `qwen.tiktoken` (Qwen-7B-Chat): base64 token + rank per line, read with tiktoken and Qwen's
  pre-tokenizer pattern and special tokens (`<|endoftext|>` = 151643, `<|im_start|>`, `<|im_end|>`, extras);
- `tokenizer.json` (newer models): read with the `tokenizers` library.

Streaming token ids one at a time means a token can end in the middle of a multi-byte UTF-8 character;
`Detokenizer` never emits such a partial character (no U+FFFD at a stream boundary).
"""

from __future__ import annotations

import base64
import codecs
import math
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError

if TYPE_CHECKING:   # both are imported when a tokenizer is loaded: the `triton` extra brings them
    import tiktoken
    import tokenizers

QWEN_TIKTOKEN_FILE = "qwen.tiktoken"
HF_TOKENIZER_FILE = "tokenizer.json"

# From Qwen's tokenization_qwen.py: the pre-tokenizer regex and the special tokens at fixed ids.
QWEN_PAT_STR = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_START_ID = 151643
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    ("<|endoftext|>", "<|im_start|>", "<|im_end|>") + tuple(f"<|extra_{i}|>" for i in range(205))
)

REPLACEMENT_CHAR = "\ufffd"


class Detokenizer(Protocol):
    """Turns a stream of token ids into text pieces, holding back incomplete characters."""

    def push(self, token_ids: Iterable[int]) -> str:
        """Add ids; return the text that is now complete (may be empty)."""
        ...

    def finish(self) -> str:
        """End of stream: return what is left, dropping an incomplete trailing character."""
        ...


class Tokenizer(Protocol):
    """What the Triton engine and the context packer need from a model's tokenizer."""

    name: str

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt; special-token strings (e.g. `<|im_start|>`) become their special ids."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        ...

    def count(self, text: str) -> int:
        """How many tokens `text` takes as ordinary text (special-token strings not treated specially)."""
        ...

    def detokenizer(self) -> Detokenizer:
        """A fresh incremental detokenizer for one stream."""
        ...


class ByteDetokenizer:
    """Incremental detokenizer for byte-level vocabularies (tiktoken): token bytes go through an
    incremental UTF-8 decoder, which keeps an incomplete trailing sequence until the next bytes arrive."""

    def __init__(self, token_bytes: tiktoken.Encoding):
        self._encoding = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_ids: Iterable[int]) -> str:
        data = b"".join(self._encoding.decode_single_token_bytes(token_id) for token_id in token_ids)
        return self._utf8.decode(data, final=False)

    def finish(self) -> str:
        # Bytes still buffered are an incomplete character cut off by the end of generation: drop them.
        self._utf8.reset()
        return ""


class OffsetDetokenizer:
    """Incremental detokenizer for any `tokenizers` tokenizer: re-decode a short window of recent ids
    and emit only the new suffix, and only once it no longer ends in a replacement character
    (the same approach as text-generation-inference and vLLM)."""

    def __init__(self, tokenizer: tokenizers.Tokenizer):
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix_offset = 0    # start of the window re-decoded for context
        self._read_offset = 0      # ids before this have been emitted

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)

    def push(self, token_ids: Iterable[int]) -> str:
        self._ids.extend(token_ids)
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset:])
        if len(full_text) > len(prefix_text) and not full_text.endswith(REPLACEMENT_CHAR):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return full_text[len(prefix_text):]
        return ""

    def finish(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset:])
        self._prefix_offset = self._read_offset = len(self._ids)
        return full_text[len(prefix_text):].rstrip(REPLACEMENT_CHAR)


class TiktokenTokenizer:
    """A tiktoken encoding (Qwen's `qwen.tiktoken` plus its special tokens)."""

    def __init__(self, encoding: tiktoken.Encoding, normalize_nfc: bool = True):
        self.name = encoding.name
        self._encoding = encoding
        self._normalize_nfc = normalize_nfc

    @property
    def encoding(self) -> tiktoken.Encoding:
        return self._encoding

    def _normalize(self, text: str) -> str:
        return unicodedata.normalize("NFC", text) if self._normalize_nfc else text

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode(self._normalize(text), allowed_special="all")

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._encoding.decode(list(token_ids), errors="replace")

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(self._normalize(text)))

    def detokenizer(self) -> ByteDetokenizer:
        return ByteDetokenizer(self._encoding)


class HFTokenizer:
    """A `tokenizers` tokenizer read from `tokenizer.json`."""

    def __init__(self, tokenizer: tokenizers.Tokenizer, name: str = "tokenizer.json"):
        self.name = name
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def detokenizer(self) -> OffsetDetokenizer:
        return OffsetDetokenizer(self._tokenizer)


def read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Parse a `.tiktoken` file: one `base64(token) rank` pair per line."""
    ranks: dict[bytes, int] = {}
    for line_number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token_b64, rank = line.split()
            ranks[base64.b64decode(token_b64)] = int(rank)
        except ValueError as exc:
            raise ConfigError(f"{path}: line {line_number} is not 'base64-token rank'") from exc
    if not ranks:
        raise ConfigError(f"{path}: no tokens")
    return ranks


def load_qwen_tiktoken(path: Path) -> TiktokenTokenizer:
    tiktoken = _import_tokenizer_library("tiktoken")
    ranks = read_tiktoken_ranks(path)
    special_tokens = {token: QWEN_SPECIAL_START_ID + i for i, token in enumerate(QWEN_SPECIAL_TOKENS)}
    encoding = tiktoken.Encoding(
        name=f"qwen:{path}", pat_str=QWEN_PAT_STR, mergeable_ranks=ranks, special_tokens=special_tokens,
    )
    return TiktokenTokenizer(encoding)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load the model's tokenizer from a model directory (or the tokenizer file itself)."""
    path = Path(path).expanduser()
    candidates = [path] if path.is_file() else [path / QWEN_TIKTOKEN_FILE, path / HF_TOKENIZER_FILE]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if candidate.name.endswith(".tiktoken"):
            return load_qwen_tiktoken(candidate)
        if candidate.suffix == ".json":
            try:
                library = _import_tokenizer_library("tokenizers")
                return HFTokenizer(library.Tokenizer.from_file(str(candidate)), name=str(candidate))
            except ConfigError:
                raise
            except Exception as exc:  # the tokenizers library raises plain Exception on bad files
                raise ConfigError(f"{candidate}: not a valid tokenizer.json: {exc}") from exc
    raise ConfigError(
        f"no tokenizer found at {path}: expected a model directory with {QWEN_TIKTOKEN_FILE} "
        f"or {HF_TOKENIZER_FILE} (set llm.tokenizer_path / APP_LLM_TOKENIZER_PATH)"
    )


def _import_tokenizer_library(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"loading the model's tokenizer needs {name}: pip install 'tecorag[triton]'") from error


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF
            or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF or 0x20000 <= code <= 0x2FA1F)


def estimate_tokens(text: str) -> int:
    """Token count without a tokenizer: one per CJK character (an over-estimate for Qwen, which is the
    safe side for a budget) plus one per four other non-space characters."""
    cjk = sum(1 for char in text if _is_cjk(char))
    other = sum(1 for char in text if not char.isspace() and not _is_cjk(char))
    return cjk + math.ceil(other / 4)
