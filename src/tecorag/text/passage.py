"""A retrieved passage as the structure the loaders and the splitter left in it: the units an answer is made of.

What the text carries, and who put it there:
- a table chunk is the loader's `table_text`: the header row ("参数名称 | 类型 | 默认值"), then one line per
  row with every value labelled by its column ("参数名称: port；类型: str；默认值: 7861"); the splitter
  starts every table chunk with the header row;
- the Markdown loader keeps the fence lines of code blocks (```bash ... ```), so code is known as code;
- list items keep their marker ("- ", "1. "), one per line;
- headings are not in the text: they are the chunk's heading path, which the answerer scores as context.

Units: the sentences of prose, each list item, each code line, each table row (the header row is never a
unit). A unit that introduces something (ends in ：/:, or says 如下/以下/包括, at the end of its paragraph)
carries the list, code or table rows that follow it; a code comment carries the code lines under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SENTENCE = re.compile(r"[^。！？!?；;\n]*(?:[。！？!?；;\n]+[”’」』）)\"']*|$)")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+#.-]*)")
LIST_MARKER = re.compile(r"^(\s*)(?:([-*+•])\s+|(\d{1,2})(?:[.)]\s+|、\s*)|([a-zA-Z])[.)]\s+|[（(](\d{1,2})[)）]\s*)")
INTRODUCING = re.compile(r"(?:[:：]\s*$|如下|以下|包括)")
FORWARD = re.compile(r"如下|以下")      # says outright that what it introduces comes next
NOTE_CHARS = 100
CODE_COMMENT = re.compile(r"^\s*(?:#(?!include|define|if|endif|pragma|!)|//|--\s|;;)")
CJK = re.compile(r"[\u4e00-\u9fff]")
# A file-tree line: it starts with a box-drawing character (│ ├── └──) or is a lone directory name ("teco/").
TREE_LINE = re.compile(r"^\s*(?:[\u2500-\u257f]|[\w.-]+/\s*$)")

# Markdown inline syntax rendered to plain text. Inline code is cut out first and kept as written: the
# emphasis rules must not eat the underscores of `__global__`.
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Only real HTML elements: "<host>" and "<env_name>" in the documents are placeholders, not tags.
HTML_TAG = re.compile(r"</?(?:div|img|span|p|a|b|i|u|strong|em|sup|sub|font|center|table|thead|tbody|tr|td|th"
                      r"|ul|ol|li|details|summary|code|pre|hr|br)\b[^>]*>", re.IGNORECASE)
STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
EMPHASIS = re.compile(r"(?<![A-Za-z0-9*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![A-Za-z0-9*])")
ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
MARKUP = re.compile(r"[`*_\[\]<\\]")
HELD = re.compile(r"\x00(\d+)\x00")
LINK_COMMENT = re.compile(r"^\s*\[//\]:\s*#.*$")
BLOCKQUOTE = re.compile(r"^\s*>\s?")


def render_markdown(text: str) -> str:
    """Markdown inline syntax as plain text: links and images to their text, emphasis and HTML tags dropped,
    escapes resolved; inline code kept (as `code`, single backticks)."""
    if not MARKUP.search(text):
        return text
    codes: list[str] = []

    def hold(match: re.Match) -> str:
        codes.append(f"`{match.group(2).strip()}`")
        return f"\x00{len(codes) - 1}\x00"

    # Code spans are held out while the rest is rendered ("**`x`**" is bold code), then put back as written.
    prose = _render_prose(INLINE_CODE.sub(hold, text))
    return HELD.sub(lambda match: codes[int(match.group(1))], prose)


def _render_prose(text: str) -> str:
    text = IMAGE.sub(lambda match: match.group(1), text)
    text = LINK.sub(lambda match: match.group(1), text)
    text = HTML_BREAK.sub(" ", text)
    text = HTML_TAG.sub("", text)
    text = STRONG.sub(lambda match: match.group(2), text)
    text = EMPHASIS.sub(lambda match: match.group(1), text)
    return ESCAPED.sub(lambda match: match.group(1), text)


def answer_sentences(text: str) -> list[str]:
    """Sentences ending at 。！？；, newline (with closing quotes kept); empty pieces dropped."""
    return [match.group(0) for match in SENTENCE.finditer(text) if match.group(0).strip()]


@dataclass(frozen=True)
class Block:
    kind: str                       # "text" | "list" | "code" | "table"
    lines: tuple[str, ...]          # table: header first; list: items without their markers


@dataclass(frozen=True)
class Unit:
    """One candidate answer unit of a passage."""

    kind: str                       # "sentence" | "item" | "code" | "row"
    text: str                       # rendered plain text (a code line as written)
    block: int                      # index of its block in the passage
    carries: tuple[str, ...] = ()   # what it introduces: following items, code lines or table rows
    carries_kind: str = ""          # the kind of block it introduces: "list", "code" or "table"
    comment: bool = False           # a code comment line
    header: tuple[str, ...] = ()    # a table row, or a unit carrying table rows: the column names
    introduced: bool = False        # a code line that a sentence, item or comment before it carries


def table_header(text: str) -> tuple[str, ...] | None:
    """The column names when `text` is a table chunk as the loader writes it (see the module docstring)."""
    lines = text.split("\n")
    if len(lines) < 2 or (" | " not in lines[0] and not lines[1].startswith(lines[0].strip() + ": ")):
        return None
    names = tuple(name.strip() for name in lines[0].split(" | "))
    if not all(names):
        return None
    prefixes = tuple(f"{name}: " for name in names)
    rows = [line for line in lines[1:] if line.strip()]
    if not rows or not all(any(cell.startswith(prefixes) for cell in row.split("；")[:1]) for row in rows):
        return None
    return names


def row_cells(row: str, header: tuple[str, ...]) -> list[tuple[str, str]]:
    """A table row line ("名: 值；名: 值") as (column name, value) pairs; a "；" inside a value stays there."""
    cells: list[tuple[str, str]] = []
    for piece in row.split("；"):
        name, separator, value = piece.partition(": ")
        if separator and name in header:
            cells.append((name, value))
        elif cells:
            cells[-1] = (cells[-1][0], f"{cells[-1][1]}；{piece}")
        else:
            cells.append(("", piece))
    return cells


def _starts_in_code(lines: list[str]) -> bool:
    """Whether the passage begins inside a code block (the splitter cut one): the fences do not pair up,
    and the first one closes a block rather than opening one."""
    fences = [index for index, line in enumerate(lines) if FENCE.match(line)]
    if len(fences) % 2 == 0:
        return False
    if FENCE.match(lines[fences[0]]).group(2):        # "```bash" always opens
        return False
    if FENCE.match(lines[fences[-1]]).group(2):       # the last one opens, so the first one closes
        return True
    before = "\n".join(lines[:fences[0]]).strip()
    return not (CJK.search(before) and before.endswith((":", "：")))


def parse_blocks(text: str) -> list[Block]:
    """The passage's blocks in order: prose paragraphs, lists, code blocks, a table."""
    header = table_header(text)
    if header is not None:
        lines = [line for line in text.split("\n") if line.strip()]
        return [Block("table", (lines[0], *lines[1:]))]
    before, blank, last = text.rpartition("\n\n")
    if blank and table_header(last) is not None:
        # A passage continued by the table chunk it introduces (retrieve/hybrid.py: continue_introductions).
        return [*parse_blocks(before), *parse_blocks(last)]
    lines = text.split("\n")
    blocks: list[Block] = []
    kind, current, indent, marker = "", [], -1, ""

    def flush() -> None:
        nonlocal kind, current
        if kind == "code" or any(line.strip() for line in current):
            blocks.append(Block(kind, tuple(_dedent(current) if kind == "code" else current)))
        kind, current = "", []

    in_code = _starts_in_code(lines)
    if in_code:
        kind = "code"
    for line in lines:
        if in_code:
            if FENCE.match(line):
                flush()
                in_code = False
            elif line.strip():
                current.append(line.rstrip())
            continue
        if FENCE.match(line):
            flush()
            kind, in_code = "code", True
            continue
        if not line.strip() or LINK_COMMENT.match(line):
            if kind == "text":
                flush()
            continue
        if TREE_LINE.match(line):
            # A file tree or box drawing whose code fence is in another chunk: code, not prose.
            if kind != "code":
                flush()
                kind = "code"
            current.append(line.rstrip())
            continue
        line = BLOCKQUOTE.sub("", line)
        item = LIST_MARKER.match(line)
        if item:
            item_marker = "-" if item.group(2) else "1"
            item_indent = len(item.group(1))
            if kind != "list" or (item_indent, item_marker) != (indent, marker):
                flush()
                kind, indent, marker = "list", item_indent, item_marker
            current.append(line[item.end():].strip())
            continue
        if kind == "list" and line.startswith(" ") and current:
            current[-1] = f"{current[-1]}{line.strip()}"  # an item's continuation line
            continue
        if kind != "text":
            flush()
            kind = "text"
        current.append(line.strip())
    flush()
    return [block for block in blocks if block.lines]


