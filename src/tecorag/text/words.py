"""Question words and their IDF, without paying for Python jieba's tables on every start.

The extractive answerer weighs a question's jieba words by jieba's IDF. Python jieba's tokenizer unmarshals a
500k-entry prefix dictionary on first use (0.5–0.8 s on 2 cores) and `jieba.analyse` parses its 270k-line IDF
table on import (0.6 s): most of a cold `tecorag ask`. Here:

- words come from jieba-rs (`rjieba`, the same dictionary and algorithm, loaded in ~0.15 s; it is also the
  tokenizer Milvus's BM25 analyzer runs). jieba-rs keeps Latin runs such as "Teco-RAG" or "rt_spm_malloc" whole
  where Python jieba cuts them at punctuation; `cut` cuts them the same way, so the words are Python jieba's:
  on the 3,385 questions of benchmarks/teco_qa.json and CMRC 2018 dev, one question differs ("可当" vs "可"+"当").
- an IDF is looked up by bisection in a sorted copy of jieba's own idf.txt, read as bytes (10 ms), instead of
  parsing the whole table into a dict.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

# jieba.analyse's defaults, copied so that neither its module nor its table is loaded (tests/text/test_words.py
# checks both against jieba): the median of idf.txt, given to words the table does not know, and its stop words.
MEDIAN_IDF = 11.9547675029
STOP_WORDS = frozenset((
    "all", "an", "and", "are", "as", "at", "be", "by", "can", "for", "from", "has", "have", "if", "in", "is", "it",
    "not", "of", "on", "one", "or", "that", "the", "then", "this", "to", "we", "which", "with", "you",
))

# Python jieba's cut of a Latin run: letters and digits together (one decimal part and a trailing % kept whole:
# "1.4", "10%", but "1.0.0" as "1.0" "." "0"), every other character alone. A run of punctuation only is a word of
# jieba's dictionary ("--", "...", "&&") and stays whole in both, as do its language names ("C++", "C#").
_LATIN_PIECES = re.compile(r"[A-Za-z0-9]+(?:\.[0-9]+)?%?|[^A-Za-z0-9]")
_WHOLE_WORD = re.compile(r"[^A-Za-z0-9]+|[A-Za-z][+#]+")


def load() -> None:
    """Load the tokenizer and the IDF table now rather than at the first question (~0.15 s)."""
    import rjieba  # noqa: F401

    _idf_table()


def cut(text: str) -> list[str]:
    """jieba's words of `text`, in order (punctuation and spaces included, as jieba.lcut gives them)."""
    import rjieba

    return [piece for word in rjieba.cut(text)
            for piece in (_LATIN_PIECES.findall(word) if word.isascii() and len(word) > 1
                          and not _WHOLE_WORD.fullmatch(word) else (word,))]


def tag(text: str) -> list[tuple[str, str]]:
    """jieba's words of `text` with their part-of-speech tags ("nr" a person's name, "ns" a place's, "nt" an
    organisation's, "eng" a Latin run)."""
    import rjieba

    return rjieba.tag(text)


def idf(word: str) -> float:
    """jieba's IDF of `word`; MEDIAN_IDF for a word its table does not hold."""
    if not word or any(char.isspace() for char in word):
        return MEDIAN_IDF
    table, key = _idf_table(), word.encode("utf-8")
    low, high = 0, len(table)             # the line of `key`, if any, starts in [low, high); both are line starts
    while low < high:
        start = table.rfind(b"\n", 0, (low + high) // 2) + 1      # the line holding the middle byte
        end = table.index(b"\n", start)
        line_key, _, value = table[start:end].partition(b" ")
        if line_key == key:
            return float(value)
        if key < line_key:
            high = start
        else:
            low = end + 1
    return MEDIAN_IDF


@lru_cache(maxsize=1)
def _idf_table() -> bytes:
    """jieba's idf.txt ("word idf" lines) sorted by word, so that a word is found by bisection (~20 µs; a scan of
    the 6 MB table took 2 ms per word). The sorted copy is made once per machine, like jieba's own cache, in the
    temporary directory (0.3 s), then read in 10 ms."""
    spec = importlib.util.find_spec("jieba")     # finds the package without importing it (and its tables)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("jieba is missing: pip install 'jieba>=0.42,<0.43'")
    source = Path(next(iter(spec.submodule_search_locations))) / "analyse" / "idf.txt"
    stat = source.stat()
    cached = Path(tempfile.gettempdir()) / f"tecorag-jieba-idf-{stat.st_size}-{stat.st_mtime_ns}.txt"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    # Whole lines sort like their words: the space after a word sorts below every byte a word holds.
    table = b"\n".join(sorted(line for line in source.read_bytes().splitlines() if line.strip())) + b"\n"
    try:
        partial = cached.with_name(f"{cached.name}.{os.getpid()}")
        partial.write_bytes(table)
        os.replace(partial, cached)
    except OSError:
        pass                                     # an unwritable temporary directory: sort again next time
    return table
