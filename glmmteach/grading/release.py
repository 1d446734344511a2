"""Release: check every solution notebook against its own checks, then write the student notebooks.

A released notebook holds the question specs, coarse size hints and its data seed (see
:func:`glmmteach.checks.make_public_key`), never an answer or a digest of one. The keys go to a key store
outside the release folder (:mod:`~glmmteach.grading.keys`), which ``grade`` reuses. With a roster, each
student gets a folder of notebooks; an exercise with variants draws that student's own data.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..checks import MANUAL_KINDS, make_public_key
from .errors import GradingError, ReleaseError
from .export import write_atomic
from .keys import DEFAULT, KeyStore, read_roster
from .notebooks import Exercise, load_exercises, solution_lines, solution_notebook, student_notebook
from .runner import execute_notebook
from .scoring import compute_key, score_answer


def _number_renderings(value: float) -> set[str]:
    """How an answer value could appear in a notebook's text, at several precisions."""
    found = {repr(value), str(value)}
    for digits in range(3, 17):
        found.add(f"{value:.{digits}g}")
        found.add(f"{value:.{digits}f}")
    # Short renderings ("0.56", "3") also occur in unrelated text; only long ones betray an answer.
    return {s for s in found if len(s.lstrip("-").replace(".", "").lstrip("0")) >= 4}


def leaked_values(text: str, key: dict[str, Any]) -> list[str]:
    """Answer values (at several precisions) that occur in ``text``."""
    leaks = []
    for qid, value in key.items():
        flat = value if isinstance(value, list) else [value]
        while flat and isinstance(flat[0], list):
            flat = [x for row in flat for x in row]
        for number in flat:
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                # a rendering counts where it stands as a number of its own, not inside a digest or longer number
                hits = sorted(s for s in _number_renderings(float(number))
                              if re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text))
                if hits:
                    leaks.append(f"{qid}: {hits[0]}")
    return leaks


@dataclass
class Released:
    exercise: Exercise
    key: dict[str, Any]
    notebook: NotebookNode


def prepare_release(exercise: Exercise, timeout: float = 600) -> Released:
    """Key, public key and student notebook for one exercise, after checking the solution passes its checks."""
    key = compute_key(exercise, timeout)
    public = make_public_key(exercise.name, exercise.specs, key)
    run = execute_notebook(solution_notebook(exercise, public), timeout=timeout, data_files=exercise.data_files)
    if run.status != "ok":
        raise ReleaseError(f"{exercise.filename}: the solution notebook failed with the released checks "
                           f"(status {run.status}: {'; '.join(run.errors)})")
    unchecked = [s.id for s in exercise.specs if s.id not in run.results]
    failed = [qid for qid, ok in sorted(run.results.items()) if not ok]
    if unchecked or failed:
        raise ReleaseError(f"{exercise.filename}: the solution does not pass its own checks "
                           f"(never checked: {unchecked}; check says wrong: {failed})")
    changed = [s.id for s in exercise.specs
               if (run.answers.get(s.id) != key[s.id] if s.kind in MANUAL_KINDS
                   else not score_answer(s, key[s.id], run.answers.get(s.id)).correct)]
    if changed:
        raise ReleaseError(f"{exercise.filename}: a second run of the solution gives different answers "
                           f"for {changed} (set random seeds)")
    return Released(exercise, key, _student_notebook(exercise, key, public))


def _student_notebook(exercise: Exercise, key: dict[str, Any], public: dict[str, Any]) -> NotebookNode:
    notebook = student_notebook(exercise, public)
    text = nbformat.writes(notebook)
    leaks = leaked_values(text, key) + [f"solution line {ln!r}" for ln in solution_lines(exercise) if ln in text]
    if leaks:
        raise ReleaseError(f"{exercise.filename}: the student notebook would reveal: {'; '.join(leaks)}")
    return notebook


def prepare_variant(exercise: Exercise, store: KeyStore, student: str, timeout: float = 600) -> Released:
    """One student's notebook of an exercise with variants: the key from the student's own data (stored)."""
    key, seed = store.key(exercise, student, lambda seed: compute_key(exercise, timeout, seed))
    public = make_public_key(exercise.name, exercise.specs, key, seed)
    return Released(exercise, key, _student_notebook(exercise, key, public))


def default_keys_folder(out_dir: Path) -> Path:
    """Where ``release OUT`` keeps its keys unless told otherwise: ``OUT-keys`` beside ``OUT``."""
    return out_dir.parent / f"{out_dir.name}-keys"


def release_record(out_dir: Path) -> Path:
    """Where a release into ``out_dir`` records its key store: ``.OUT.glmmteach-release.json`` beside ``OUT``
    (not inside it, so that nothing of it reaches the students)."""
    return out_dir.parent / f".{out_dir.name}.glmmteach-release.json"


def recorded_keys(out_dir: Path) -> Path | None:
    """The key store an earlier release into ``out_dir`` used, or None."""
    try:
        folder = json.loads(release_record(out_dir).read_text()).get("keys")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(folder) if isinstance(folder, str) else None


