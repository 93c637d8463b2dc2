"""The production stack (docker-compose.yaml + Dockerfile) is valid and wired correctly.

There is no Docker engine in CI, so `docker-compose config` (Debian's compose v1, installed by
`make system-deps`) is the validator: it checks the file against the Compose schema, resolves
anchors/merge keys and ${VAR:-default} substitution, and prints the normalised file, whose wiring
is then asserted here. The run uses a clean environment and an empty --env-file so that the
committed defaults are what is checked (not a developer's shell or a stray .env).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
TIMEOUT_S = 120

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
DASK_SERVICES = ("dask-scheduler", "dask-worker")
REQUIRED_SERVICES = (
    "postgres",
    "minio",
    "minio-init",
    *AIRFLOW_SERVICES,
    *DASK_SERVICES,
)
READ_ONLY_MOUNTS = ("dags", "plugins", "config", "include")


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed; it validates docker-compose.yaml. "
            "Run `make system-deps` (apt-get install docker-compose) and re-run the tests.",
            pytrace=False,
        )
    return exe


def _run_config(tmp_path: Path, compose_file: Path) -> subprocess.CompletedProcess[str]:
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    for key in ("LANG", "LC_ALL"):
        if key in os.environ:
            clean_env[key] = os.environ[key]
    cmd = [
        _docker_compose(),
        "--project-directory", str(REPO),
        "--env-file", str(empty_env_file),
        "-f", str(compose_file),
        "config",
    ]
    try:
        return subprocess.run(
            cmd, cwd=REPO, env=clean_env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` did not finish within {TIMEOUT_S}s", pytrace=False)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict:
    proc = _run_config(tmp_path_factory.mktemp("compose"), COMPOSE_FILE)
    assert proc.returncode == 0, (
        f"docker-compose config rejected docker-compose.yaml (rc={proc.returncode}):\n"
        f"{proc.stderr}\n{proc.stdout}"
    )
    doc = yaml.safe_load(proc.stdout)
    assert isinstance(doc, dict) and "services" in doc, proc.stdout
    return doc


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # normalised output is a mapping, but accept KEY=VALUE lists
        env = dict(item.split("=", 1) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _container_ports(service: dict) -> set[int]:
    ports = set()
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            ports.add(int(p["target"]))
        else:
            ports.add(int(str(p).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _volumes(service: dict) -> list[str]:
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            ro = ":ro" if v.get("read_only") else ""
            out.append(f"{v.get('source')}:{v['target']}{ro}")
        else:
            out.append(str(v))
    return out


def _depends_on(service: dict) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: (cond or {}).get("condition", "service_started") for name, cond in dep.items()}


def test_compose_file_is_valid_and_wired(compose: dict) -> None:
    services = compose["services"]
    missing = [s for s in REQUIRED_SERVICES if s not in services]
    assert not missing, f"services missing from docker-compose.yaml: {missing}"

    # --- PostgreSQL metadata DB: healthcheck + named volume
    pg = services["postgres"]
    assert pg.get("healthcheck", {}).get("test"), "postgres needs a healthcheck"
    assert any(v.split(":")[0] in (compose.get("volumes") or {}) for v in _volumes(pg)), (
        "postgres data must live on a named volume"
    )

    # --- MinIO + bucket init
    minio = services["minio"]
    assert minio.get("healthcheck", {}).get("test"), "minio needs a healthcheck"
    assert {9000, 9001} <= _container_ports(minio), "minio must publish the S3 API and console"
    minio_init = services["minio-init"]
    init_script = " ".join(_command(minio_init) + [str(minio_init.get("entrypoint"))])
    for bucket in ("ltv-artifacts", "ltv-raw"):
        assert bucket in init_script, f"minio-init does not create bucket {bucket}"
    assert _depends_on(services["minio-init"]).get("minio") == "service_healthy"

    # --- Airflow: one image, one metadata DB, Airflow 3 wiring
    images = {services[s].get("image") for s in (*AIRFLOW_SERVICES, *DASK_SERVICES)}
    assert len(images) == 1 and None not in images, (
        f"all Airflow and Dask services must run the same image, got {images}"
    )
    assert all("build" in services[s] for s in AIRFLOW_SERVICES), (
        "the Airflow image is built from ./Dockerfile"
    )
    build = services["airflow-scheduler"]["build"]
    assert Path(build["context"]).resolve() == REPO
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"

    conns, jwt_secrets, fernet_keys = set(), set(), set()
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        env = _env(svc)
        conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
        assert re.match(r"^postgresql\+psycopg2://[^@]+@postgres:5432/\w+$", conn), (
            f"{name} must use the postgres service as metadata DB, got {conn!r}"
        )
        conns.add(conn)
        jwt_secrets.add(env.get("AIRFLOW__API_AUTH__JWT_SECRET"))
        fernet_keys.add(env.get("AIRFLOW__CORE__FERNET_KEY"))
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "LocalExecutor", name
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false", name
        assert env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL") == (
            "http://airflow-apiserver:8080/execution/"
        ), name
        deps = _depends_on(svc)
        assert deps.get("postgres") == "service_healthy", f"{name} must wait for a healthy postgres"
        if name != "airflow-init":
            assert deps.get("airflow-init") == "service_completed_successfully", name
            assert deps.get("minio-init") == "service_completed_successfully", name
            assert svc.get("healthcheck", {}).get("test"), f"{name} needs a healthcheck"
        vols = _volumes(svc)
        for d in READ_ONLY_MOUNTS:
            assert any(v.endswith(f":/opt/airflow/{d}:ro") for v in vols), (
                f"{name} must mount ./{d} read-only at /opt/airflow/{d}"
            )
        user = str(svc.get("user", ""))
        assert user and not user.startswith(("0:", "root")), f"{name} must not run as root"
    assert len(conns) == 1 and len(jwt_secrets) == 1 and len(fernet_keys) == 1, (
        "Airflow services must share one DB connection, JWT secret and Fernet key"
    )
    assert None not in jwt_secrets and "" not in jwt_secrets
    assert None not in fernet_keys and "" not in fernet_keys

    assert "airflow db migrate" in " ".join(_command(services["airflow-init"])), (
        "airflow-init must run `airflow db migrate`"
    )
    assert _command(services["airflow-apiserver"])[:2] == ["airflow", "api-server"]
    assert 8080 in _container_ports(services["airflow-apiserver"])
    assert _command(services["airflow-scheduler"])[:2] == ["airflow", "scheduler"]
    assert _command(services["airflow-dag-processor"])[:2] == ["airflow", "dag-processor"]
    assert _command(services["airflow-triggerer"])[:2] == ["airflow", "triggerer"]

    # --- Dask: scheduler + scalable workers pointing at it
    sched = services["dask-scheduler"]
    assert _command(sched)[:2] == ["dask", "scheduler"]
    assert {8786, 8787} <= _container_ports(sched)
    worker = services["dask-worker"]
    wcmd = _command(worker)
    assert wcmd[:2] == ["dask", "worker"]
    assert "tcp://dask-scheduler:8786" in wcmd, f"dask-worker must connect to the scheduler: {wcmd}"
    assert _depends_on(worker).get("dask-scheduler") == "service_healthy"
    assert "container_name" not in worker and not worker.get("ports"), (
        "dask-worker must be scalable: no container_name, no published ports"
    )
    assert int(worker.get("deploy", {}).get("replicas", 1)) >= 1

    # --- What the pipeline code reads: same store/data/scheduler/credentials everywhere
    for name in ("airflow-scheduler", "airflow-triggerer", "airflow-dag-processor", *DASK_SERVICES):
        env = _env(services[name])
        assert env.get("LTV_STORE_ROOT", "").startswith("s3://ltv-artifacts"), (
            f"{name}: LTV_STORE_ROOT must be an s3:// URL on the ltv-artifacts bucket"
        )
        assert env.get("LTV_DATA_ROOT", "").startswith("s3://ltv-raw/"), name
        assert env.get("LTV_DASK_SCHEDULER") == "tcp://dask-scheduler:8786", name
        assert env.get("LTV_PROJECT_ROOT") == "/opt/airflow", name
        assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"), name
        for key in ("AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL"):
            assert env.get(key) == "http://minio:9000", f"{name}: {key} must point at minio"


def test_dockerfile_builds_the_shared_image() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base and base.group(1).startswith("python:3.11-slim"), (
        "base image must be python:3.11-slim"
    )
    assert re.search(r"pip install \"?uv[=\"]", text), "uv must be installed with pip first"
    assert re.search(r"uv pip install[^\n]*-r [^\n]*requirements\.txt", text)
    assert re.search(r"uv pip install[^\n]*--no-deps", text), "the project installs with --no-deps"
    assert re.search(r"^ENV[^\n]*\bAIRFLOW_HOME=/opt/airflow", text, re.M) or (
        "AIRFLOW_HOME=/opt/airflow" in text
    )
    assert re.search(r"^COPY\b[^\n]*\bltv_core\b", text, re.M), "Dockerfile must copy ltv_core/"
    # dags/plugins/config/include come in through a bind mount of the build context (tolerates a
    # folder git did not keep because it was empty); each must be named in that copy loop.
    loop = re.search(r"for d in ([^;]+);", text)
    assert loop and set(loop.group(1).split()) >= {"dags", "plugins", "config", "include"}, (
        "Dockerfile must copy dags/, plugins/, config/ and include/ into /opt/airflow"
    )
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"


def test_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    original = COMPOSE_FILE.read_text()

    # Control: an unmodified copy outside the repo validates (paths resolve via
    # --project-directory), so the failure below can only come from the injected error.
    good = tmp_path / "good-compose.yaml"
    good.write_text(original)
    ok = _run_config(tmp_path, good)
    assert ok.returncode == 0, ok.stderr

    broken_text, n = re.subn(
        r"^(  dask-scheduler:\n)",
        r"\1    definitely_not_a_compose_key: true\n",
        original,
        flags=re.M,
    )
    assert n == 1, "could not find the dask-scheduler service to corrupt"
    broken = tmp_path / "broken-compose.yaml"
    broken.write_text(broken_text)
    proc = _run_config(tmp_path, broken)
    assert proc.returncode != 0, "docker-compose config accepted an invalid key"
    assert "definitely_not_a_compose_key" in proc.stderr + proc.stdout, proc.stderr
