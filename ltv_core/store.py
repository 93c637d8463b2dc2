"""The artefact store: the one place that reads and writes pipeline artefacts.

Stages are pure functions of frames and configs (Kedro's split); this layer does all I/O through
fsspec, so the same code writes to a local folder by default and to ``s3://`` in production.

Layout per run::

    <root>/runs/<run_id>/<stage>/_manifest.json                the stage's commit pointer, written last
    <root>/runs/<run_id>/<stage>/attempts/<attempt>/...        artefacts of one attempt of the stage
    <root>/runs/<run_id>/<stage>/attempts/<attempt>/_manifest.json   the attempt's own manifest

Atomicity: a single file is written under a temporary name and renamed into place on a local
file system; on object stores (s3, gcs, ...) an object becomes visible only once its upload
completes, so it is written in place. A stage with several files is "committed" by its manifest:
readers go through :meth:`ArtifactStore.read_manifest`, which refuses a stage without one, and
only read the files the manifest lists. Re-running a stage writes a new attempt beside the committed
one and switches the pointer when it commits: a reader never sees a half-replaced stage, and a
killed re-run leaves the committed attempt as it was (docs/LINEAGE.md;
``tests/unit/test_store.py::test_a_new_attempt_never_touches_the_committed_one``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from ltv_core import claims, jsonutil
from ltv_core.errors import DataError, SpecError, StoreError, describe
from ltv_core.yamlconf import project_root

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
ATTEMPTS = "attempts"
# Bounded retries on S3: an unreachable endpoint fails in seconds, not after botocore's long default
# (tests/integration/test_preflight.py::test_an_unreachable_s3_store_fails_in_seconds_naming_it).
S3_OPTIONS: dict[str, Any] = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                                                "retries": {"max_attempts": 3, "mode": "standard"}}}
CHAMPION_POINTER = "champion.json"  # ltv_core.promotion.CHAMPION (that module imports this one)
# Airflow's run ids (manual__2026-..., scheduled__..., backfill__...) and the CLI's cli__<date>. The
# first character may not be '.', so a run id can never be '.', '..' or a hidden folder
# (tests/unit/test_store.py::test_unsafe_run_ids_are_refused_naming_the_rule).
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+\-]{0,199}$")


def safe_run_id(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; keep them readable but path-safe. Raises SpecError (a
    ValueError) naming the rule for anything that could leave its folder."""
    if not isinstance(run_id, str) or not _RUN_ID_RE.fullmatch(run_id):
        raise SpecError(f"run id {run_id!r} cannot name a run folder: use 1-200 letters, digits and "
                        "'_', '-', '.', ':', '+', starting with a letter, digit or '_' (e.g. cli__2025-10-08)")
    return run_id.replace(":", "-").replace("+", "_")


def code_version() -> str:
    """Git commit of the code that ran (or the package version outside a git checkout)."""
    env = os.environ.get("LTV_CODE_VERSION")
    if env:
        return env
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ltv-core")
        except PackageNotFoundError:
            return "unknown"