def _choose_keys(out_dir: Path, keys_dir: Path | None, targets: list[Path], force: bool,
                 log: Callable[[str], None]) -> Path:
    """The key store of this release; refuses to overwrite an earlier release unless ``force``.

    Releasing again with a new key store would draw new data seeds and overwrite every student's notebook
    with other data, so an earlier release's store (recorded by :func:`release_record`) is reused."""
    earlier = recorded_keys(out_dir)
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        raise GradingError(f"{out_dir} already holds a release ({existing[0].relative_to(out_dir)} and "
                           f"{len(existing) - 1} more): releasing again overwrites the students' notebooks; pass "
                           "--force to do it" + (f" (the key store {earlier} is reused)" if earlier else ""))
    if keys_dir is None:
        return earlier or default_keys_folder(out_dir)
    if existing and earlier is not None and earlier.resolve() != keys_dir.resolve():
        log(f"warning: {out_dir} was released with the key store {earlier}; this release uses {keys_dir} "
            "and its students' data seeds")
    return keys_dir


def release(source_dir: Path, out_dir: Path, *, timeout: float = 600, jobs: int = 1,
            log: Callable[[str], None] = print, roster: Path | None = None,
            keys_dir: Path | None = None, secret: str | None = None, force: bool = False) -> list[Path]:
    """Check every solution notebook, then write the student notebooks (all or nothing) and store the keys.

    Without a roster the notebooks go to ``out_dir`` (every exercise on the course data); with one, to
    ``out_dir/<student>/`` with each student's own data for exercises with variants. The key store
    (``keys_dir``, default :func:`default_keys_folder`) must lie outside ``out_dir``; an existing store keeps
    its secret, so releasing again (e.g. to a late student) gives everyone the same data. ``secret`` (hex, see
    :func:`~glmmteach.grading.keys.read_secret`) is a new store's secret instead of a random one: the students'
    data are then reproducible from it (a test's release, or one rebuilt on another machine).

    A release into a folder that already holds released notebooks is refused unless ``force``; without
    ``keys_dir`` it then reuses the key store the earlier release recorded (:func:`release_record`).
    """
    exercises = load_exercises(source_dir)
    students = read_roster(roster) if roster is not None else []
    folders = [out_dir / row["student"] for row in students] or [out_dir]
    keys_dir = _choose_keys(out_dir, keys_dir, [f / ex.filename for f in folders for ex in exercises], force, log)
    if keys_dir.resolve().is_relative_to(out_dir.resolve()) or out_dir.resolve().is_relative_to(keys_dir.resolve()):
        raise GradingError(f"the key store {keys_dir} must lie outside the release folder {out_dir}")
    if secret is not None and (keys_dir / "keys.json").is_file():
        KeyStore.open(keys_dir, create=False, secret=secret)  # a store with another secret: refuse before the work
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(prepare_release, ex, timeout): ex for ex in exercises}
        prepared: dict[str, Released] = {}
        failures: list[str] = []
        for future in concurrent.futures.as_completed(futures):
            try:
                prepared[futures[future].filename] = future.result()
                log(f"checked {futures[future].filename}")
            except GradingError as exc:
                failures.append(str(exc))
    if failures:
        raise ReleaseError("release refused:\n  " + "\n  ".join(sorted(failures)))
    store = KeyStore.open(keys_dir, create=True, secret=secret)
    for exercise in exercises:
        store.key(exercise, DEFAULT, lambda seed, ex=exercise: prepared[ex.filename].key)
    per_student: dict[tuple[str, str], Released] = {}
    if students:
        known = {row["student"]: row for row in store.roster}
        known.update({row["student"]: row for row in students})
        store.roster = [known[s] for s in sorted(known)]
        store.save()
        jobs_list = [(ex, row["student"]) for ex in exercises if ex.variants for row in students]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures2 = {pool.submit(prepare_variant, ex, store, student, timeout): (ex, student)
                        for ex, student in jobs_list}
            for future in concurrent.futures.as_completed(futures2):
                exercise, student = futures2[future]
                try:
                    per_student[(exercise.filename, student)] = future.result()
                except GradingError as exc:
                    failures.append(f"{student}: {exc}")
        if failures:
            raise ReleaseError("release refused:\n  " + "\n  ".join(sorted(failures)))
        log(f"computed {len(jobs_list)} student key(s) for the exercises with variants")
    elif any(ex.variants for ex in exercises):
        log("note: no roster, so the exercises with variants are released on the course data")
    written = []
    for folder, student in ([(out_dir / row["student"], row["student"]) for row in students] or [(out_dir, None)]):
        folder.mkdir(parents=True, exist_ok=True)
        for exercise in exercises:
            item = per_student.get((exercise.filename, student)) or prepared[exercise.filename]
            target = folder / exercise.filename
            nbformat.write(item.notebook, target)
            for path in exercise.data_files:
                shutil.copyfile(path, folder / path.name)
            written.append(target)
    write_atomic(release_record(out_dir), json.dumps({"keys": str(keys_dir.resolve())}) + "\n")
    log(f"keys stored in {keys_dir} (keep it private; pass it to `glmmteach grade --keys`)")
    return written
