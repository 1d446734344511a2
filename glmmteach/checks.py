r"""Answer checks for exercise notebooks: specific feedback without revealing the answer.

A question is described by a :class:`QuestionSpec` (id, points, kind, shape, tolerance). A numeric answer
:math:`v` is correct when every element satisfies

.. math:: |v - e| \le \max(\text{atol},\ \text{rtol}\,|e|),

with :math:`e` the instructor's value. When it is not, :func:`diagnose` looks for the usual slips by testing
:math:`v` against *variants* of :math:`e` at a looser tolerance: :math:`-e` (wrong sign), :math:`\log e` or
:math:`e^{e}` (log scale versus ratio scale), :math:`1/e` (inverted ratio), :math:`100e`, :math:`1-e`,
:math:`\operatorname{logit} e` and :math:`e/(1-e)` (percentage, complement, log-odds and odds for a
probability), and :math:`e` itself (close, but rounded too much).

The same :func:`diagnose` runs in two places, with two ways of comparing:

* the grader compares with the real values (:class:`ExactMatcher`);
* a released notebook compares with a *public key* (:class:`HashedMatcher`), which stores for each variant
  only a salted SHA-256 digest of the variant's position on a grid: on :math:`(\operatorname{sign} v,\
  \log|v|)` with step :math:`\log(1+\text{rtol})/(M+1)` and, when ``atol > 0``, on :math:`v` with step
  :math:`\text{atol}/(M+1)`. A student's value is accepted when one of the :math:`2M+1` grid positions
  around it has the stored digest, so the notebook accepts a subset of what the grader accepts (at least
  :math:`M/(M+1)` of the tolerance, never more). Nothing in the notebook prints or stores the value.

A released notebook is an oracle, like any self-check: a determined student can search the grid. The digests
only keep the answer out of plain sight; grading never trusts the notebook, it re-scores the extracted answers
in the grader's process against the key computed from the instructor's source.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KEY_FORMAT = 1
GRID_NEIGHBOURS = 4  # M: a value is looked up at its own grid position and M positions either side
RATIO_KINDS = {"odds_ratio", "rate_ratio", "ratio"}
LOG_KINDS = {"log_odds", "log_rate_ratio", "coefficient"}
PROBABILITY_KINDS = {"probability", "p_value"}
NUMERIC_KINDS = RATIO_KINDS | LOG_KINDS | PROBABILITY_KINDS | {"number", "integer", "statistic"}
KINDS = NUMERIC_KINDS | {"choice"}
MAX_TEXT = 1000


class QuestionSpecError(ValueError):
    """A question specification in an exercise notebook is malformed."""


@dataclass(frozen=True)
class QuestionSpec:
    """What a question asks for: the kind and shape of the answer, its points and tolerance."""

    id: str
    points: float = 1.0
    kind: str = "number"
    shape: tuple[int, ...] = ()
    rtol: float = 1e-3
    atol: float = 0.0
    options: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> QuestionSpec:
        """Build from notebook metadata, naming the field at fault on bad input."""
        if not isinstance(spec, Mapping) or not isinstance(spec.get("id"), str) or not spec["id"]:
            raise QuestionSpecError(f"question spec needs a non-empty string 'id', got {spec!r}")
        qid = spec["id"]
        unknown = set(spec) - {"id", "points", "kind", "shape", "rtol", "atol", "options", "labels"}
        if unknown:
            raise QuestionSpecError(f"question {qid!r}: unknown field(s) {sorted(unknown)}")
        kind = spec.get("kind", "number")
        if kind not in KINDS:
            raise QuestionSpecError(f"question {qid!r}: kind {kind!r} is not one of {sorted(KINDS)}")
        points = float(spec.get("points", 1.0))
        rtol = float(spec.get("rtol", 0.0 if kind == "integer" else 1e-3))
        atol = float(spec.get("atol", 0.5 if kind == "integer" else 0.0))
        if points <= 0 or rtol < 0 or atol < 0 or (kind != "choice" and rtol == 0 and atol == 0):
            raise QuestionSpecError(f"question {qid!r}: need points > 0 and a positive rtol or atol")
        shape = tuple(int(n) for n in spec.get("shape", ()))
        options = tuple(str(o).strip().lower() for o in spec.get("options", ()))
        if kind == "choice" and (len(options) < 2 or shape):
            raise QuestionSpecError(f"question {qid!r}: a 'choice' needs at least two options and no shape")
        labels = tuple(str(lab) for lab in spec.get("labels", ()))
        if labels and (len(shape) != 1 or len(labels) != shape[0]):
            raise QuestionSpecError(f"question {qid!r}: 'labels' needs a 1-d shape of the same length")
        return cls(qid, points, kind, shape, rtol, atol, options, labels)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "points": self.points, "kind": self.kind, "shape": list(self.shape),
                "rtol": self.rtol, "atol": self.atol, "options": list(self.options),
                "labels": list(self.labels)}

    @property
    def loose_rtol(self) -> float:
        """Relative tolerance for 'close but not close enough' and for recognising slips."""
        return max(20 * self.rtol, 0.02)

    @property
    def loose_atol(self) -> float:
        return 20 * self.atol


# ---------------------------------------------------------------------------------------------------------
# Answers as plain JSON: what a notebook hands to the grader (and what the notebook itself checks).


def answer_to_json(value: Any) -> Any:
    """Convert an answer to JSON data: numbers, strings and (nested) lists only.

    NumPy scalars and arrays, pandas objects (their values) and tuples are converted; non-finite numbers become
    the strings ``"nan"``, ``"inf"``, ``"-inf"``; anything else becomes ``"<unsupported: TypeName>"``.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if hasattr(value, "to_numpy") and not isinstance(value, np.ndarray):
        try:
            value = value.to_numpy()
        except Exception:  # noqa: BLE001 - an odd object is reported as unsupported, never raised
            return f"<unsupported: {type(value).__name__}>"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            return f"<unsupported: array of {value.dtype}>"
        return answer_to_json(value.tolist()) if value.ndim else answer_to_json(value.item())
    if isinstance(value, (list, tuple)):
        return [answer_to_json(item) for item in value[:100_000]]
    return f"<unsupported: {type(value).__name__}>"