def config_hash(obj: Any) -> str:
    """A short stable hash of a JSON-able config, recorded in every manifest."""
    blob = json.dumps(obj, sort_keys=True, default=jsonutil.default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class StageTimer:
    """Collects what a stage's manifest records; ``finish`` fills the timings."""

    stage: str
    run_id: str
    started: float = field(default_factory=time.time)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    upstream: dict[str, Any] = field(default_factory=dict)  # manifest URI of each input stage's result
    consumed: Any = None  # ltv_core.lineage.Consumed: the attempts of the inputs, checked and pinned

    def finish(self, config: Any = None) -> dict[str, Any]:
        ended = time.time()
        return {
            "stage": self.stage,
            "run_id": self.run_id,
            "inputs": self.inputs,
            "upstream": self.upstream,
            "outputs": self.outputs,
            "config_hash": config_hash(config) if config is not None else None,
            "code_version": code_version(),
            "started_at": datetime.fromtimestamp(self.started, tz=timezone.utc).isoformat(),
            "finished_at": datetime.fromtimestamp(ended, tz=timezone.utc).isoformat(),
            "seconds": round(ended - self.started, 3),
            **(self.consumed.manifest_fields() if self.consumed is not None else {}),
            **self.extra,
        }


class ArtifactStore:
    """fsspec-backed store rooted at a local folder or an object-store URL."""

    def __init__(self, root: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        root = check_root("store root", str(root))
        if "://" not in root:
            root = os.path.abspath(root)
        options = dict(storage_options or {})
        if root.startswith(("s3://", "s3a://")):
            options = {**S3_OPTIONS, **options}
        self.fs, base = url_to_fs(root, **options)
        self.protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.root = base.rstrip("/")
        self.url = root.rstrip("/")
        self.is_local = self.protocol in ("file", "local")
        if self.is_local:
            self._make_local_root()
        self._open: dict[tuple[str, str], str] = {}   # (run, stage) -> folder of the attempt begun here
        self._pins: dict[tuple[str, str], str] = {}   # (run, stage) -> attempt read instead of the pointer's
        self._sums: dict[str, dict[str, str]] = {}    # open attempt folder -> {file name: sha256} written
        self._claims: dict[tuple[str, str], claims.Claim] = {}  # (run, stage) -> this writer's claim
        self._recorded: dict[str, dict[str, str]] = {}  # committed attempt folder -> its manifest's checksums

    def _make_local_root(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(f"store root {self.root} is a file, not a folder: point the store root "
                             "(--store-root, LTV_STORE_ROOT, store_root in the pipeline config) at a folder")
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store root {self.root}: {exc.strerror or exc}; create it, or point "
                             "the store root at a folder this user can write") from None

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # --- paths ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Join parts under the root (store-relative parts, '/'-separated)."""
        clean = [str(p).strip("/") for p in parts if str(p).strip("/")]
        return "/".join([self.root, *clean])

    def uri(self, path: str) -> str:
        """A full URL for a store path, as printed to users and passed through XCom."""
        if self.is_local:
            return path
        return f"{self.protocol}://{path}"

    # --- primitive I/O ------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    @contextmanager
    def open_atomic(self, path: str) -> Iterator[IO[bytes]]:
        """Open for writing; readers see either the old object, nothing, or the complete new one."""
        parent = path.rsplit("/", 1)[0]
        if self.is_local:
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
            try:
                os.makedirs(parent, exist_ok=True)
                with self.fs.open(tmp, "wb") as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException as exc:
                if os.path.exists(tmp):
                    os.remove(tmp)
                if isinstance(exc, OSError) and exc.errno is not None:  # read-only, full, not permitted
                    raise self._write_error(path, exc) from None
                raise
        else:
            buf = io.BytesIO()
            yield buf
            try:
                with self.fs.open(path, "wb") as fh:  # one PUT / multipart upload, visible when complete
                    fh.write(buf.getvalue())
            except Exception as exc:  # botocore's connection / credential errors are no OSError
                raise self._write_error(path, exc) from None

    def _write_error(self, path: str, exc: BaseException) -> StoreError:
        return StoreError(f"cannot write {self.uri(path)} in store {self.url}: {describe(exc)}; check that the store "
                          "exists, is writable by this user and has space (nothing of this stage was committed)")

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write one file atomically. Inside an attempt this process opened, its SHA-256 goes into
        the attempt's manifest (``checksums``), which :meth:`read_bytes` checks on every later read."""
        with self.open_atomic(path) as fh:
            fh.write(data)
        for folder, sums in self._sums.items():
            if path.startswith(folder + "/"):
                sums[path[len(folder) + 1:]] = hashlib.sha256(data).hexdigest()
        return path

    def write_text(self, path: str, text: str) -> str:
        return self.write_bytes(path, text.encode("utf-8"))

    def write_json(self, path: str, obj: Any) -> str:
        return self.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=jsonutil.default) + "\n")

    def read_bytes(self, path: str) -> bytes:
        """A file's bytes; a file of a committed attempt is checked against the SHA-256 its manifest
        recorded, so a damaged model is named instead of crashing LightGBM
        (``tests/unit/test_store.py::test_a_damaged_artefact_is_named_not_loaded``)."""
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise DataError(f"artefact not found in store {self.url}: {path}") from None
        except Exception as exc:  # permission, connection: one line naming the store and the file
            raise StoreError(f"cannot read {self.uri(path)} from store {self.url}: {describe(exc)}") from None
        self._verify(path, data)
        return data

    def _verify(self, path: str, data: bytes) -> None:
        folder, _, name = path.rpartition("/")
        while folder and f"/{ATTEMPTS}/" in folder and name != MANIFEST:
            if folder.rsplit("/", 2)[-2] == ATTEMPTS:  # folder is runs/<run>/<stage>/attempts/<attempt>
                expected = self._checksums(folder).get(name)
                if expected is not None and hashlib.sha256(data).hexdigest() != expected:
                    raise StoreError(f"artefact {self.uri(path)} is damaged: its SHA-256 differs from the one "
                                     "recorded when its stage committed; re-run that stage (and those after it) "
                                     "to rewrite it")
                return
            folder, _, parent = folder.rpartition("/")
            name = f"{parent}/{name}"

    def _checksums(self, folder: str) -> dict[str, str]:
        """The checksums a committed attempt's own manifest recorded (cached: a committed attempt
        never changes); an attempt still open, or of a stage that recorded none, has none."""
        if folder not in self._recorded:
            path = f"{folder}/{MANIFEST}"
            try:
                self._recorded[folder] = json.loads(self.fs.cat_file(path)).get("checksums", {})
            except (FileNotFoundError, ValueError, UnicodeDecodeError):
                return {}
        return self._recorded[folder]

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def read_json(self, path: str) -> Any:
        data = self.read_bytes(path)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            what = "is empty" if not data.strip() else f"is not valid JSON ({exc})"
            raise StoreError(f"{self.uri(path)} in store {self.url} {what}: it was damaged or written by hand; "
                             "restore it, or re-run the stage that writes it") from None

    def write_parquet(self, path: str, table: pa.Table, **kwargs: Any) -> str:
        kwargs.setdefault("compression", "snappy")
        with self.open_atomic(path) as fh:
            pq.write_table(table, fh, **kwargs)
        return path

    def read_parquet(self, path: str, columns: list[str] | None = None, *, skip_missing: bool = False,
                     map_values_only: Collection[str] = (), max_rows: int | None = None) -> pa.Table:
        """``columns``: read only these; ``skip_missing``: leave out the ones the file lacks (one open,
        the footer's schema) instead of failing (optional columns of a dataset spec).
        ``map_values_only``: map columns to read by their value leaf alone (they arrive as
        list<struct<value>>); decoding the key strings is most of the cost of reading a map.
        ``max_rows``: only the file's first rows (a sample), without decoding the rest."""
        try:
            # a local file by its path: Arrow's own reader, ~15% less CPU than through a Python file
            with nullcontext(path) if self.is_local else self.fs.open(path, "rb") as source, \
                    pq.ParquetFile(source) as pf:
                if columns is not None and (skip_missing or map_values_only):
                    present = set(pf.schema_arrow.names)
                    if not skip_missing and set(columns) - present:
                        raise DataError(f"{path}: no column(s) {sorted(set(columns) - present)} in the file")
                    leaves = _map_value_leaves(pf, set(map_values_only) & set(columns))
                    columns = [leaves.get(c, c) for c in columns if c in present]
                if max_rows is not None and pf.metadata.num_rows > max_rows:
                    return pa.Table.from_batches([next(pf.iter_batches(batch_size=max_rows, columns=columns))])
                return pf.read(columns=columns)
        except FileNotFoundError:
            raise DataError(f"parquet artefact not found in store {self.url}: {path}") from None

    def parquet_schema(self, path: str) -> pa.Schema:
        with self.fs.open(path, "rb") as fh:
            return pq.read_schema(fh)

    def rm(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # --- stages -------------------------------------------------------------------------------
    # A stage's files live in an attempt folder, ``<stage>/attempts/<attempt>/``; the stage's pointer
    # manifest ``<stage>/_manifest.json`` names the committed attempt and is switched by one atomic
    # write, so the committed files are never touched by a new attempt (docs/LINEAGE.md).
    def _base(self, run_id: str, stage: str) -> str:
        return self.path("runs", safe_run_id(run_id), stage)

    def attempt_dir(self, run_id: str, stage: str, attempt: str) -> str:
        return f"{self._base(run_id, stage)}/{ATTEMPTS}/{attempt}"

    def stage_dir(self, run_id: str, stage: str) -> str:
        """The folder a stage's artefacts are read from (or, between :meth:`begin_stage` and
        :meth:`commit_stage`, written to): the attempt this process opened, else the attempt pinned
        by :meth:`pin`, else the committed one; a stage committed before attempts existed (or not
        committed at all) reads from its own folder."""
        key = (safe_run_id(run_id), stage)
        if key in self._open:
            return self._open[key]
        attempt = self._pins.get(key)
        if attempt is None and self.is_committed(run_id, stage):
            attempt = self.read_manifest(run_id, stage).get("attempt")
        return self.attempt_dir(run_id, stage, attempt) if attempt else self._base(run_id, stage)

    def pin(self, run_id: str, stage: str, attempt: str | None) -> None:
        """Read ``stage`` of ``run_id`` from ``attempt`` from now on (None: follow the pointer), so a
        consumer reads one attempt throughout even if a new one is committed meanwhile
        (``ltv_core.lineage.consume``)."""
        key = (safe_run_id(run_id), stage)
        if attempt is None:
            self._pins.pop(key, None)
        else:
            self._pins[key] = attempt

    @contextmanager
    def pinned(self, run_id: str, pins: dict[str, str]) -> Iterator[None]:
        """:meth:`pin` each ``stage: attempt`` of ``pins`` inside the block, then restore the pins
        in place before (the champion's model stages while its model is loaded)."""
        before = {s: self._pins.get((safe_run_id(run_id), s)) for s in pins}
        for s, a in pins.items():
            self.pin(run_id, s, a)
        try:
            yield
        finally:
            for s, a in before.items():
                self.pin(run_id, s, a)

    def abandon(self) -> None:
        """Forget the attempts this process began and did not commit (a stage that failed): later
        reads here follow the committed pointers again. The folders stay until a commit prunes them."""
        for d in self._open.values():
            self._sums.pop(d, None)
        self._open.clear()
        for key in list(self._claims):
            self._release(key)

    def begin_stage(self, run_id: str, stage: str) -> str:
        """Start a new attempt of a stage in a folder of its own, beside the committed one (which
        readers keep seeing until :meth:`commit_stage`); returns the attempt's folder."""
        attempt = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:6]}"
        key = (safe_run_id(run_id), stage)
        self._release(key)  # this process begins the stage again (a retry here): its own claim goes
        self._claims[key] = claims.acquire(self, self._base(run_id, stage), attempt,
                                           f"stage {stage!r} of run {run_id!r}")
        d = self.attempt_dir(run_id, stage, attempt)
        if self.is_local:
            self.fs.makedirs(d, exist_ok=True)
        self._open[key] = d
        self._sums[d] = {}
        return d

    def _release(self, key: tuple[str, str]) -> None:
        claim = self._claims.pop(key, None)
        if claim is not None:
            claim.release()

    def commit_stage(self, run_id: str, stage: str, manifest: dict[str, Any]) -> str:
        """Commit the attempt :meth:`begin_stage` opened: its own copy of the manifest first, then the
        stage's pointer manifest, one atomic write that switches readers to the new attempt. Older
        attempts are then removed, except the one just replaced (a reader may still be on it) and
        those the champion pointer names (``keep``)."""
        key = (safe_run_id(run_id), stage)
        previous = self.read_manifest(run_id, stage).get("attempt") if self.is_committed(run_id, stage) else None
        if key not in self._open:
            return self._commit_in_place(run_id, stage, manifest, previous)
        d = self._open[key]
        attempt = d.rsplit("/", 1)[-1]
        self._sweep_temporaries(d)
        manifest = {**manifest, "attempt": attempt, "checksums": dict(sorted(self._sums.pop(d, {}).items()))}
        self.write_json(f"{d}/{MANIFEST}", manifest)
        path = f"{self._base(run_id, stage)}/{MANIFEST}"
        self.write_json(path, manifest)
        del self._open[key]
        self._pins.pop(key, None)
        log.info("committed stage %s of run %s: %s (attempt %s)", stage, run_id, self.uri(path), attempt)
        try:
            self._prune_attempts(run_id, stage, keep={attempt, previous, *self.protected(run_id, stage)})
        finally:
            self._release(key)
        return path

    def _sweep_temporaries(self, folder: str) -> None:
        """Remove the temporary files a killed writer left in the attempt (a Dask worker SIGKILLed
        mid-write; its task ran again elsewhere): by commit every writer of the attempt is done
        (``tests/integration/test_dask_worker_loss.py``). Object stores have no temporaries."""
        if self.is_local:
            for tmp in Path(folder).rglob(".tmp-*"):
                log.warning("removing %s: a temporary file left by a killed writer", tmp)
                tmp.unlink(missing_ok=True)

    def _commit_in_place(self, run_id: str, stage: str, manifest: dict[str, Any], previous: str | None) -> str:
        """A stage written straight into its own folder, without :meth:`begin_stage` (the layout of
        stores made before attempts; hand-made test stores): committed as it is, unless the stage
        already has a committed attempt, whose files such a commit would mix with."""
        if previous:
            raise RuntimeError(f"stage {stage!r} of run {run_id!r} has a committed attempt ({previous}): a new commit "
                               "must begin its own attempt (begin_stage) first")
        path = f"{self._base(run_id, stage)}/{MANIFEST}"
        self.write_json(path, manifest)
        log.info("committed stage %s of run %s: %s", stage, run_id, self.uri(path))
        return path

    def retract_stage(self, run_id: str, stage: str) -> None:
        """Withdraw a stage's commit (its pointer manifest; the attempt folders stay until the next
        commit prunes them): a failed re-validation must not leave the earlier pass standing."""
        self.rm(f"{self._base(run_id, stage)}/{MANIFEST}")

    def newest_attempt_dir(self, run_id: str, stage: str) -> str | None:
        """The folder of the stage's most recent attempt, committed or not (a failed validation's
        result, for inspection); None when it has none."""
        attempts = self.attempts(run_id, stage)
        return self.attempt_dir(run_id, stage, attempts[-1]) if attempts else None

    def protected(self, run_id: str, stage: str) -> set[str]:
        """Attempts of ``stage`` that must never be removed: the ones the champion pointer pins
        (``ltv_core.promotion``; its models stay loadable whatever later runs of its id do)."""
        path = self.path(CHAMPION_POINTER)
        if not self.exists(path):
            return set()
        try:
            pointer = self.read_json(path)
        except StoreError:
            return set()
        keep = set()
        for entry in (pointer, pointer.get("previous_pointer") or {}):
            rid = entry.get("run_id")
            if isinstance(rid, str) and _RUN_ID_RE.fullmatch(rid) and safe_run_id(rid) == safe_run_id(run_id):
                keep.update(a for s, a in (entry.get("lineage") or {}).items() if s == stage and a)
        return keep

    def attempts(self, run_id: str, stage: str) -> list[str]:
        """The attempt folders of a stage, oldest first (their names sort by start time)."""
        folder = f"{self._base(run_id, stage)}/{ATTEMPTS}"
        if not self.fs.exists(folder):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))

    def _prune_attempts(self, run_id: str, stage: str, keep: set[str | None]) -> None:
        """Remove attempts that are neither kept nor newer than the one just committed (a newer
        one may be another writer's, still in progress)."""
        newest_kept = max(a for a in keep if a)
        for attempt in self.attempts(run_id, stage):
            if attempt not in keep and attempt < newest_kept:
                self.rm(self.attempt_dir(run_id, stage, attempt))

    def read_manifest(self, run_id: str, stage: str) -> dict[str, Any]:
        """The committed manifest of a stage (of its pinned attempt, when :meth:`pin` set one)."""
        key = (safe_run_id(run_id), stage)
        pinned = self._pins.get(key)
        base = self._base(run_id, stage)
        path = f"{base}/{ATTEMPTS}/{pinned}/{MANIFEST}" if pinned else f"{base}/{MANIFEST}"
        if not self.fs.exists(path):
            what = f"attempt {pinned} of stage {stage!r}" if pinned else f"stage {stage!r}"
            raise DataError(
                f"{what} of run {run_id!r} has no manifest at {self.uri(path)}: "
                "it did not finish, so its artefacts cannot be read"
            )
        return self.read_json(path)

    def manifest_sha256(self, run_id: str, stage: str) -> str:
        """The identity of a stage's committed (or pinned) manifest: the SHA-256 of its bytes."""
        key = (safe_run_id(run_id), stage)
        pinned = self._pins.get(key)
        base = self._base(run_id, stage)
        path = f"{base}/{ATTEMPTS}/{pinned}/{MANIFEST}" if pinned else f"{base}/{MANIFEST}"
        return hashlib.sha256(self.read_bytes(path)).hexdigest()

    def is_committed(self, run_id: str, stage: str) -> bool:
        return self.fs.exists(f"{self._base(run_id, stage)}/{MANIFEST}")


