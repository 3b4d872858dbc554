"""Registry of webhook sources: every module in this package that exposes `SOURCE` is one
provider, so adding a source means adding a module and nothing else."""

from __future__ import annotations

import importlib
import pkgutil

from integration.sources.base import Source


def _discover() -> dict[str, Source]:
    found: dict[str, Source] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        source = getattr(module, "SOURCE", None)
        if source is not None:
            found[source.name] = source
    return found


SOURCES: dict[str, Source] = _discover()