def answers_to_json(answers: Any) -> dict[str, Any]:
    """The ``answers`` dict of a notebook as JSON data (an empty dict if it is not a dict)."""
    if not isinstance(answers, dict):
        return {}
    return {str(qid)[:100]: answer_to_json(value) for qid, value in list(answers.items())[:1000]}


def _numeric_array(value: Any) -> np.ndarray | None:
    """A JSON value as a float array, or None if it holds anything but numbers (booleans excluded)."""

    def numeric(item: Any) -> bool:
        if isinstance(item, list):
            return all(numeric(x) for x in item)
        return isinstance(item, (int, float)) and not isinstance(item, bool)

    if not numeric(value):
        return None
    try:
        return np.asarray(value, dtype=float)
    except ValueError:  # ragged nested lists
        return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "True/False"
    if isinstance(value, str):
        if value in ("nan", "inf", "-inf"):
            return f"a non-finite number ({value})"
        if value.startswith("<unsupported: "):
            return "a " + value[len("<unsupported: "):-1]
        return "text"
    if isinstance(value, list):
        array = _numeric_array(value)
        if array is None:
            return f"a list of length {len(value)} that is not all numbers"
        return f"an array of shape {array.shape}"
    if value is None:
        return "nothing (None)"
    return "a number"


# ---------------------------------------------------------------------------------------------------------
# Variants of the expected value: the common slips and the feedback that names them.


@dataclass(frozen=True)
class Variant:
    name: str
    transform: Callable[[float], float | None]
    message: str


def _safe(function: Callable[[float], float]) -> Callable[[float], float | None]:
    def wrapped(x: float) -> float | None:
        try:
            result = function(x)
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
        return result if math.isfinite(result) and result != x else None

    return wrapped