def _dedent(lines: list[str]) -> list[str]:
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return [line[indent:] for line in lines]


def _introduces(text: str) -> bool:
    return INTRODUCING.search(text.strip()) is not None


def passage_units(text: str) -> list[Unit]:
    """Every answer unit of a passage, in reading order (see the module docstring)."""
    blocks = parse_blocks(text)
    units: list[Unit] = []
    introduced_blocks: set[int] = set()    # code blocks that a unit before them carries
    for number, block in enumerate(blocks):
        following_number = _following(blocks, number)
        following = None if following_number is None else blocks[following_number]
        carried_kind, carried = _carried(following)
        first_unit = len(units)
        carried_header = _column_names(following) if carried_kind == "table" else ()
        if block.kind == "table":
            units.extend(Unit("row", render_markdown(row), number, header=_column_names(block))
                         for row in block.lines[1:])
        elif block.kind == "code":
            under_comment = False
            for position, line in enumerate(block.lines):
                if CODE_COMMENT.match(line):
                    under_comment = True
                    under = []
                    for later in block.lines[position + 1:]:
                        if CODE_COMMENT.match(later):
                            break
                        under.append(later)
                    units.append(Unit("code", line.strip(), number, carries=tuple(under), carries_kind="code",
                                      comment=True))
                else:
                    units.append(Unit("code", line.strip(), number,
                                      introduced=under_comment or number in introduced_blocks))
        elif block.kind == "list":
            for position, item in enumerate(block.lines):
                rendered = render_markdown(item)
                last = position == len(block.lines) - 1
                # An item that ends in a colon introduces the code or list nested under it (the next block).
                carries = carried if rendered.strip().endswith((":", "：")) or (last and _introduces(rendered)) \
                    else ()
                units.append(Unit("item", rendered, number, carries=carries,
                                  carries_kind=carried_kind if carries else "",
                                  header=carried_header if carries else ()))
        else:
            sentences = answer_sentences(render_markdown("\n".join(block.lines)))
            for position, sentence in enumerate(sentences):
                last = position == len(sentences) - 1
                carries = carried if last and _introduces(sentence) else ()
                units.append(Unit("sentence", sentence, number, carries=carries,
                                  carries_kind=carried_kind if carries else "",
                                  header=carried_header if carries else ()))
        # A code block's own comments carry lines of their block, never the next one.
        if block.kind != "code" and carried_kind == "code" and any(unit.carries for unit in units[first_unit:]):
            introduced_blocks.add(following_number)
    return units


