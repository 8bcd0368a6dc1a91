"""One registry per kind of backend (loaders, embedders, rerankers, LLM engines).

A registry maps a name to where its builder lives, `"package.module:function"`, and imports it only when that
backend is built: a plain install never imports torch, tritonclient or openai for a backend it does not use.
Built-in backends register through the same `register()` a plugin uses; a plugin package can also announce
backends through an entry point group (e.g. `tecorag.embedders`), read the first time a name is not found.

    EMBEDDERS.register("my-model", "my_package.embedder:build", extra=None)
    EMBEDDERS.build("my-model", settings)       # imports my_package.embedder, calls build(settings)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    target: str | Callable[..., Any]          # "module:attribute", or the builder itself
    extra: str | None = None                  # the pip extra that brings its dependencies
    metadata: dict[str, Any] = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind                      # e.g. "embedding engine": what error messages call a name
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False

    def register(self, name: str, target: str | Callable[..., Any], *, extra: str | None = None,
                 **metadata: Any) -> None:
        self._entries[name] = Entry(target, extra, metadata)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        if name not in self._entries:
            self._load_plugins()
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def check(self, name: str) -> str:
        """`name` if it is registered, else a ConfigError listing the known names (used by settings validation)."""
        self.entry(name)
        return name

    def get(self, name: str) -> Callable[..., Any]:
        """The builder, imported now. A missing optional dependency is a ConfigError giving the pip command."""
        entry = self.entry(name)
        if callable(entry.target):
            return entry.target
        module_name, _, attribute = entry.target.partition(":")
        with self._pip_hint(name, entry):
            module = importlib.import_module(module_name)
        return getattr(module, attribute)

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build backend `name`; its heavy imports may happen here too, and get the same pip hint."""
        builder = self.get(name)
        with self._pip_hint(name, self.entry(name)):
            return builder(*args, **kwargs)

    @contextmanager
    def _pip_hint(self, name: str, entry: Entry) -> Iterator[None]:
        try:
            yield
        except ImportError as error:
            if entry.extra is None:
                raise
            raise ConfigError(f"{self.kind} {name!r} needs packages that are not installed ({error.name}): "
                              f"pip install 'tecorag[{entry.extra}]'") from error

    def _load_plugins(self) -> None:
        if self._plugins_loaded or self.entry_point_group is None:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_point_group):
            self._entries.setdefault(point.name, Entry(point.value))
