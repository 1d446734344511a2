"""The key store: the answers computed from the instructor's source, once per release, kept outside it.

A key store is a folder (``release-keys/`` beside the release by default; ``--keys`` to choose) that only the
instructor reads: ``keys.json`` (mode 0600) holds

* ``secret``: 32 random bytes (hex) drawn when the store is created (or read from a file,
  ``release --secret-file``: a reproducible release, e.g. for tests); a student's data seed is
  ``HMAC-SHA256(secret, "<exercise>|<student>")``, so no student can work out a classmate's seed, and
  re-releasing to a late student gives everyone else the same data again;
* ``roster``: the students a release was written for (id and the optional columns of the roster CSV);
* ``exercises``: per source notebook, a fingerprint (SHA-256 of the notebook and its data files) and its keys —
  ``"*"`` for the course data, and one per student for an exercise with variants — each with its seed.

``grade`` reuses these keys; a key is computed (and stored) only when missing, and all of an exercise's keys
are dropped when its source or data change.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GradingError
from .notebooks import Exercise

STORE_FORMAT = 1
DEFAULT = "*"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")


def fingerprint(exercise: Exercise) -> str:
    """SHA-256 of the source notebook's bytes and of its data files."""
    digest = hashlib.sha256(exercise.path.read_bytes())
    for path in exercise.data_files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_student_id(student: str) -> str:
    if not STUDENT_ID.match(student):
        raise GradingError(f"student id {student!r} must be letters, digits and . _ @ + - (not starting with "
                           "a dot), at most 100 characters: it names the student's folder")
    return student


def read_roster(path: Path) -> list[dict[str, str]]:
    """A roster CSV: a ``student`` column (the id that names the submission folder) and optional columns
    (``name``, ``email``, ``section``, ``sis_id``, ``canvas_id``) used by the LMS exports."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise GradingError(f"cannot read the roster {path}: {exc}") from exc
    if not rows or "student" not in rows[0]:
        raise GradingError(f"roster {path}: needs a header with a 'student' column and at least one row")
    students = [check_student_id((row.get("student") or "").strip()) for row in rows]
    repeated = sorted({s for s in students if students.count(s) > 1})
    if repeated:
        raise GradingError(f"roster {path}: student ids repeat: {repeated}")
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in rows]


SECRET = re.compile(r"^(?:[0-9a-f]{2}){32,}$")


def read_secret(path: Path) -> str:
    """A release secret from a file: at least 64 hexadecimal digits (32 bytes), e.g. the output of
    ``python -c "import secrets; print(secrets.token_hex(32))"``; surrounding whitespace is ignored."""
    try:
        secret = path.read_text().strip().lower()
    except (OSError, UnicodeDecodeError) as exc:
        raise GradingError(f"cannot read the secret file {path}: {exc}") from exc
    if not SECRET.match(secret):
        raise GradingError(f"the secret file {path} must hold an even number (at least 64) of hexadecimal digits "
                           f"and nothing else, e.g. the output of python -c \"import secrets; "
                           f"print(secrets.token_hex(32))\"; it holds {len(secret)} characters")
    return secret


@dataclass
class KeyStore:
    """Answer keys of one release, with the secret that seeds the students' data."""

    folder: Path
    secret: str
    roster: list[dict[str, str]] = field(default_factory=list)
    exercises: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / "keys.json"

    @classmethod
    def open(cls, folder: Path, *, create: bool, secret: str | None = None) -> KeyStore:
        """Read the store in ``folder``; make a new one if there is none and ``create``, with ``secret`` (hex, see
        :func:`read_secret`) or a fresh random one. An existing store keeps its own secret: a different
        ``secret`` is an error (it would change every student's data)."""
        path = folder / "keys.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise GradingError(f"key store {path} is not valid JSON: {exc}") from exc
            if data.get("format") != STORE_FORMAT:
                raise GradingError(f"key store {path} has format {data.get('format')!r}, not {STORE_FORMAT}")
            if secret is not None and secret != data["secret"]:
                raise GradingError(f"key store {path} already has its own secret, and the secret given differs: a "
                                   "store keeps its secret so that releasing again gives everyone the same data; "
                                   "use another key store folder (--keys) for a release with this secret")
            return cls(folder, data["secret"], data.get("roster", []), data.get("exercises", {}))
        if not create:
            raise GradingError(f"no key store in {folder} (it is written by `glmmteach release`)")
        store = cls(folder, secrets.token_hex(32) if secret is None else secret)
        store.save()
        return store

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        data = {"format": STORE_FORMAT, "secret": self.secret, "roster": self.roster, "exercises": self.exercises}
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(temporary, self.path)

    @property
    def students(self) -> list[str]:
        return [row["student"] for row in self.roster]

    def seed(self, exercise: Exercise, student: str) -> int | None:
        """The data seed of ``student`` for ``exercise`` (None for an exercise without variants)."""
        if not exercise.variants or student == DEFAULT:
            return None
        mac = hmac.new(bytes.fromhex(self.secret), f"{exercise.name}|{student}".encode(), hashlib.sha256)
        return int.from_bytes(mac.digest()[:4], "big")

    def _entry(self, exercise: Exercise) -> dict[str, Any]:
        current = fingerprint(exercise)
        entry = self.exercises.get(exercise.filename)
        if entry is None or entry.get("fingerprint") != current:
            entry = self.exercises[exercise.filename] = {"fingerprint": current, "keys": {}}
        return entry

    def key(self, exercise: Exercise, student: str, compute: Callable[[int | None], dict[str, Any]]
            ) -> tuple[dict[str, Any], int | None]:
        """The key (and seed) of ``student`` — ``DEFAULT`` or anyone when the exercise has no variants —
        computed with ``compute(seed)`` and stored if not stored yet."""
        owner = student if exercise.variants else DEFAULT
        with self.lock:
            stored = self._entry(exercise)["keys"].get(owner)
        if stored is not None:
            return stored["key"], stored["seed"]
        seed = self.seed(exercise, owner)
        key = compute(seed)
        with self.lock:
            self._entry(exercise)["keys"][owner] = {"key": key, "seed": seed}
            self.save()
        return key, seed

    def has_key(self, exercise: Exercise, student: str) -> bool:
        owner = student if exercise.variants else DEFAULT
        entry = self.exercises.get(exercise.filename)
        return bool(entry and entry.get("fingerprint") == fingerprint(exercise) and owner in entry["keys"])
