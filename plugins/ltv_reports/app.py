"""The "LTV runs" FastAPI app, mounted by the Airflow api-server at ``/ltv-reports``.

Every route requires Airflow's logged-in user (the UI's ``_token`` cookie or an
``Authorization: Bearer`` token, via ``airflow.api_fastapi.core_api.security.get_user``) who may
read the runs of the ``ltv_daily`` DAG. A browser without a session is redirected to Airflow's
login page and comes back afterwards. Files are served only from the allowlist in
:mod:`ltv_core.runs_view`, with the media types and the login exemption of data-docs assets of
``ltv_reports.files``; everything is read-only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ltv_core.demo import DAG_ID
from ltv_core.errors import DataError
from ltv_core.runs_view import (
    ArtefactNotFound,
    RunsView,
    artefact_path,
    build_view,
    data_docs_path,
    open_readonly,
)
from ltv_core.store import ArtifactStore, store_root
from ltv_reports.files import media_type, public_asset_path
from ltv_reports.render import render_runs

log = logging.getLogger(__name__)

# Our pages may be framed by the Airflow UI (same origin) only; artefacts are never sniffed.
PAGE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "same-origin",
}
# Artefacts written by the pipeline (report, GE data docs) embed values from the data. Any document
# among them (HTML, SVG) runs sandboxed: an opaque origin, so its scripts can neither use the
# Airflow session nor read the UI. (CSP does not affect css/fonts/images loaded by a page.)
ARTEFACT_CSP = ("sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads; "
                "frame-ancestors 'self'")


def require_run_reader(user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The logged-in user, if the auth manager lets them read runs of the LTV DAG (else 403)."""
    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=DAG_ID), user=user
    )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"user {user.get_name()!r} may not read runs of DAG {DAG_ID!r}")
    return user


Reader = Annotated[BaseUser, Depends(require_run_reader)]
Limit = Annotated[int, Query(ge=1, le=5000, description="at most this many runs, newest first")]


async def _login_redirect(request: Request, exc: StarletteHTTPException) -> Response:
    """A browser (Accept: text/html) without a valid session goes to Airflow's login page."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and wants_html:
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
    return await http_exception_handler(request, exc)


def _store() -> ArtifactStore:
    store = open_readonly()
    if store is None:
        raise ArtefactNotFound(f"the artefact store {store_root()} does not exist")
    return store


Store = Annotated[ArtifactStore, Depends(_store)]


def _file(store: ArtifactStore, path: str) -> Response:
    try:
        content = store.read_bytes(path)
    except DataError as exc:  # removed between the check and the read (a stage re-run)
        raise ArtefactNotFound(str(exc)) from None
    headers = {**PAGE_HEADERS, "Content-Security-Policy": ARTEFACT_CSP}
    return Response(content, media_type=media_type(path), headers=headers)


def _not_found(_: Request, exc: ArtefactNotFound) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)


def create_app() -> FastAPI:
    app = FastAPI(title="LTV runs", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(StarletteHTTPException, _login_redirect)
    app.add_exception_handler(ArtefactNotFound, _not_found)

    @app.get("/", response_class=HTMLResponse)
    def runs_page(_: Reader, limit: Limit = 200) -> HTMLResponse:
        try:
            view = build_view(limit=limit)
        except (OSError, DataError) as exc:  # e.g. S3 unreachable, credentials missing
            log.exception("cannot read the artefact store %s", store_root())
            unavailable = RunsView(store_url=store_root(), store_exists=False, champion=None,
                                   runs=(), total_runs=0)
            page = render_runs(unavailable, DAG_ID, error=f"{type(exc).__name__}: {exc}")
            return HTMLResponse(page, status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                                headers=PAGE_HEADERS)
        return HTMLResponse(render_runs(view, DAG_ID), headers=PAGE_HEADERS)

    @app.get("/api/runs")
    def runs_json(_: Reader, limit: Limit = 200) -> dict[str, Any]:
        try:
            return asdict(build_view(limit=limit))
        except (OSError, DataError) as exc:
            log.exception("cannot read the artefact store %s", store_root())
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"cannot read the artefact store: {type(exc).__name__}: {exc}") from None

    # A sandboxed page's requests carry no session cookie, so the data docs' generic GE assets
    # (css, fonts, images under static/; never HTML, JSON or scripts) are served without login.
    @app.get("/runs/{folder}/data_docs/static/{relpath:path}")
    def data_docs_asset(store: Store, folder: str, relpath: str) -> Response:
        return _file(store, public_asset_path(store, folder, relpath))

    @app.get("/runs/{folder}/data_docs/{relpath:path}")
    def data_docs(_: Reader, store: Store, folder: str, relpath: str) -> Response:
        return _file(store, data_docs_path(store, folder, relpath))

    @app.get("/runs/{folder}/{name}")
    def artefact(_: Reader, store: Store, folder: str, name: str) -> Response:
        return _file(store, artefact_path(store, folder, name))

    return app
