"""What a question asks, and how much of it a passage holds: shared by retrieval (the coverage reranker) and the
extractive answerer, so that both read a question the same way.

A QuestionProfile holds a question's words (jieba, with IDF), its key characters and bigrams, its subject (the words
a passage answering it must mention), and the kind of thing it asks for (a port, version, date, path, web address,
command, person, place or number: ASKED_TYPES); TYPE_CUES say what a text holding each kind looks like. A passage
is read as its file name, heading path and plain text (passage_context), and `coverage` is the weighted share of
the question it holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..normalize import normalize_text
from ..types import Chunk, Hit
from . import words as jieba_words
from .passage import render_markdown

NOT_CONTENT = re.compile(r"[\s\W_]", re.UNICODE)
TITLE_SUFFIX = re.compile(r"(-\d+)?\.[A-Za-z0-9]+$")

# Question words, tried in this order: a longer form before its parts ("为什么" before "什么").
QUESTION_WORDS = (
    "什么时候", "为什么", "哪一年", "哪一天", "哪个", "哪些", "哪里", "哪儿", "哪位", "哪年", "哪国", "哪种", "哪座",
    "哪一", "什么", "多少", "多久", "多长", "多大", "多高", "多远", "多重", "为何", "如何", "怎样", "怎么",
    "何时", "何地", "何处", "何人", "是谁", "谁", "几", "哪", "何", "吗",
)
FUNCTION_CHARS = frozenset("的了是在和与及或被把对为于也都而之其中这那有一个吗呢么什哪谁几多少何")
TIME_QUESTION = re.compile(r"何时|什么时候|哪一?年|哪个年|哪一?天|几月|几号|几日|朝代|年代|时期|年间|日期|时间|年份|几年|多少年|时候")
NUMBER_QUESTION = re.compile(r"多少|几|多大|多高|多长|多远|多重|多久|多快|数量|人口|面积|第几|比例|百分")
PERSON_QUESTION = re.compile(r"谁|哪位|何人|什么人|哪个人|哪些人")
PLACE_QUESTION = re.compile(r"哪里|哪儿|何处|何地|哪个国家|哪国|什么地方|哪个城市|哪座|哪个地区|哪个省|位于|在哪")
PLACE_CUE = re.compile(r"[省市县区州国镇村岛山河湖江海湾港城]|位于|地区")

# What a question asks for, for the answer-type check; tried in this order ("端口是多少" asks for a port).
ASKED_TYPES = (
    ("port", re.compile(r"端口|\bport\b", re.IGNORECASE)),
    ("version", re.compile(r"版本号|(?:哪个|哪一|什么|最低|最新|最高|当前)(?:[^，,。？?\s]{0,2}|\s*[A-Za-z0-9.+-]+\s*)版本|版本(?:是|为|要求|至少|不低于|最低)")),
    ("date", re.compile(r"哪一?年|何年|哪一天|何时|什么时候|几月|几号|日期|年份|哪[一个]?(?:时期|时代|朝代|年代)")),
    ("path", re.compile(r"路径|目录|文件夹")),
    ("url", re.compile(r"网址|链接|\burl\b|(?:访问|ip|服务|请求|接口|哪个|什么)地址", re.IGNORECASE)),
    ("command", re.compile(r"命令|指令")),
    ("person", re.compile(r"谁|哪位|何人")),
    ("place", re.compile(r"哪里|哪儿|何处|何地|哪个(?:国家|城市|省|地区)|哪国|哪座|位于|在哪")),
    ("number", re.compile(r"多少|(?<!哪)几[个位次种条项名年天岁倍]|多大|多长|多高|多远|多重|多久|上限|下限|最大值|最小值|数量|比例")),
)

# Words that ask for a thing (not "如何", "为什么": those ask for a way or a reason), and how many characters away
# from one a kind must be named to be what is asked ("端口号是多少", "哪个具体版本", "连接端口填的是多少").
ASKING_HOW = re.compile(r"为什么|为何|如何|怎样|怎么|吗")
ASKING = re.compile("|".join(word for word in QUESTION_WORDS if not ASKING_HOW.fullmatch(word)))
ASKED_TYPE_REACH = 8
# "哪些子目录", "哪几类示例文件夹" ask for the names of several folders, not for a path.
NAMES_ASKED = re.compile(r"哪些|哪几")
# After a question word: a measure word or 一, then a noun (not a function word, not punctuation).
NAMES_WHAT_IT_ASKS = re.compile(r"[个种些位条项类款一]*\s*[\u4e00-\u9fff](?<![的了是在和与呢吗啊呀])")

# Any written quantity, for the refusal check: digits, or Chinese numerals ("五百元", "十个工作日", "满一年").
# Broader than extractive.NUMBER_CUE (a fitted scoring feature, kept as it was fitted): refusing "每晚不超过五百元"
# because 元 is not a listed measure word would be a false refusal, and a false refusal costs more than a weak answer.
NUMBER_IN_TEXT = re.compile(r"\d|[零〇二两三四五六七八九十百千万亿]|一[个位名种次人只座条项部家所米倍岁年元块天日周月时分秒页台张本篇章节层级成]")

# A point in time written as one, for the refusal check: a year, month, day, century, era, dynasty ("宋代"), age
# ("战国时代", "中元古代"), season, clock time ("5时30分"), a person's age ("满15岁"). Stricter than
# extractive.TIME_CUE (a fitted scoring feature, kept as it was fitted), whose "之后", "以前", "当时" are in
# passages about anything.
DATE_IN_TEXT = re.compile(r"\d{1,4}\s*年|\d{1,2}\s*月|\d{1,2}\s*[日号]|[〇零一二三四五六七八九十百]+年|世纪|年代|时代|古代|时期|朝"
                          r"|[初末中晚早前后]期|[宋唐元明清汉晋隋秦周商夏]代|[春夏秋冬]季|\d{1,2}\s*[时点]"
                          r"|\d{1,2}:\d{2}|(?<!\d)\d{4}(?!\d)|\d{1,3}\s*岁")
WEB_ADDRESS = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|\d+\.\d+\.\d+\.\d+(?::\d+)?")

# What a text holding each kind looks like; a command is also known by the unit itself (extractive.has_asked_type).
TYPE_CUES = {
    "port": re.compile(r"(?<![\d.])\d{2,5}(?![\d.])"),
    "version": re.compile(r"\d+\.\d+|\b[vV]\d"),
    "date": DATE_IN_TEXT,
    # A directory or file path: a slash next to a name ("api/tecoops", "/usr/local", "~/.cache"); web addresses
    # are taken out first (text_holds_type) and a bare file name ("libsdaart.so") says no directory.
    "path": re.compile(r"[\w.~<>${}-][/\\][\w<>.${}-]|(?<![\w.])[/\\][\w<>.${}-]"),
    "url": WEB_ADDRESS,
    "place": PLACE_CUE,
    "number": NUMBER_IN_TEXT,
}

# Types whose cue is reliable enough to choose by: only units holding one may answer. For the others (a place,
# a person, a number written "八成") the cue only decides whether to answer at all.
MASKED_TYPES = frozenset({"port", "version", "path", "url", "command"})

# Subject words weigh their IDF less this floor: the commonest words ("如果" 4.0, "使用" 4.5 in jieba's table) say
# little about what the question is about ("如果不修改配置，…默认使用哪个端口"). Chosen on the tune half of
# benchmarks/teco_qa.json; CMRC dev's first half moves by one question either way.
SUBJECT_IDF_FLOOR = 3.0
SCRIPT_RUN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]+")
ASCII_TOKEN = re.compile(r"[a-z0-9]+")
CODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+")
LIST_BREAK = re.compile(r"[、，,；;（）()：:/]")
COMMAND_START = re.compile(r"(?:^|\s)(?:\$\s*)?(?:python3?|pip3?|bash|sh|cd|export|git|conda|docker|make|cmake|source"
                           r"|sudo|apt(?:-get)?|yum|curl|wget|\./[\w.-]+)\s")

# Words that name the asked type rather than the question's subject: they are not required in the passage.
TYPE_WORDS = frozenset({"端口", "端口号", "版本", "版本号", "命令", "指令", "路径", "目录", "文件夹", "地址", "网址", "链接",
                        "多少", "数量", "日期", "时间", "年份", "哪一年", "哪年", "几个", "多大", "多长", "多久"})
# What asks for a value, after what it asks the value of ("密码是什么", "ef 值设为多少", "填的是哪个").
ASKED_VALUE = re.compile(r"(?:是|为|设为|设成|填的是|叫|应该是|取)?(?:什么|多少|哪个|哪一)")
# Words that say which kind of thing is asked, not what it is about: "名字", and the kinds of information prose
# paraphrases ("FIPS代码的含义是什么" is answered by what the code stands for, "含义" unsaid).
GENERIC_WORDS = frozenset({"名字", "名称", "内容", "具体", "要用", "需要", "应该", "默认", "一般", "通常",
                           "含义", "意思", "意义", "作用", "用途", "功能", "目的", "原因", "结果", "特点", "区别",
                           "方法", "方式"})
# Words naming the documentation rather than what it is about ("部署指南示例中…", "调试手册里…"): a passage need not
# say them to be about the subject.
DOCUMENT_WORDS = frozenset({"文档", "手册", "指南", "示例", "例子", "教程", "说明", "介绍", "章节", "部分"})
WANTS_LIST = re.compile(r"哪些|哪几|有什么|包括什么|包含什么|步骤|列举|几种|几类|流程")
WANTS_HOWTO = re.compile(r"如何|怎么|怎样|命令|指令|用什么|执行|运行|启动|安装|编译|构建|导入")
# A leading clause that sets the scene, saying when or on which condition ("用 ONNX helper 构建…的模型时，"): what it
# does ("构建") is not what the question asks for.
SCENE_CLAUSE = re.compile(r"^[^，,？?]+?(?:时|时候|之后|后|之前|前)[，,]")
# Where the defined thing is found: "Teco-RAG 中的", "文档里提到的".
DEFINITION_SCOPE = re.compile(r"^.+?(?:当中|之中|中|里|内)(?:提到|所说|出现)?的")
DEFINITION_OPENING = r"(?:什么是|何为|何谓)"
DEFINITION_ASKED = r"(?:是什么|是指什么|指什么|是干什么的|是做什么的|是什么意思)"
DEFINITION = re.compile(rf"^{DEFINITION_OPENING}\s*(?P<a>.+?)\s*[？?]?$|^(?P<b>.+?)\s*{DEFINITION_ASKED}")
# "X 是什么的缩写" asks what X stands for; "X 的全称是什么" is left alone: prose answers it "X，全称Y".
EXPANSION_ASKED = re.compile(r"缩写|简称")
# The question asks only what X is ("MultiVector 优化是什么") or stands for, not which kind of thing X is ("坡鹿是什么
# 地区特有的一种鹿", "徐晓飞是什么职业"), which a sentence "X是…" answers less surely.
DEFINITION_ONLY = re.compile(
    rf"^{DEFINITION_OPENING}|{DEFINITION_ASKED}(?:的(?:{EXPANSION_ASKED.pattern}))?\s*[呢啊]?\s*[？?]?$")


def content_chars(text: str) -> str:
    return NOT_CONTENT.sub("", text).lower()


def chunk_title(chunk: Chunk) -> str:
    """The heading path, or the file name without its extension and a trailing "-<n>" part number."""
    if chunk.heading_path:
        return " ".join(chunk.heading_path)
    return TITLE_SUFFIX.sub("", chunk.file)


def weighted_pieces(text: str) -> tuple[tuple[str, float], ...]:
    """Latin and digit runs whole (weight 2), Chinese runs as character bigrams (weight 1); see QuestionProfile.pieces."""
    pieces: dict[str, float] = {}
    for run in SCRIPT_RUN.findall(text):
        if run.isascii():
            if len(run) >= 2:
                pieces[run] = 2.0
        else:
            pieces.update((run[i:i + 2], 1.0) for i in range(len(run) - 1))
    return tuple(pieces.items())


@dataclass(frozen=True)
class QuestionProfile:
    """What the features need to know about the question, computed once."""

    text: str

    @cached_property
    def content(self) -> str:
        return content_chars(self.text)

    @cached_property
    def question_word_span(self) -> tuple[int, int] | None:
        for word in QUESTION_WORDS:
            position = self.content.find(word)
            if position >= 0:
                return position, position + len(word)
        return None

    @cached_property
    def key_chars(self) -> str:
        """Question characters that carry meaning: no question words, no function characters."""
        span = self.question_word_span
        text = self.content if span is None else self.content[:span[0]] + " " + self.content[span[1]:]
        return "".join(char if char not in FUNCTION_CHARS else " " for char in text)

    @cached_property
    def bigrams(self) -> tuple[str, ...]:
        pieces = self.key_chars.split()
        return tuple(dict.fromkeys(piece[i:i + 2] for piece in pieces for i in range(len(piece) - 1)))

    @cached_property
    def unigrams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.key_chars.replace(" ", "")))

    @cached_property
    def words(self) -> tuple[tuple[str, float], ...]:
        """jieba words of the question with their jieba IDF, question words and stop words left out."""
        result = []
        for word in dict.fromkeys(jieba_words.cut(self.content)):
            # "哪条", "哪家", "哪部": jieba's words for a question word and its measure word ask, like "哪个".
            if len(word) < 2 or word in QUESTION_WORDS or word.startswith("哪") or word in jieba_words.STOP_WORDS:
                continue
            if all(char in FUNCTION_CHARS for char in word):
                continue
            result.append((word, jieba_words.idf(word)))
        return tuple(result)

    @cached_property
    def left_context(self) -> str:
        span = self.question_word_span
        return "" if span is None else self.content[max(0, span[0] - 4):span[0]]

    @cached_property
    def right_context(self) -> str:
        span = self.question_word_span
        return "" if span is None else self.content[span[1]:span[1] + 4]

    @cached_property
    def near_pieces(self) -> tuple[str, ...]:
        """The two meaningful characters right before and right after the question word."""
        span = self.question_word_span
        if span is None:
            return ()
        before = self.content[:span[0]].rstrip("".join(FUNCTION_CHARS))[-2:]
        after = self.content[span[1]:].lstrip("".join(FUNCTION_CHARS))[:2]
        return tuple(piece for piece in (before, after) if len(piece) == 2)

    @cached_property
    def asked_type(self) -> str | None:
        """The kind of thing the question asks for, for the answer-type check; None for anything else. A kind is
        asked for when it is named next to a word that asks (哪个, 什么, 多少, 几...): "在 SDAAC_examples 目录下，怎样
        编译" names a directory but asks how. Where several are, the nearest: "在项目根目录下，用什么命令构建" asks
        for a command, "在哪个目录下执行该命令" for a directory. A number ("多少") only when nothing else is."""
        # "何" of "如何" asks how; blanked out, positions kept.
        without_how = ASKING_HOW.sub(lambda match: " " * len(match.group()), self.text)
        asking = [(match.start(), match.end()) for match in ASKING.finditer(without_how)]
        imperative = not asking and without_how == self.text

        def distance(span: tuple[int, int]) -> int:
            if imperative:       # no question word ("请给出默认端口"): whatever kind is named is asked for
                return 0
            # A kind named before a question word that a noun follows is not what it asks: "目录里提供了哪些算子"
            # asks for 算子, "默认端口是多少" for the port.
            gaps = [max(0, span[0] - end, start - span[1]) for start, end in asking
                    if span[1] > start or not NAMES_WHAT_IT_ASKS.match(self.text, end)]
            return min(gaps, default=ASKED_TYPE_REACH + 1)

        found = [(name, min(distance(match.span()) for match in pattern.finditer(self.text)))
                 for name, pattern in ASKED_TYPES if pattern.search(self.text)]
        found = [(name, gap) for name, gap in found if gap <= ASKED_TYPE_REACH
                 and not (name == "path" and NAMES_ASKED.search(self.text))]
        named = [item for item in found if item[0] != "number"] or found
        # min keeps the first of equals, so ASKED_TYPES' order breaks ties.
        return min(named, key=lambda item: item[1])[0] if named else None

    @cached_property
    def subject_words(self) -> tuple[tuple[str, float], ...]:
        """The question's words that a passage answering it must mention, without the asked type and the words naming
        the documentation (DOCUMENT_WORDS), each weighing its IDF less SUBJECT_IDF_FLOOR."""
        return tuple((word, max(0.0, weight - SUBJECT_IDF_FLOOR)) for word, weight in self.words
                     if word not in TYPE_WORDS and word not in DOCUMENT_WORDS)

    @cached_property
    def subject_pieces(self) -> tuple[tuple[str, float], ...]:
        """`pieces` without the asked type ("端口", "版本"...)."""
        text = self.key_chars
        for word in TYPE_WORDS:
            text = text.replace(word, " ")
        return weighted_pieces(text)

    @cached_property
    def pieces(self) -> tuple[tuple[str, float], ...]:
        """The question's key characters as weighted pieces: each Latin or digit token whole (weight 2: names like
        "langfuse", "gcc" say most about what is asked), Chinese as character bigrams (weight 1). Robust where
        jieba cuts a question wrongly."""
        return weighted_pieces(self.key_chars)

    @cached_property
    def slot_pieces(self) -> tuple[str, ...]:
        """The two meaningful characters right before and right after the question word, type words left
        out ("Langfuse 默认监听哪个端口" -> "监听"): an answer sits next to them, so a unit answering a typed
        question mentions one of them."""
        span = self.question_word_span
        if span is None:
            return ()
        function = "".join(FUNCTION_CHARS)
        before, after = self.content[:span[0]], self.content[span[1]:]
        for word in TYPE_WORDS:
            before, after = before.replace(word, " "), after.replace(word, " ")
        before = before.rstrip(function + " ").split(" ")[-1][-2:]
        after = after.lstrip(function + " ").split(" ")[0][:2]
        return tuple(piece for piece in (before, after) if len(piece) == 2 and not piece.isascii())

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Latin and digit tokens of the question ("topk", "404", "model_engine" as "modelengine"); a list
        ("add、gemm") gives one token per item."""
        return tuple(dict.fromkeys(token for part in LIST_BREAK.split(self.text)
                                   for token in ASCII_TOKEN.findall(content_chars(part)) if len(token) >= 2))

    @cached_property
    def asking_text(self) -> str:
        """The question without a leading clause that sets the scene (SCENE_CLAUSE): "用 ONNX helper 构建…的模型时，
        算子节点的 domain 要设成什么" asks for a value, not how to build."""
        match = SCENE_CLAUSE.match(self.text)
        if match is None or any(word in match.group() for word in QUESTION_WORDS):
            return self.text         # "当伊维菌素被使用在什么疾病上时，…" asks in its first clause
        return self.text[match.end():]

    @cached_property
    def asked_pieces(self) -> tuple[str, ...]:
        """The Latin tokens and Chinese bigrams of what the question asks the value of: the words right before
        "是什么" / "设为多少" / "是哪个", after the last "的" ("Web UI 默认的登录账号和密码是什么" asks for 登录账号和密码);
        words naming only a kind of thing ("命令", "名字") left out. A passage that answers names it."""
        match = ASKED_VALUE.search(self.asking_text)
        if match is None:
            return ()
        phrase = content_chars(re.split(r"[，,、。；;]", self.asking_text[:match.start()])[-1].split("的")[-1])
        for word in TYPE_WORDS | GENERIC_WORDS:
            phrase = phrase.replace(word, " ")
        return tuple(piece for piece, _ in weighted_pieces(
            "".join(char if char not in FUNCTION_CHARS else " " for char in phrase)))

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The tokens that name something ("windows", "gcc", "torchsdaa"): three or more characters, not a number."""
        return tuple(token for token in self.tokens if len(token) >= 3 and not token.isdigit())

    @cached_property
    def code_names(self) -> tuple[str, ...]:
        """Names written as code in the question ("chunk_overlap", as "chunkoverlap"): a parameter or a function,
        unlike a plain word ("decode") that many rows of a table share."""
        return tuple(content_chars(name) for name in CODE_NAME.findall(self.text))

    @cached_property
    def wants_list(self) -> bool:
        return WANTS_LIST.search(self.asking_text) is not None

    @cached_property
    def wants_code(self) -> bool:
        """A command, or a way to do something; not when another kind of thing is asked for ("构建 PyTorch 扩展时，
        CMake 版本至少需要多少" asks for a version, though it says 构建)."""
        if self.asked_type is not None:
            return self.asked_type == "command"
        return WANTS_HOWTO.search(self.asking_text) is not None

    @cached_property
    def defined_term(self) -> str:
        """X of "什么是X" / "X是什么", as content characters; "" when the question is not one. What sets the scene
        before X is left out: a clause before a comma, and where X is found ("Teco-RAG 中的 MultiVector 优化是什么"
        defines "MultiVector优化"; the documents write "MultiVector优化是…")."""
        match = DEFINITION.search(self.text.strip())
        if not match:
            return ""
        term = re.split(r"[，,]", match.group("a") or match.group("b"))[-1]
        return content_chars(DEFINITION_SCOPE.sub("", term))

    @cached_property
    def asks_definition(self) -> bool:
        """Whether the question asks only what its defined_term is ("什么是X", "X是什么？")."""
        return bool(self.defined_term) and DEFINITION_ONLY.search(self.text.strip()) is not None

    @cached_property
    def asks_expansion(self) -> bool:
        """Whether the question asks what its defined_term stands for ("SPA 是什么的缩写"): "SPA（Synergistic
        Processor Element Array）" answers it, "SPA是一个协从运算单元" does not."""
        return bool(self.defined_term) and EXPANSION_ASKED.search(self.asking_text) is not None

    @cached_property
    def kind(self) -> str:
        if TIME_QUESTION.search(self.text):
            return "time"
        if PERSON_QUESTION.search(self.text):
            return "person"
        if PLACE_QUESTION.search(self.text):
            return "place"
        if NUMBER_QUESTION.search(self.text):
            return "number"
        return "other"


@lru_cache(maxsize=256)
def question_profile(question: str) -> QuestionProfile:
    """The profile of a question as asked (normalised here), made once: the reranker and the answerer both read
    its words, and jieba's cut and IDF lookups are the profile's cost."""
    return QuestionProfile(normalize_text(question))


def coverage(words: Sequence[tuple[str, float]], pieces: Sequence[tuple[str, float]], context: str) -> float:
    """The better of the weighted share of `words` and of `pieces` that `context` (content characters) holds:
    jieba sometimes cuts a question wrongly, character bigrams never miss a word for that."""
    def share(weighted: Sequence[tuple[str, float]]) -> float:
        total = sum(weight for _, weight in weighted)
        return sum(weight for piece, weight in weighted if piece in context) / total if total else 0.0

    return max(share(words), share(pieces))


def subject_coverage(profile: QuestionProfile, context: str) -> float:
    """How much of the question's subject `context` (content characters) mentions: a passage that answers
    "Langfuse 默认监听哪个端口" must at least mention Langfuse."""
    if not profile.subject_words and not profile.subject_pieces:
        return 1.0
    return coverage(profile.subject_words, profile.subject_pieces, context)


def text_holds_type(asked_type: str, text: str) -> bool:
    """Whether `text` (normalised, Markdown kept) holds something of a kind with a reliable cue (MASKED_TYPES): a
    port, version, path or web address by TYPE_CUES, a command as code (inline or fenced) or a command line."""
    if asked_type == "command":
        return "`" in text or COMMAND_START.search(f" {text}") is not None
    if asked_type == "path":
        text = WEB_ADDRESS.sub(" ", text)
    return TYPE_CUES[asked_type].search(text) is not None


def passage_context(hit: Hit) -> str:
    """A passage as the answer-type and name checks (and the coverage reranker) read it: file name, heading path
    and plain text."""
    return _chunk_context(hit.chunk)


@lru_cache(maxsize=2048)
def _chunk_context(chunk: Chunk) -> str:
    """Cached: the reranker and the answerer read the same passages, and a server sees the same ones again."""
    return content_chars(normalize_text(f"{chunk.file}\n{chunk_title(chunk)}\n{render_markdown(chunk.text)}"))
