"""Airflow plugin: the "LTV runs" page (runs, validation, promotion decisions, reports).

The api-server mounts the FastAPI app at ``/ltv-reports`` and the UI shows a top-level nav entry
"LTV runs" that embeds ``/ltv-reports/`` (route ``/plugin/ltv-runs``). See docs/UI.md.

Every Airflow component loads the plugins folder, so this module stays light: the FastAPI app,
which imports the api-server's security module, is built on its first request (``_LazyApp``).
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ltv-reports"
APP_FACTORY = "ltv_reports.app:create_app"

Scope = dict[str, Any]


class _LazyApp:
    """An ASGI app that imports and builds the real one on its first request."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None

    def _build(self) -> Any:
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.factory!r})"


class LtvReportsPlugin(AirflowPlugin):
    name = "ltv_reports"
    fastapi_apps = [{"app": _LazyApp(APP_FACTORY), "url_prefix": URL_PREFIX, "name": "LTV runs"}]
    external_views = [
        {
            "name": "LTV runs",
            # Relative: the UI resolves it against its <base href>, so a base_url path prefix works.
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": "ltv-runs",
            "destination": "nav",
        }
    ]