def _column_names(table: Block) -> tuple[str, ...]:
    return tuple(name.strip() for name in table.lines[0].split(" | "))


def introduces_next(text: str) -> bool:
    """Whether the last line of `text` says that something follows it: it ends in a colon or says 如下/以下."""
    lines = text.strip().splitlines()
    return bool(lines) and (lines[-1].endswith((":", "：")) or FORWARD.search(lines[-1]) is not None)


def _following(blocks: list[Block], number: int) -> int | None:
    """The number of the block an introducing unit at the end of blocks[number] introduces: the next one, or the
    one after a short note in between ("执行以下命令。" / "**说明**：…" / the command)."""
    if number + 1 >= len(blocks):
        return None
    following = blocks[number + 1]
    if following.kind == "text" and len("".join(following.lines)) <= NOTE_CHARS and number + 2 < len(blocks) \
            and blocks[number + 2].kind != "text" and FORWARD.search(blocks[number].lines[-1]):
        return number + 2
    return number + 1


def _carried(block: Block | None) -> tuple[str, tuple[str, ...]]:
    """What an introducing unit before `block` carries: its kind and lines (rendered; code as written)."""
    if block is None or block.kind == "text":
        return "", ()
    if block.kind == "table":
        return "table", tuple(render_markdown(row) for row in block.lines[1:])
    if block.kind == "list":
        return "list", tuple(render_markdown(item) for item in block.lines)
    return "code", block.lines
