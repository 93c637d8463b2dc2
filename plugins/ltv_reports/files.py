"""How the "LTV runs" app serves a run's files: their media types, and which need no login.

Which files exist to be served at all is the read model's allowlist (``ltv_core.runs_view``:
artefact names, data-docs paths and file types); this module is HTTP policy on top of it. No
Airflow import (tests load it on its own).
"""

from __future__ import annotations

import mimetypes
import os

from ltv_core.runs_view import ArtefactNotFound, data_docs_path
from ltv_core.store import ArtifactStore

# The standard library's built-in table (not the host's /etc/mime.types: the same on every
# machine), plus what Python 3.11's table lacks: fonts (RFC 8081) and text/javascript (RFC 9239;
# 3.11 still says application/javascript).
_TYPES = mimetypes.MimeTypes()
for _ext, _type in ((".otf", "font/otf"), (".ttf", "font/ttf"), (".woff", "font/woff"), (".woff2", "font/woff2"),
                    (".js", "text/javascript")):
    _TYPES.add_type(_type, _ext)

# The data docs' generic assets (GE's bundle under static/): a sandboxed page's requests carry no
# session cookie, so these are served without login. Never HTML, JSON or scripts.
PUBLIC_ASSET_TYPES = frozenset({".css", ".png", ".jpg", ".svg", ".ico", ".otf", ".ttf", ".woff", ".woff2"})
DATA_DOCS_ASSETS = "static"


def media_type(path: str) -> str:
    """The Content-Type of a served file by its extension (Starlette adds the charset of text/*)."""
    return _TYPES.guess_type(path, strict=True)[0] or "application/octet-stream"


def public_asset_path(store: ArtifactStore, folder: str, relpath: str) -> str:
    """Store path of a file under a run's ``data_docs/static/`` of a :data:`PUBLIC_ASSET_TYPES` type;
    raises ArtefactNotFound otherwise."""
    if os.path.splitext(relpath)[1].lower() not in PUBLIC_ASSET_TYPES:
        raise ArtefactNotFound(f"not a data-docs asset: {relpath!r}")
    return data_docs_path(store, folder, f"{DATA_DOCS_ASSETS}/{relpath}")