def store_root(root: str | None = None) -> str:
    """The store root: an explicit root, else ``LTV_STORE_ROOT``, else ``<project>/store``; a local
    path made absolute (an object-store URL as given)."""
    if root is not None and not str(root).strip():
        raise SpecError("store root is empty: give a local folder or an s3:// URL (or leave it unset for "
                        "$LTV_STORE_ROOT, else <project>/store)")
    chosen = check_root("store root", root or os.environ.get("LTV_STORE_ROOT") or str(project_root() / "store"))
    return chosen if "://" in chosen else os.path.abspath(chosen)


def check_root(kind: str, root: str) -> str:
    """A store or data root as given, refused when empty or when it climbs with '..' (a typo such
    as ``../../etc`` would otherwise be resolved without a word)."""
    if not root.strip():
        raise SpecError(f"{kind} is empty: give a local folder or an s3:// URL")
    if ".." in re.split(r"[/\\]", root.split("://", 1)[-1]):
        raise SpecError(f"{kind} {root!r} contains '..': give an absolute path, a path below the working "
                        "folder, or an s3:// URL, without climbing out of a folder")
    return root


def open_store(root: str | None = None) -> ArtifactStore:
    """The store at :func:`store_root` (created when it is a local folder that does not exist)."""
    return ArtifactStore(store_root(root))


def fs_for(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and bare path for a data URL (local path or s3://...)."""
    if "://" not in url:
        url = os.path.abspath(url)
    return url_to_fs(url)


def _map_value_leaves(pf: pq.ParquetFile, names: set[str]) -> dict[str, str]:
    """Parquet leaf path of the value of each named MAP column (``col.key_value.value``); columns
    that are not a plain two-leaf map are left out (read whole)."""
    if not names:
        return {}
    arrow = pf.schema_arrow
    leaves: dict[str, list[str]] = {}
    for i in range(pf.metadata.num_columns):
        path = pf.schema.column(i).path
        top = path.split(".", 1)[0]
        if top in names:
            leaves.setdefault(top, []).append(path)
    return {c: p[1] for c, p in leaves.items()
            if len(p) == 2 and pa.types.is_map(arrow.field(c).type) and not pa.types.is_map(arrow.field(c).type.item_type)}
