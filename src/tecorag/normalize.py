"""One text normalisation for matching, used at indexing (a chunk's index_text, embedded and BM25-indexed)
and at question time (the question, before it is embedded or searched, and inside the extractive answerer).
Citations keep the raw text.

It is NFKC except where NFKC would change what a Chinese reader sees or means:
- Kangxi radicals and CJK compatibility ideographs become the ordinary characters (U+2F45 ⽅ -> 方): PDF
  text layers are full of them, and neither jieba nor the embedder matches them otherwise;
- full-width letters, digits and the ideographic space become ASCII (Ｐｙｔｈｏｎ３ -> Python3);
- full-width symbols used in code, paths and numbers become ASCII (．／－＿＝ -> . / - _ =), but the
  full-width Chinese punctuation (，：；（）！？～ and the quotes) is kept: it is the normal form in Chinese
  text, and turning it into ASCII gains no match (punctuation is not matched) while it changes how answers read;
- superscripts and subscripts (m², H₂O), circled numbers (①), squared units (㎡) and the ellipsis are kept:
  NFKC would turn m² into m2 or ① into 1, which changes the meaning.
Zero-width spaces and byte-order marks are dropped.
"""

from __future__ import annotations

import unicodedata

_KEPT_RANGES = (
    (0x00B2, 0x00B3), (0x00B9, 0x00B9), (0x00BC, 0x00BE),   # ² ³ ¹ ¼ ½ ¾
    (0x2026, 0x2026),                                        # …
    (0x2070, 0x209F),                                        # superscripts and subscripts
    (0x2150, 0x218F),                                        # number forms (⅓, Ⅳ)
    (0x2460, 0x24FF),                                        # circled and parenthesised numbers
    (0x3200, 0x33FF),                                        # enclosed CJK, squared units (㎡ ㎏)
    (0xFE10, 0xFE6F),                                        # vertical and small forms of punctuation
    (0xFF01, 0xFF02), (0xFF07, 0xFF09), (0xFF0C, 0xFF0C),   # ！ ＂ ＇ （ ） ，
    (0xFF1A, 0xFF1B), (0xFF1F, 0xFF1F), (0xFF5E, 0xFF5E),   # ： ； ？ ～
    (0xFFE0, 0xFFEE),                                        # ￥ ￡ and half-width symbols
)
_DROPPED = "\u200b\u200c\u200d\u2060\ufeff"


def _kept(code: int) -> bool:
    return any(low <= code <= high for low, high in _KEPT_RANGES)


class _MatchingForms(dict):
    """The str.translate table of normalize_text, filled on demand: a character's entry is made the first time
    it is seen (making all ~5,000 entries up front cost every process ~0.1 s at its first question). Each entry
    is NFKC's form of that one character, or the character itself where it is kept or NFKC leaves it alone."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char in _DROPPED:
            mapped = ""
        elif _kept(code):
            mapped = char
        else:
            mapped = unicodedata.normalize("NFKC", char)
        self[code] = mapped
        return mapped


_MATCHING_FORMS = _MatchingForms()


def normalize_text(text: str) -> str:
    """The matching form of `text` (see the module docstring); idempotent."""
    text = text.translate(_MATCHING_FORMS)
    # Composed forms (e + combining acute -> é): the per-character table cannot see sequences.
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
