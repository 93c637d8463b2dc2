"""The "LTV runs" plugin page, end to end: a real `airflow api-server` and a real headless Chromium.

A fixture store holds two runs (one promoted and champion, one rejected with a reason). The
api-server loads the project's plugins folder with LTV_STORE_ROOT pointing at that store.
Chromium logs in the way the UI does (Airflow's ``_token`` cookie, set through the DevTools
protocol over a pipe: no extra Python package), renders the page, follows the report link; an
unauthenticated Chromium (``--dump-dom``) only reaches Airflow's login page. Path traversal
attempts are sent raw (un-normalised) with http.client.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pytest

from ltv_core.demo import airflow_bin
from ltv_core.runs_view import ARTEFACTS, build_view
from ltv_core.report import ReportInputs
from ltv_core.stages.promote import write_report
from ltv_core.store import ArtifactStore, safe_run_id

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
pytestmark = pytest.mark.integration

CHAMPION_RUN = "scheduled__2025-11-03T03:00:00+00:00"
REJECTED_RUN = "scheduled__2025-11-04T03:00:00+00:00"
REJECTION = ("rejected: rmsle 0.652100 vs champion scheduled__2025-11-03T03:00:00+00:00 0.601200 "
             "on this run's holdout (must be at most 0.607212, tolerance 0.01)")
REPORT_MARKER = "LTV evaluation report"
SECRET = "TOP-SECRET-OUTSIDE-THE-STORE"
PASSWORD = "ltv-ui-test-password"
STAGES = ("ingest", "validate", "build_features", "train", "evaluate", "drift", "report", "promote")


# --- fixture store -------------------------------------------------------------------------------
def _report_inputs(run_id: str, logical: str, decision: dict[str, Any], champion: dict[str, Any] | None,
                   seed: int) -> ReportInputs:
    """A real report (ltv_core.report) on a small zero-inflated holdout."""
    rng = np.random.default_rng(seed)
    n = 2000
    p = rng.beta(1, 20, n)
    y = np.where(rng.random(n) < p, rng.lognormal(1.0, 1.0, n), 0.0)
    value = p * 3.0
    return ReportInputs(
        run_id=run_id, logical_date=logical, primary="d7", primary_metric="rmsle", y_true=y,
        point=np.expm1(p * 1.2), value=value, p_buyer=p,
        baselines={"zero": np.zeros(n), "lgbm_log1p": np.expm1(p + rng.normal(0, 0.05, n).clip(0))},
        evaluation={}, feature_importance={f"f{i}": float(20 - i) for i in range(20)},
        champion=None if champion is None else {"run_id": CHAMPION_RUN, "metrics": champion, "value": value * 0.9},
        decision=decision)


def _write_run(store: ArtifactStore, run_id: str, day: int, rmsle: float, promoted: bool,
               reason: str, champion: dict[str, Any] | None) -> None:
    logical = f"2025-11-{day:02d}T03:00:00+00:00"
    for i, stage in enumerate(STAGES):
        started = f"2025-11-{day:02d}T03:{i:02d}:00+00:00"
        manifest = {"stage": stage, "run_id": run_id, "started_at": started,
                    "finished_at": f"2025-11-{day:02d}T03:{i:02d}:30+00:00", "seconds": 30.0}
        if stage == "ingest":
            manifest["inputs"] = {"logical_date": logical}
        if stage == "validate":
            manifest.update(success=True, evaluated=842, failed=0)
        if stage == "drift":
            manifest.update(flagged=not promoted, max_psi=0.4321 if not promoted else 0.0123, prediction_psi=0.05,
                            reasons=["dev_make: 0.400 of scoring rows unseen"] if not promoted else [], enabled=True)
        store.commit_stage(run_id, stage, manifest)
    decision = {
        "run_id": run_id, "promoted": promoted, "reason": reason, "primary_metric": "rmsle",
        "candidate": {"rmsle": rmsle}, "champion_run_id": None if champion is None else CHAMPION_RUN,
        "champion": champion, "tolerance": 0.01, "decided_at": f"2025-11-{day:02d}T03:59:00+00:00"}
    store.write_json(f"{store.stage_dir(run_id, 'promote')}/decision.json", decision)
    write_report(store, run_id, _report_inputs(run_id, logical, decision, champion, day))
    docs = f"{store.stage_dir(run_id, 'validate')}/data_docs"
    store.write_text(f"{docs}/index.html", "<html><head><link rel='stylesheet' "
                     "href='static/styles/docs.css'></head><body>Data docs</body></html>")
    store.write_text(f"{docs}/static/styles/docs.css", "body { color: #123; }")


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ltv-ui")
    (base / "secret.txt").write_text(SECRET)
    (base / "secret.css").write_text(SECRET)
    store = ArtifactStore(base / "store")
    _write_run(store, CHAMPION_RUN, 3, 0.6012, True,
               "no champion yet: the first successful run becomes champion", None)
    _write_run(store, REJECTED_RUN, 4, 0.6521, False, REJECTION, {"rmsle": 0.6012})
    store.write_json(store.path("champion.json"), {
        "run_id": CHAMPION_RUN, "promoted_at": "2025-11-03T03:59:00+00:00", "primary_metric": "rmsle",
        "metrics": {"rmsle": 0.6012}, "previous": None})
    return base / "store"


# --- the api-server ------------------------------------------------------------------------------
@dataclass
class Server:
    base: str
    host: str
    port: int
    token: str

    def request(self, path: str, token: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A raw GET: the path is sent exactly as given (no client-side normalisation of '..')."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        try:
            conn.request("GET", path, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _login(host: str, port: int) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=15)
    try:
        conn.request("POST", "/auth/token", body=json.dumps({"username": "admin", "password": PASSWORD}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 201, f"login failed: {resp.status} {body[:300]!r}"
    return str(json.loads(body)["access_token"])


@pytest.fixture(scope="module")
def server(airflow_db: dict[str, str], fixture_store: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("ltv-ui-server")
    passwords = work / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    host, port = "127.0.0.1", _free_port()
    env = {**airflow_db,
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__API_AUTH__JWT_SECRET": base64.b64encode(os.urandom(24)).decode(),
           "LTV_STORE_ROOT": str(fixture_store)}
    log_path = work / "api-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([airflow_bin(), "api-server", "-H", host, "-p", str(port), "-w", "1"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                status = Server(f"http://{host}:{port}", host, port, "").request("/api/v2/monitor/health")[0]
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server not healthy after 90 s:\n{_tail(log_path)}")
            time.sleep(0.3)
        yield Server(f"http://{host}:{port}", host, port, _login(host, port))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- headless Chromium ---------------------------------------------------------------------------
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900")


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                  if shutil.which(n)), None)
    if found is None:
        pytest.fail("Chromium is not installed: run `make system-deps` (installs Debian's chromium)")
    return found


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``)."""

    def __init__(self, binary: str, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="ltv-chromium-")
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads them on fd 3
        self._res_r, res_w = os.pipe()  # Chromium writes replies on fd 4, we read them

        def fds() -> None:  # runs in the child between fork and exec
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        # The four pipe ends were created first, so fds 3 and 4 are open here: pass_fds keeps them
        # (and Popen's error pipe off them); fds() points them at Chromium's ends before exec.
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4),
            start_new_session=True,
        )
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next_id = 0
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        except BaseException:
            self.close()
            raise
        self.session: str = attached["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                    raise TimeoutError(f"Chromium did not answer {method} within {self.timeout} s")
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()})")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           self.session)
        return result.get("result", {}).get("value")

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.call("Network.setCookie", {"url": url, "name": name, "value": value, "httpOnly": True},
                  self.session)

    def open(self, url: str) -> str:
        """Navigate, wait for the load to finish, return the rendered DOM (like --dump-dom)."""
        self.call("Page.navigate", {"url": url}, self.session)
        deadline = time.monotonic() + self.timeout
        while self.eval("document.readyState + ' ' + location.href") != f"complete {url}":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load: {self.eval('location.href')}")
            time.sleep(0.1)
        return str(self.eval("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        os.close(self._cmd_w)
        os.close(self._res_r)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(chromium_bin: str, server: Server) -> Iterator[Chromium]:
    chrome = Chromium(chromium_bin)
    try:
        chrome.set_cookie(server.base + "/", "_token", server.token)  # what the UI's login sets
        yield chrome
    finally:
        chrome.close()


class _Rows(HTMLParser):
    """Text per table row (keyed by data-run) and every link of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.links: list[dict[str, str]] = []
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-run" in a:
            self._row = a["data-run"]
            self.rows[self._row] = [a.get("class", "")]
        if tag == "a":
            self.links.append({**a, "row": self._row or ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row and data.strip():
            self.rows[self._row].append(data.strip())


# --- tests ---------------------------------------------------------------------------------------
def test_nav_entry_and_app_registered(server: Server) -> None:
    status, _, body = server.request("/api/v2/plugins", server.token)
    assert status == 200, body[:300]
    plugin = next((p for p in json.loads(body)["plugins"] if p["name"] == "ltv_reports"), None)
    assert plugin is not None, body[:1000]
    assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [("/ltv-reports", "LTV runs")]
    view = plugin["external_views"][0]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "LTV runs", "ltv-reports/", "ltv-runs", "nav")
    status, _, body = server.request("/api/v2/plugins/importErrors", server.token)
    assert status == 200 and "ltv_reports" not in body.decode(), body[:1000]


def test_page_lists_runs_champion_and_rejection(server: Server, browser: Chromium,
                                                fixture_store: Path) -> None:
    dom = browser.open(server.base + "/ltv-reports/")
    page = _Rows()
    page.feed(dom)
    champion, rejected = safe_run_id(CHAMPION_RUN), safe_run_id(REJECTED_RUN)
    assert list(page.rows) == [rejected, champion], "both runs, newest first"
    champ_text, rej_text = " ".join(page.rows[champion]), " ".join(page.rows[rejected])
    assert "champion" in page.rows[champion][0] and "current champion" in champ_text
    assert "promoted" in champ_text and CHAMPION_RUN in champ_text
    assert "rejected" in rej_text and REJECTION in rej_text and "champion" not in page.rows[rejected][0]
    # the numbers come from the run's real report metrics.json: model, best baseline, champion
    report_dir = ArtifactStore(str(fixture_store)).stage_dir(rejected, "report")
    m = json.loads(Path(report_dir, "metrics.json").read_text())["metrics"]
    best = min(m["baselines"], key=lambda b: m["baselines"][b]["rmsle"])
    assert f"{m['model']['rmsle']:.4f}" in rej_text and best in rej_text, rej_text
    assert f"{m['baselines'][best]['rmsle']:.4f}" in rej_text and "0.6012" in rej_text, rej_text
    assert "passed" in rej_text and "2025-11-04 03:00 UTC" in rej_text
    assert "flagged" in rej_text and "max PSI 0.4321" in rej_text, "the Drift column"
    assert "max PSI 0.0123" in champ_text and "flagged" not in champ_text
    for stage in STAGES:
        assert stage in rej_text
    banner = re.search(r'<div class="banner" id="champion">(.*?)</div>', dom, re.S)
    assert banner and CHAMPION_RUN in banner.group(1) and "0.6012" in banner.group(1)
    artefacts = {(link["row"], link.get("data-artefact")) for link in page.links}
    for key in ("report.html", "metrics.json", "decision.json", "data_docs"):
        assert (rejected, key) in artefacts and (champion, key) in artefacts


def test_report_link_serves_the_report(server: Server, browser: Chromium) -> None:
    page_url = server.base + "/ltv-reports/"
    page = _Rows()
    page.feed(browser.open(page_url))
    link = next(a for a in page.links
                if a["row"] == safe_run_id(REJECTED_RUN) and a.get("data-artefact") == "report.html")
    report_url = urljoin(page_url, link["href"])
    dom = browser.open(report_url)  # the same session, through the same api-server
    assert REPORT_MARKER in dom and REJECTED_RUN in dom
    # the plots (embedded PNGs) render in the browser: four or more images, all decoded
    assert browser.eval("document.images.length") >= 4
    assert browser.eval("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)") is True
    assert browser.eval("self.origin") == "null", "artefact HTML must run sandboxed (opaque origin)"
    status, headers, body = server.request(report_url[len(server.base):], server.token)
    assert status == 200 and headers["content-type"].startswith("text/html") and REPORT_MARKER.encode() in body
    assert "sandbox" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    for name, expected in (("metrics.json", b'"primary_metric"'), ("decision.json", REJECTION.encode())):
        status, headers, body = server.request(
            f"/ltv-reports/runs/{safe_run_id(REJECTED_RUN)}/{name}", server.token)
        assert status == 200 and headers["content-type"] == "application/json" and expected in body
    docs = browser.open(urljoin(page_url, f"runs/{safe_run_id(REJECTED_RUN)}/data_docs/index.html"))
    assert "Data docs" in docs
    assert browser.eval("getComputedStyle(document.body).color") == "rgb(17, 34, 51)", "data-docs css"


def test_unauthenticated_browser_only_reaches_the_login_page(server: Server, chromium_bin: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ltv-chromium-") as profile:
        out = subprocess.run([chromium_bin, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              server.base + "/ltv-reports/"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "auth/static" in out.stdout, out.stdout[:1000]  # Airflow's login page
    assert CHAMPION_RUN not in out.stdout and REJECTED_RUN not in out.stdout


def test_unauthenticated_requests_are_refused(server: Server) -> None:
    paths = ["/ltv-reports/", "/ltv-reports/api/runs",
             f"/ltv-reports/runs/{safe_run_id(CHAMPION_RUN)}/report.html"]
    for path in paths:
        status, _, body = server.request(path)
        assert status == 401, (path, status, body[:200])
        status, _, _ = server.request(path, "not-a-valid-token")
        assert status in (401, 403), path
    status, headers, _ = server.request("/ltv-reports/", headers={"Accept": "text/html"})
    assert status == 303 and headers["location"].startswith("/auth/login?next="), headers
    docs = f"/ltv-reports/runs/{safe_run_id(CHAMPION_RUN)}/data_docs"
    assert server.request(f"{docs}/index.html")[0] == 401
    # Only the data docs' generic assets are public (a sandboxed page's requests carry no cookie).
    status, headers, body = server.request(f"{docs}/static/styles/docs.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and b"#123" in body
    assert server.request(f"{docs}/static/../index.html")[0] == 404


# The secret files sit next to the store: runs/<run>/validate/data_docs/ is 5 levels below them.
UP5, UP6 = "../" * 5, "../" * 6


@pytest.mark.parametrize("path", [
    "/ltv-reports/runs/../../secret.txt",
    "/ltv-reports/runs/..%2F..%2Fsecret.txt/report.html",
    "/ltv-reports/runs/%2e%2e/champion.json",
    "/ltv-reports/runs/{run}/champion.json",
    "/ltv-reports/runs/{run}/..%2F..%2F..%2Fsecret.txt",
    "/ltv-reports/runs/{run}/report%2Freport.html",
    f"/ltv-reports/runs/{{run}}/data_docs/{UP5}secret.txt",
    f"/ltv-reports/runs/{{run}}/data_docs/{UP5.replace('/', '%2F')}secret.txt",
    f"/ltv-reports/runs/{{run}}/data_docs/{UP5.replace('..', '%2e%2e')}secret.css",
    "/ltv-reports/runs/{run}/data_docs/%2e%2e/%2e%2e/report/report.html",
    "/ltv-reports/runs/{run}/data_docs/static/../../_manifest.json",
    "/ltv-reports/runs/{run}/data_docs//etc/passwd",
    f"/ltv-reports/runs/{{run}}/data_docs/static/{UP6}secret.css",
    f"/ltv-reports/runs/{{run}}/data_docs/static/{UP6.replace('/', '%2F')}secret.css",
    f"/ltv-reports/runs/{{run}}/data_docs/static/{UP6.replace('..', '%2e%2e')}secret.css",
    "/ltv-reports/runs/{run}/data_docs/static//tmp/secret.css",
])
@pytest.mark.parametrize("authenticated", [True, False], ids=["logged-in", "anonymous"])
def test_path_traversal_is_refused(server: Server, path: str, authenticated: bool) -> None:
    token = server.token if authenticated else None
    status, _, body = server.request(path.format(run=safe_run_id(CHAMPION_RUN)), token)
    assert status in ((400, 404) if authenticated else (400, 401, 404)), (status, body[:300])
    assert SECRET.encode() not in body and b"root:" not in body and b'"stage"' not in body


def _render_module() -> Any:
    """plugins/ltv_reports/render.py alone (importing the package would import Airflow)."""
    spec = importlib.util.spec_from_file_location("ltv_reports_render", PLUGINS / "ltv_reports" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_empty_or_missing_store_says_no_runs_yet(tmp_path: Path) -> None:
    render_runs = _render_module().render_runs
    missing = render_runs(build_view(str(tmp_path / "nowhere")), "ltv_daily")
    assert "No runs yet" in missing and "does not exist yet" in missing
    assert not (tmp_path / "nowhere").exists(), "reading must not create the store"
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    empty = render_runs(build_view(str(tmp_path / "empty")), "ltv_daily")
    assert "No runs yet" in empty and "No champion yet" in empty


def test_page_escapes_store_content_and_links_every_artefact(tmp_path: Path) -> None:
    module = _render_module()
    assert {key for key, _, _ in module.LINKS} == set(ARTEFACTS) | {"data_docs"}
    store = ArtifactStore(tmp_path / "store")
    store.commit_stage(REJECTED_RUN, "ingest", {"run_id": REJECTED_RUN, "started_at": "2025-11-04T03:00:00"})
    store.write_json(f"{store.stage_dir(REJECTED_RUN, 'promote')}/decision.json",
                     {"run_id": REJECTED_RUN, "promoted": False, "reason": "<script>alert(1)</script>"})
    page = module.render_runs(build_view(store.url), "ltv_daily")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
