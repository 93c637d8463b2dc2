"""claims: one writer per stage of a run at a time, on local disk and on S3.

Two runs of the same run id at once (a CLI run beside a cleared Airflow task, two triggers of one
logical date) would otherwise both write attempts of the same stage and race on its pointer. A
writer claims the stage when it begins an attempt (``ArtifactStore.begin_stage``) and releases it
when the attempt commits or is abandoned; a second writer is refused, naming the first.

A claim is a small JSON file ``runs/<run>/<stage>/_claim.<n>`` created exclusively: ``O_EXCL`` on
a local file system, a conditional PUT (``If-None-Match: *``) on S3. The current claim is the one
with the highest ``n``. A claim is stale when its lease ran out (the holder renews it every
``lease / 4`` seconds from a background thread) or, on the same host, when its process is gone (a
SIGKILLed CLI run or Airflow task: the retry takes over at once). Taking over a stale claim ``n``
means creating ``n + 1`` exclusively, so of two processes taking over at the same instant exactly
one wins (``tests/unit/test_claims.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ltv_core.errors import StoreError, describe

if TYPE_CHECKING:
    from ltv_core.store import ArtifactStore

log = logging.getLogger(__name__)

PREFIX = "_claim."
_NAME = re.compile(r"_claim\.(\d+)$")


class ClaimError(StoreError):
    """Another live process is writing this stage of this run."""


def lease_seconds() -> float:
    """How long a claim lives without renewal (``LTV_CLAIM_LEASE_SECONDS``, default 120 s): the
    longest a retry on another host waits for a writer that died without a trace."""
    return float(os.environ.get("LTV_CLAIM_LEASE_SECONDS", 120))


class Claim:
    """A held claim: renewed in the background until :meth:`release`."""

    def __init__(self, store: ArtifactStore, path: str, owner: dict[str, Any], lease: float):
        self.store, self.path, self.owner, self.lease = store, path, owner, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"claim-renewal {path}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 4):
            self.owner["expires"] = time.time() + self.lease
            try:
                self.store.write_bytes(self.path, _encode(self.owner))
            except Exception as exc:  # a transient store error: the next renewal tries again
                log.warning("could not renew claim %s: %s", self.path, exc)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            _remove(self.store, self.path)
        except Exception as exc:  # the lease runs out by itself
            log.warning("could not remove claim %s (it expires in %.0fs): %s", self.path, self.lease, exc)


def acquire(store: ArtifactStore, folder: str, attempt: str, what: str) -> Claim:
    """Claim ``folder`` (a stage's folder) for ``attempt``; raises :class:`ClaimError` naming the
    live holder. ``what`` names the stage and run in messages."""
    lease = lease_seconds()
    for _ in range(5):
        existing = _claims(store, folder)
        n, holder = (existing[-1][0], _read(store, existing[-1][1])) if existing else (0, None)
        if holder is not None and _alive(holder):
            raise ClaimError(
                f"{what} is being written by another process: {holder.get('host')} pid {holder.get('pid')}, "
                f"attempt {holder.get('attempt')}, since {holder.get('claimed')}; two runs of one run id cannot "
                f"write at once. Wait for it to finish; if it died on another host, its claim expires "
                f"{lease:.0f}s after its last renewal ({folder}/{PREFIX}{n})")
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "attempt": attempt,
                 "claimed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "expires": time.time() + lease}
        path = f"{folder}/{PREFIX}{n + 1}"
        if _create(store, path, _encode(owner)):
            if holder is not None:
                log.warning("%s: took over the stale claim of %s pid %s (attempt %s)", what,
                            holder.get("host"), holder.get("pid"), holder.get("attempt"))
            for _, old in existing:
                _remove(store, old)
            return Claim(store, path, owner, lease)
    raise ClaimError(f"{what}: could not claim {folder}: other processes keep claiming it at the same time")


def _encode(owner: dict[str, Any]) -> bytes:
    return json.dumps(owner, sort_keys=True).encode()


def _claims(store: ArtifactStore, folder: str) -> list[tuple[int, str]]:
    try:
        names = store.fs.ls(folder, detail=False, refresh=True) if not store.is_local else [
            f"{folder}/{n}" for n in os.listdir(folder)]
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), p) for p in names if (m := _NAME.search(p.rstrip("/")))]
    return sorted(found)


def _read(store: ArtifactStore, path: str) -> dict[str, Any] | None:
    """A claim's owner; None when it vanished meanwhile or is unreadable (treated as stale)."""
    try:
        owner = json.loads(store.fs.cat_file(path))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


def _alive(owner: dict[str, Any]) -> bool:
    """Live: lease not run out and, on this host, its process still exists. A claim of this very
    process (a stage begun again after a failure here) never blocks it."""
    if float(owner.get("expires", 0)) < time.time():
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = int(owner.get("pid", -1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _create(store: ArtifactStore, path: str, data: bytes) -> bool:
    """Create ``path`` only if it does not exist; False when another process created it first."""
    try:
        if store.is_local:
            # written whole under a temporary name, then hard-linked into place: link() fails if the
            # name exists, and a reader never sees a claim half-written (an empty claim would look
            # stale and be taken over: tests/unit/test_claims.py::test_of_two_simultaneous_takeovers_exactly_one_wins)
            folder = path.rsplit("/", 1)[0]
            os.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.tmp-claim-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
        else:
            store.fs.pipe_file(path, data, mode="create")  # PUT with If-None-Match: *
    except FileExistsError:
        return False
    except Exception as exc:
        raise StoreError(f"cannot create claim {store.uri(path)} in store {store.url}: {describe(exc)}") from None
    return True


def _remove(store: ArtifactStore, path: str) -> None:
    try:
        store.fs.rm(path)
    except FileNotFoundError:
        pass