def variants_for(kind: str) -> list[Variant]:
    """The slips worth recognising for a kind of answer, most specific first."""
    found: list[Variant] = []
    if kind in RATIO_KINDS:
        found += [
            Variant("log", _safe(math.log), "is on the log scale (a log-odds or log rate ratio, i.e. a "
                    "coefficient); the question asks for the ratio itself: exponentiate it."),
            Variant("reciprocal", _safe(lambda e: 1 / e), "is the reciprocal of the ratio asked for: check "
                    "which group is in the numerator (the reference level)."),
        ]
    if kind in LOG_KINDS:
        found.append(Variant("exp", _safe(math.exp), "is on the ratio scale (exponentiated); the question "
                             "asks for the log scale (the coefficient itself)."))
    if kind in PROBABILITY_KINDS:
        found += [
            Variant("percent", _safe(lambda e: 100 * e), "looks like a percentage; give a proportion between "
                    "0 and 1."),
            Variant("complement", _safe(lambda e: 1 - e), "is one minus the probability asked for: check "
                    "which outcome (or tail) the question is about."),
        ]
    if kind == "probability":
        found += [
            Variant("logit", _safe(lambda e: math.log(e / (1 - e))), "is on the log-odds scale; apply the "
                    "inverse logit, exp(x) / (1 + exp(x))."),
            Variant("odds", _safe(lambda e: e / (1 - e)), "is an odds, not a probability: p = odds / "
                    "(1 + odds)."),
        ]
    found.append(Variant("negated", _safe(lambda e: -e), "has the wrong sign."))
    return found


# ---------------------------------------------------------------------------------------------------------
# Matchers: does element i of an answer match a (variant of the) expected value?


class ExactMatcher:
    """Compares with the real expected values; used by the grader and when building a public key."""

    def __init__(self, spec: QuestionSpec, expected: Any) -> None:
        self.spec = spec
        self.expected = expected
        self.array = None if spec.kind == "choice" else np.asarray(expected, dtype=float).ravel()

    def choice(self, value: str) -> bool:
        return value == str(self.expected).strip().lower()

    def target(self, variant: str, element: int) -> float | None:
        assert self.array is not None
        e = float(self.array[element])
        if variant in ("fine", "close"):
            return e
        transform = {v.name: v.transform for v in variants_for(self.spec.kind)}[variant]
        return transform(e)

    def matches(self, variant: str, element: int, value: float) -> bool:
        target = self.target(variant, element)
        if target is None:
            return False
        spec = self.spec
        rtol, atol = (spec.rtol, spec.atol) if variant == "fine" else (spec.loose_rtol, spec.loose_atol)
        return abs(value - target) <= max(atol, rtol * abs(target))


def _digest(salt: str, qid: str, variant: str, element: int, grid: str, position: str) -> str:
    text = f"{salt}|{qid}|{variant}|{element}|{grid}|{position}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _grid_steps(spec: QuestionSpec, variant: str) -> dict[str, float]:
    rtol, atol = (spec.rtol, spec.atol) if variant == "fine" else (spec.loose_rtol, spec.loose_atol)
    steps = {}
    if rtol > 0:
        steps["rel"] = math.log1p(rtol) / (GRID_NEIGHBOURS + 1)
    if atol > 0:
        steps["abs"] = atol / (GRID_NEIGHBOURS + 1)
    return steps


def _grid_position(grid: str, step: float, value: float) -> tuple[str, int] | None:
    if grid == "rel":
        if value == 0:
            return None
        return ("+" if value > 0 else "-"), round(math.log(abs(value)) / step)
    return "", round(value / step)


class HashedMatcher:
    """Compares with the salted digests of a public key; used inside released notebooks."""

    def __init__(self, spec: QuestionSpec, salt: str, digests: Mapping[str, Any]) -> None:
        self.spec, self.salt, self.digests = spec, salt, digests

    def choice(self, value: str) -> bool:
        return _digest(self.salt, self.spec.id, "choice", 0, "", value) == self.digests.get("choice")

    def matches(self, variant: str, element: int, value: float) -> bool:
        stored = self.digests.get(variant)
        if not stored or stored[element] is None:
            return False
        for grid, step in _grid_steps(self.spec, variant).items():
            digest = stored[element].get(grid)
            position = _grid_position(grid, step, value)
            if digest is None or position is None:
                continue
            sign, index = position
            for shift in range(-GRID_NEIGHBOURS, GRID_NEIGHBOURS + 1):
                if _digest(self.salt, self.spec.id, variant, element, grid, f"{sign}{index + shift}") == digest:
                    return True
        return False


