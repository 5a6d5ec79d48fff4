"""The installed ``sikka-supervisor`` distribution's version: ``/health``, the OpenAPI ``info``,
``--version`` and the error tracker's release name ("0" when running from a source tree)."""

from __future__ import annotations

import importlib.metadata

try:
    VERSION = importlib.metadata.version("sikka-supervisor")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    VERSION = "0"
