"""Loads admin YAML from mappings/ into typed models; an error names the file, the key path and
what was expected, and lists every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for mapping models: unknown keys are errors (a typo must not be silently ignored).
    Frozen: lookup tables made from the fields are cached properties, which a copy drops (made
    from the original's fields, they would not describe the copy's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_properties(type(self)):
            copied.__dict__.pop(name, None)
        return copied


@cache
def _cached_properties(kind: type) -> tuple[str, ...]:
    return tuple(
        name
        for klass in kind.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cached_property)
    )


class MappingError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s)\n{lines}")


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def load_model(path: Path, model: type[M]) -> M:
    """Parse `path` as YAML and validate it against `model`."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(path, ["file not found"]) from None
    except yaml.YAMLError as exc:
        raise MappingError(path, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{_key_path(err['loc'])}: {err['msg']} (got {err.get('input')!r})"
            if err["type"] != "missing"
            else f"{_key_path(err['loc'])}: required key is missing"
            for err in exc.errors()
        ]
        raise MappingError(path, problems) from None


_cache: dict[tuple[Path, type[BaseModel]], tuple[float, BaseModel]] = {}


def cached_model(path: Path, model: type[M]) -> M:
    """`load_model`, re-read only when the file changes (workers pick up edits without restart)."""
    mtime = path.stat().st_mtime if path.exists() else -1.0
    hit = _cache.get((path, model))
    if hit and hit[0] == mtime:
        return hit[1]  # type: ignore[return-value]
    loaded = load_model(path, model)
    _cache[(path, model)] = (mtime, loaded)
    return loaded