def public_digests(spec: QuestionSpec, expected: Any, salt: str) -> dict[str, Any]:
    """Digests of the expected value and its variants at their grid positions (no value is stored)."""
    exact = ExactMatcher(spec, expected)
    if spec.kind == "choice":
        return {"choice": _digest(salt, spec.id, "choice", 0, "", str(expected).strip().lower())}
    assert exact.array is not None
    digests: dict[str, Any] = {}
    for variant in ["fine", "close"] + [v.name for v in variants_for(spec.kind)]:
        per_element: list[dict[str, str] | None] = []
        for element in range(exact.array.size):
            target = exact.target(variant, element)
            entry: dict[str, str] = {}
            for grid, step in _grid_steps(spec, variant).items():
                position = None if target is None else _grid_position(grid, step, target)
                if position is not None:
                    entry[grid] = _digest(salt, spec.id, variant, element, grid, f"{position[0]}{position[1]}")
            per_element.append(entry or None)
        digests[variant] = per_element
    return digests


# ---------------------------------------------------------------------------------------------------------
# Diagnosis: shared by the notebook and the grader.


@dataclass
class Feedback:
    question: str
    correct: bool
    message: str
    points: float = 0.0
    max_points: float = 0.0

    def __str__(self) -> str:
        return f"{self.question}: correct." if self.correct else f"{self.question}: not yet - {self.message}"


def _range_problem(kind: str, values: np.ndarray) -> str | None:
    if kind in RATIO_KINDS and np.any(values <= 0):
        return "is not positive, and a ratio always is."
    if kind in PROBABILITY_KINDS and np.any((values < 0) | (values > 1)):
        return "is outside [0, 1], where a probability lies."
    if kind == "integer" and np.any(values != np.round(values)):
        return "is not a whole number."
    return None


def validate_answer_form(spec: QuestionSpec, value: Any) -> str | None:
    """Why ``value`` (JSON data) cannot be an answer to ``spec`` at all, or None if its form is right."""
    if value is None:
        return "no answer recorded."
    if spec.kind == "choice":
        if not isinstance(value, str) or value.startswith("<unsupported"):
            return f"expected one of {list(spec.options)} (text), got {_describe(value)}."
        if value.strip().lower() not in spec.options:
            return f"expected one of {list(spec.options)}, got {value[:40]!r}."
        return None
    array = _numeric_array(value)
    if array is None:
        wanted = "a single number" if not spec.shape else f"an array of shape {spec.shape}"
        return f"expected {wanted}, got {_describe(value)}."
    if array.shape != spec.shape:
        if not spec.shape:
            return (f"expected a single number, got {_describe(value)}; take the element out "
                    "(e.g. float(x.iloc[0]) or x[0]).")
        return f"expected an array of shape {spec.shape}, got shape {array.shape}."
    if spec.kind == "integer" and np.any(array != np.round(array)):
        return "expected a whole number."
    return None


def solution_range_problem(spec: QuestionSpec, value: Any) -> str | None:
    """Why a well-formed answer cannot be right for its kind (e.g. a negative odds ratio), or None."""
    if spec.kind == "choice":
        return None
    problem = _range_problem(spec.kind, np.asarray(value, dtype=float))
    return None if problem is None else f"the answer {problem}"


