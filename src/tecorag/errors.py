"""Typed errors. Raised where a problem is detected; the HTTP layer maps them to status codes in one place."""


class TecoragError(Exception):
    """Base class of every error tecorag raises on purpose."""


class ConfigError(TecoragError):
    """Settings are invalid or incomplete."""


class InvalidName(TecoragError):
    """A knowledge-base or file name is not acceptable (path tricks, control characters...)."""


class KnowledgeBaseNotFound(TecoragError):
    """The named knowledge base does not exist."""


class KnowledgeBaseExists(TecoragError):
    """A knowledge base with that name already exists."""


class FileNotInKnowledgeBase(TecoragError):
    """The named file is not in the knowledge base."""


class LoaderError(TecoragError):
    """A document could not be read: corrupt, empty, encrypted or unsupported. The message names the file."""

    def __init__(self, filename: str, reason: str):
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


class UnsupportedFormat(LoaderError):
    """No loader handles this file type."""


class MissingTool(LoaderError):
    """A format needs an external program (e.g. antiword) that is not installed."""


class EmbeddingError(TecoragError):
    """The embedder failed (model missing, endpoint unreachable)."""


class StoreError(TecoragError):
    """The vector store or the catalog failed."""


class LLMError(TecoragError):
    """The LLM engine failed: unreachable, timed out, or broke mid-stream. The message names engine and address."""


class InputError(TecoragError):
    """User input (a question file, a request) is malformed."""


class TooLarge(TecoragError):
    """An upload exceeds the configured size or count limits."""


class QuestionTooLong(TooLarge):
    """A question or its history is over `limits.max_question_chars` / `max_history_*`."""


class DeadlineExceeded(TecoragError):
    """A request took longer than `limits.request_timeout_s`; its work was stopped."""


class Forbidden(TecoragError):
    """The API key is valid but not allowed to do this (a read-only key writing)."""


class Unauthorized(TecoragError):
    """Missing or wrong API key."""