def diagnose(spec: QuestionSpec, value: Any, matcher: ExactMatcher | HashedMatcher) -> Feedback:
    """Score one answer (JSON data) and explain what is wrong with it without naming the expected value."""
    form_problem = validate_answer_form(spec, value)
    if form_problem is not None:
        return Feedback(spec.id, False, form_problem, 0.0, spec.points)
    if spec.kind == "choice":
        correct = matcher.choice(value.strip().lower())
        message = "right." if correct else "that is not the right option."
        return Feedback(spec.id, correct, message, spec.points if correct else 0.0, spec.points)
    values = np.asarray(value, dtype=float).ravel()
    slips = variants_for(spec.kind)
    problems: list[tuple[int, str]] = []
    for element, v in enumerate(values):
        if matcher.matches("fine", element, v):
            continue
        if spec.kind != "integer" and matcher.matches("close", element, v):
            problem = ("is close but outside the tolerance (relative "
                       f"{spec.rtol:g}{f', absolute {spec.atol:g}' if spec.atol else ''}): do not round "
                       "intermediate results, and check you used exactly the model asked for.")
        else:
            slip = next((s.message for s in slips if matcher.matches(s.name, element, v)), None)
            problem = slip or _range_problem(spec.kind, np.array([v])) or "is not correct."
        problems.append((element, problem))
    if not problems:
        return Feedback(spec.id, True, "right.", spec.points, spec.points)
    if not spec.shape:
        return Feedback(spec.id, False, "your answer " + problems[0][1], 0.0, spec.points)
    names = spec.labels or tuple(f"element [{i}]" for i in range(values.size))
    by_message: dict[str, list[str]] = {}
    for element, problem in problems:
        by_message.setdefault(problem, []).append(names[element])
    parts = [f"{', '.join(where)} {problem.rstrip('.')}" for problem, where in by_message.items()]
    return Feedback(spec.id, False, "; ".join(parts) + ".", 0.0, spec.points)


# ---------------------------------------------------------------------------------------------------------
# The notebook side.


def make_public_key(exercise: str, specs: list[QuestionSpec], expected: Mapping[str, Any]) -> dict[str, Any]:
    """The key a released notebook carries: specs and digests, no values."""
    salt = hashlib.sha256(f"glmmteach|{exercise}".encode()).hexdigest()[:16]
    return {"format": KEY_FORMAT, "exercise": exercise, "salt": salt,
            "questions": {s.id: {"spec": s.to_dict(), "digests": public_digests(s, expected[s.id], salt)}
                          for s in specs}}


@dataclass
class ExerciseChecks:
    """``answers``, ``record`` and ``check`` for one exercise notebook.

    Without a key (the instructor's source, or the book) ``check`` only checks the form of an answer; with the
    public key of a released notebook it also says whether the answer is right, and if not, what kind of slip
    it looks like.
    """

    exercise: str
    questions: dict[str, QuestionSpec] = field(default_factory=dict)
    key: dict[str, Any] | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    results: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_key(cls, key_json: str) -> ExerciseChecks:
        key = json.loads(key_json)
        if key.get("format") != KEY_FORMAT:
            raise ValueError(f"answer key format {key.get('format')!r} is not {KEY_FORMAT}; re-release")
        specs = {qid: QuestionSpec.from_dict(q["spec"]) for qid, q in key["questions"].items()}
        return cls(key["exercise"], specs, key)

    @classmethod
    def from_specs(cls, exercise: str, specs_json: str) -> ExerciseChecks:
        specs = [QuestionSpec.from_dict(s) for s in json.loads(specs_json)]
        return cls(exercise, {s.id: s for s in specs})

    def record(self, question: str, value: Any) -> None:
        """Store an answer for grading (no feedback)."""
        self.answers[question] = value

    def feedback(self, question: str, value: Any) -> Feedback:
        spec = self.questions.get(question)
        if spec is None and self.key is None and not self.questions:
            return Feedback(question, False, "answer recorded (no answer key in this notebook).")
        if spec is None:
            known = sorted(self.questions)
            return Feedback(question, False, f"there is no question {question!r}"
                            + (f"; questions are {known}." if known else "."))
        data = answer_to_json(value)
        if self.key is None:
            problem = validate_answer_form(spec, data) or solution_range_problem(spec, data)
            message = problem or "answer recorded (no answer key in this notebook, so only its form is checked)."
            return Feedback(question, False, message, 0.0, spec.points)
        digests = self.key["questions"][question]["digests"]
        return diagnose(spec, data, HashedMatcher(spec, self.key["salt"], digests))

    def check(self, question: str, value: Any) -> bool:
        """Record ``value`` as the answer to ``question`` and print feedback on it."""
        self.record(question, value)
        result = self.feedback(question, value)
        self.results[question] = result.correct
        if self.key is None:
            print(f"{question}: {result.message}")
        else:
            print(result)
        return result.correct
