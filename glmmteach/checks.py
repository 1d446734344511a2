r"""Answer checks for exercise notebooks: specific feedback on form, exact scoring only by the grader.

A question is described by a :class:`QuestionSpec` (id, points, kind, shape, tolerance). A numeric answer
:math:`v` is correct when every element satisfies

.. math:: |v - e| \le \max(\text{atol},\ \text{rtol}\,|e|),

with :math:`e` the instructor's value: :meth:`QuestionSpec.accepts` is that one definition of the tolerance,
used by the grader and by the size hints of a released notebook.

Two places check answers, and only one of them knows the answer:

* **the grader** compares with the real values (:class:`ExactMatcher`): :func:`diagnose` says "right", or names
  the slip by testing :math:`v` against *variants* of :math:`e` at a looser tolerance: :math:`-e` (wrong sign),
  :math:`\log e` or :math:`e^{e}` (log scale versus ratio scale), :math:`1/e` (inverted ratio),
  :math:`100e`, :math:`1-e`, :math:`\operatorname{logit} e` and :math:`e/(1-e)`, and :math:`e` itself (close,
  but rounded too much);
* **a released notebook** holds no answer, no digest of one and no secret: its public key
  (:func:`make_public_key`) has the question specs and, per element of a numeric answer, a *size hint* — the
  sign and a window one decade wide (on a half-decade grid, with the answer at least a quarter decade from
  either edge, so a factor of about 1.8) — coarse enough that finding the answer from it takes as long as
  solving the exercise. :func:`check_form` gives feedback on form (type, shape, range of the kind, sign, log
  versus ratio scale, percentage, reciprocal, size) and never says "right": that is the grader's word.
  A window is only published when it contains the whole tolerance interval, so an answer the grader accepts is
  never told it is of the wrong size.

An exercise may draw its data per student (:attr:`ExerciseChecks.seed`, see :mod:`glmmteach.variants`); the
seed of a released notebook is public (the student needs it to get their data), the grader never reads it from
a submission.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KEY_FORMAT = 2
RATIO_KINDS = {"odds_ratio", "rate_ratio", "ratio"}
LOG_KINDS = {"log_odds", "log_rate_ratio", "coefficient"}
PROBABILITY_KINDS = {"probability", "p_value"}
NUMERIC_KINDS = RATIO_KINDS | LOG_KINDS | PROBABILITY_KINDS | {"number", "integer", "statistic"}
MANUAL_KINDS = {"text"}  # free text, marked by the instructor (exported by the grader, marks merged back)
UNMARKED = "free text, to be marked by the instructor (not marked yet)."
KINDS = NUMERIC_KINDS | {"choice"} | MANUAL_KINDS
NO_SIZE_HINT_KINDS = {"integer"}  # a window around a small whole number would all but give it away
MAX_TEXT = 1000


class QuestionSpecError(ValueError):
    """A question specification in an exercise notebook is malformed."""


# What a misconception does to the right answer, element by element: the wrong value it predicts. Only
# named transforms (never typed numbers); a wrong value that is no function of the answer (a chi2_1 p-value
# where the chi2 mixture's is right, a Laplace fit where quadrature is asked for) is computed by the
# solution and recorded as ``record("q6~chi2_1", value)`` (see :func:`alternative_id`).
TRANSFORMS: dict[str, Callable[[float], float]] = {
    "square": lambda e: e * e,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "expit": lambda e: 1 / (1 + math.exp(-e)),
    "logit": lambda e: math.log(e / (1 - e)),
    "double": lambda e: 2 * e,
    "half": lambda e: e / 2,
    "reciprocal": lambda e: 1 / e,
    "complement": lambda e: 1 - e,
    "negated": lambda e: -e,
}
RECORDED = "recorded"  # the transform of a misconception whose wrong value the solution computes


def alternative_id(question: str, name: str) -> str:
    """The answer id under which a solution records the wrong value a misconception predicts."""
    return f"{question}~{name}"


@dataclass(frozen=True)
class Misconception:
    """A statistical misconception a wrong answer reveals: its name, the wrong value it predicts (a named
    transform of the right answer, or ``"recorded"``: computed by the solution) and one sentence for the
    student that names the idea without giving the answer away."""

    name: str
    transform: str
    message: str
    element: str | None = None  # for an array answer: the label of the one element it concerns

    @classmethod
    def from_dict(cls, question: str, spec: Any) -> Misconception:
        fields = set(spec) if isinstance(spec, Mapping) else set()
        if not {"name", "transform", "message"} <= fields <= {"name", "transform", "message", "element"}:
            raise QuestionSpecError(f"question {question!r}: a misconception needs exactly 'name', "
                                    f"'transform' and 'message' (and optionally 'element'), got {spec!r}")
        element = spec.get("element")
        if element is not None and not isinstance(element, str):
            raise QuestionSpecError(f"question {question!r}: misconception element {element!r} must be a label")
        name, transform, message = (spec[k] for k in ("name", "transform", "message"))
        if not isinstance(name, str) or not name.isidentifier():
            raise QuestionSpecError(f"question {question!r}: misconception name {name!r} must be an identifier")
        if transform not in TRANSFORMS and transform != RECORDED:
            raise QuestionSpecError(f"question {question!r}: misconception {name!r} has transform "
                                    f"{transform!r}, not one of {sorted(TRANSFORMS) + [RECORDED]}")
        if not isinstance(message, str) or not message.strip():
            raise QuestionSpecError(f"question {question!r}: misconception {name!r} needs a message")
        return cls(name, transform, message.strip(), element)

    def to_dict(self) -> dict[str, str]:
        found = {"name": self.name, "transform": self.transform, "message": self.message}
        return found if self.element is None else {**found, "element": self.element}

    def concerns(self, spec: QuestionSpec, element: int) -> bool:
        return self.element is None or spec.labels[element] == self.element


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
    misconceptions: tuple[Misconception, ...] = ()
    uses: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> QuestionSpec:
        """Build from notebook metadata, naming the field at fault on bad input."""
        if not isinstance(spec, Mapping) or not isinstance(spec.get("id"), str) or not spec["id"]:
            raise QuestionSpecError(f"question spec needs a non-empty string 'id', got {spec!r}")
        qid = spec["id"]
        unknown = set(spec) - {"id", "points", "kind", "shape", "rtol", "atol", "options", "labels",
                               "misconceptions", "uses"}
        if unknown:
            raise QuestionSpecError(f"question {qid!r}: unknown field(s) {sorted(unknown)}")
        kind = spec.get("kind", "number")
        if kind not in KINDS:
            raise QuestionSpecError(f"question {qid!r}: kind {kind!r} is not one of {sorted(KINDS)}")
        points = float(spec.get("points", 1.0))
        rtol = float(spec.get("rtol", 0.0 if kind == "integer" else 1e-3))
        atol = float(spec.get("atol", 0.5 if kind == "integer" else 0.0))
        numeric = kind in NUMERIC_KINDS
        if points <= 0 or rtol < 0 or atol < 0 or (numeric and rtol == 0 and atol == 0):
            raise QuestionSpecError(f"question {qid!r}: need points > 0 and a positive rtol or atol")
        shape = tuple(int(n) for n in spec.get("shape", ()))
        options = tuple(str(o).strip().lower() for o in spec.get("options", ()))
        if kind == "choice" and (len(options) < 2 or shape):
            raise QuestionSpecError(f"question {qid!r}: a 'choice' needs at least two options and no shape")
        if kind in MANUAL_KINDS and shape:
            raise QuestionSpecError(f"question {qid!r}: a 'text' answer has no shape")
        labels = tuple(str(lab) for lab in spec.get("labels", ()))
        if labels and (len(shape) != 1 or len(labels) != shape[0]):
            raise QuestionSpecError(f"question {qid!r}: 'labels' needs a 1-d shape of the same length")
        misconceptions = tuple(Misconception.from_dict(qid, m) for m in spec.get("misconceptions", ()))
        if misconceptions and kind not in NUMERIC_KINDS:
            raise QuestionSpecError(f"question {qid!r}: 'misconceptions' need a numeric kind, not {kind!r}")
        stray = [m.element for m in misconceptions if m.element is not None and m.element not in labels]
        if stray:
            raise QuestionSpecError(f"question {qid!r}: misconception element(s) {stray} are not among the "
                                    f"labels {list(labels)}")
        uses = spec.get("uses", [])
        if not isinstance(uses, list) or not all(isinstance(u, str) and u and u != qid for u in uses):
            raise QuestionSpecError(f"question {qid!r}: 'uses' must be a list of other question ids, got "
                                    f"{uses!r}")
        return cls(qid, points, kind, shape, rtol, atol, options, labels, misconceptions, tuple(uses))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "points": self.points, "kind": self.kind, "shape": list(self.shape),
                "rtol": self.rtol, "atol": self.atol, "options": list(self.options),
                "labels": list(self.labels), "misconceptions": [m.to_dict() for m in self.misconceptions],
                "uses": list(self.uses)}

    def tolerance(self, target: float, *, loose: bool = False) -> float:
        """How far an answer may be from ``target`` and still count as ``target`` (one definition for all)."""
        rtol, atol = (self.loose_rtol, self.loose_atol) if loose else (self.rtol, self.atol)
        return max(atol, rtol * abs(target))

    def accepts(self, value: float, target: float, *, loose: bool = False) -> bool:
        """True when ``value`` is within the tolerance of ``target``."""
        return abs(value - target) <= self.tolerance(target, loose=loose)

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
    except (ValueError, OverflowError):  # ragged nested lists; an integer beyond the float range
        return None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "True/False"
    if isinstance(value, str):
        if value in ("nan", "inf", "-inf"):
            return f"a non-finite number ({value})"
        if value == "<unsupported: NoneType>":
            return "nothing (None): assign the answer to the variable before checking it"
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
    if isinstance(value, int) and abs(value) > 2**1023:
        digits = int(value.bit_length() * 0.30103) + 1  # str() of a huge int raises (Python's digit limit)
        return f"a whole number too large for a floating-point number (about {digits:,} digits)"
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

    def __init__(self, spec: QuestionSpec, expected: Any, alternatives: Mapping[str, Any] | None = None
                 ) -> None:
        """``alternatives``: the wrong values of the spec's ``"recorded"`` misconceptions, by name (as the
        solution recorded them; a missing one is simply not recognised)."""
        self.spec = spec
        self.expected = expected
        self.array = np.asarray(expected, dtype=float).ravel() if spec.kind in NUMERIC_KINDS else None
        self.alternatives: dict[str, np.ndarray] = {}
        for name, value in (alternatives or {}).items():
            array = _numeric_array(value)
            if array is not None and self.array is not None and array.size == self.array.size:
                self.alternatives[name] = array.ravel()

    def misconception(self, element: int, value: float) -> str | None:
        """The message of the first misconception whose predicted wrong value ``value`` matches."""
        assert self.array is not None
        e = float(self.array[element])
        for m in self.spec.misconceptions:
            if not m.concerns(self.spec, element):
                continue
            if m.transform == RECORDED:
                predicted = self.alternatives.get(m.name)
                wrong = None if predicted is None else float(predicted[element])
            else:
                wrong = _safe(TRANSFORMS[m.transform])(e)
            if wrong is not None and math.isfinite(wrong) and self.spec.accepts(value, wrong, loose=True):
                return m.message
        return None

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
        return target is not None and self.spec.accepts(value, target, loose=variant != "fine")


# ---------------------------------------------------------------------------------------------------------
# Size hints: what a released notebook knows about an answer (its sign and a window one decade wide).

HALF_DECADE = 0.5


def size_hint(spec: QuestionSpec, expected: float) -> dict[str, int] | None:
    """The public hint for one element: ``{"sign": -1|0|1, "window": m}`` with :math:`|e|` in
    :math:`[10^{m/2}, 10^{m/2+1})` and at least a quarter decade from either edge; None when the kind gets no
    hint or the tolerance interval would not fit inside the window (or on one side of zero)."""
    if spec.kind in NO_SIZE_HINT_KINDS or spec.kind not in NUMERIC_KINDS or not math.isfinite(expected):
        return None
    tolerance = spec.tolerance(expected)
    if expected == 0 or tolerance >= abs(expected):
        return None
    log10 = math.log10(abs(expected))
    window = math.floor(2 * log10 - 0.5)  # log10|e| - window/2 lies in [0.25, 0.75)
    low, high = 10 ** (window * HALF_DECADE), 10 ** (window * HALF_DECADE + 1)
    if abs(expected) - tolerance < low or abs(expected) + tolerance > high:
        return None
    return {"sign": 1 if expected > 0 else -1, "window": window}


def size_hints(spec: QuestionSpec, expected: Any) -> list[dict[str, int] | None] | None:
    """Hints for every element of a numeric answer (None for a choice or a text answer)."""
    if spec.kind not in NUMERIC_KINDS:
        return None
    return [size_hint(spec, float(e)) for e in np.asarray(expected, dtype=float).ravel()]


def _window_text(window: int) -> str:
    low, high = 10 ** (window * HALF_DECADE), 10 ** (window * HALF_DECADE + 1)
    return f"between {low:.3g} and {high:.3g} in absolute value"


def _in_window(value: float, hint: Mapping[str, int]) -> bool:
    if value == 0 or not math.isfinite(value) or (1 if value > 0 else -1) != hint["sign"]:
        return False
    log10 = math.log10(abs(value))
    return hint["window"] * HALF_DECADE <= log10 < hint["window"] * HALF_DECADE + 1


def _student_slips(kind: str) -> list[tuple[Callable[[float], float | None], str]]:
    """The usual slips, as what undoes them on the student's value (to compare with a size hint)."""
    found: list[tuple[Callable[[float], float | None], str]] = []
    messages = {v.name: v.message for v in variants_for(kind)}
    if kind in RATIO_KINDS:
        found += [(_safe(math.exp), messages["log"]), (_safe(lambda v: 1 / v), messages["reciprocal"])]
    if kind in LOG_KINDS:
        found.append((_safe(math.log), messages["exp"]))
    if kind == "probability":
        found += [(_safe(lambda v: 1 / (1 + math.exp(-v))), messages["logit"]),
                  (_safe(lambda v: v / (1 + v)), messages["odds"])]
    if kind in PROBABILITY_KINDS:
        found.append((_safe(lambda v: v / 100), messages["percent"]))
    if kind not in RATIO_KINDS | PROBABILITY_KINDS:  # these are never negative: a range problem says so
        found.append((_safe(lambda v: -v), messages["negated"]))
    return found


# What undoes each transform: a released notebook has no answer, so it can only ask whether the student's
# value, undone, lands in the answer's size window.
INVERSES = {"square": "sqrt", "sqrt": "square", "exp": "log", "log": "exp", "expit": "logit", "logit": "expit",
            "double": "half", "half": "double", "reciprocal": "reciprocal", "complement": "complement",
            "negated": "negated"}


def _misconception_undos(spec: QuestionSpec) -> list[tuple[Callable[[float], float | None], str]]:
    """The spec's transform misconceptions, as what undoes them on the student's value (recorded ones need
    the answer, which only the grader has)."""
    return [(_safe(TRANSFORMS[INVERSES[m.transform]]), m.message) for m in spec.misconceptions
            if m.transform in INVERSES and m.element is None]


def _form_problem(spec: QuestionSpec, value: float, hint: Mapping[str, int] | None) -> str | None:
    """What is visibly wrong with one element, judged from the kind and the public hint only."""
    if spec.kind in PROBABILITY_KINDS and 1 < value <= 100:
        return next(v.message for v in variants_for(spec.kind) if v.name == "percent")
    problem = _range_problem(spec.kind, np.array([value]))
    if hint is None or _in_window(value, hint):
        return problem
    candidates = _student_slips(spec.kind) + _misconception_undos(spec)
    slips = [message for undo, message in candidates
             if (undone := undo(value)) is not None and _in_window(undone, hint)]
    if len(slips) == 1:
        return slips[0]
    size = f"is not of the expected size (the answer is {_window_text(hint['window'])})"
    if slips:  # several slips would explain it: name them all rather than guess
        return size + "; perhaps it " + "; or it ".join(m.rstrip(".") for m in slips) + "."
    return problem or size + "."


def check_form(spec: QuestionSpec, value: Any, hints: list[Any] | None) -> Feedback:
    """Feedback a released notebook can give without knowing the answer: form, range, sign, scale and size.

    ``correct`` means only "nothing visibly wrong"; the grader decides whether the value is right.
    """
    form_problem = validate_answer_form(spec, value)
    if form_problem is not None:
        return Feedback(spec.id, False, form_problem, 0.0, spec.points)
    if spec.kind not in NUMERIC_KINDS:
        return Feedback(spec.id, True, "recorded; the grader marks it.", 0.0, spec.points)
    values = np.asarray(value, dtype=float).ravel()
    hints = hints or [None] * values.size
    problems = [(i, p) for i, v in enumerate(values) if (p := _form_problem(spec, float(v), hints[i]))]
    if not problems:
        sized = any(h is not None for h in hints)
        what = "of the expected form and size" if sized else "of the expected form"
        return Feedback(spec.id, True, f"recorded, {what}; the grader checks the value.", 0.0, spec.points)
    return Feedback(spec.id, False, _element_message(spec, values.size, problems), 0.0, spec.points)


def _element_message(spec: QuestionSpec, size: int, problems: list[tuple[int, str]]) -> str:
    if not spec.shape:
        return "your answer " + problems[0][1]
    names = spec.labels or tuple(f"element [{i}]" for i in range(size))
    by_message: dict[str, list[str]] = {}
    for element, problem in problems:
        by_message.setdefault(problem, []).append(names[element])
    return "; ".join(_phrase(where, problem) for problem, where in by_message.items()) + "."


def _phrase(where: list[str], problem: str) -> str:
    """``["lower", "upper"], "is not correct."`` -> ``"lower and upper are not correct"``."""
    if len(where) == 1:
        return f"{where[0]} {problem.rstrip('.')}"
    plural = {"is ": "are ", "has ": "have ", "looks ": "look "}
    verb = next((v for v in plural if problem.startswith(v)), None)
    if verb is not None:
        problem = plural[verb] + problem[len(verb):]
    return f"{', '.join(where[:-1])} and {where[-1]} {problem.rstrip('.')}"


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
    if spec.kind in MANUAL_KINDS:
        if not isinstance(value, str) or value.startswith("<unsupported") or not value.strip():
            return f"expected some text, got {_describe(value) if value != '' else 'empty text'}."
        return None
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
    if spec.kind not in NUMERIC_KINDS:
        return None
    problem = _range_problem(spec.kind, np.asarray(value, dtype=float))
    return None if problem is None else f"the answer {problem}"


def diagnose(spec: QuestionSpec, value: Any, matcher: ExactMatcher) -> Feedback:
    """Score one answer (JSON data) and explain what is wrong with it without naming the expected value."""
    form_problem = validate_answer_form(spec, value)
    if form_problem is not None:
        return Feedback(spec.id, False, form_problem, 0.0, spec.points)
    if spec.kind in MANUAL_KINDS:
        return Feedback(spec.id, False, UNMARKED, 0.0, spec.points)
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
        else:  # a named misconception is more telling than a generic slip, so it comes first
            slip = matcher.misconception(element, v) or next(
                (s.message for s in slips if matcher.matches(s.name, element, v)), None)
            problem = slip or _range_problem(spec.kind, np.array([v])) or "is not correct."
        problems.append((element, problem))
    if not problems:
        return Feedback(spec.id, True, "right.", spec.points, spec.points)
    message = _element_message(spec, values.size, problems)
    right = [i for i in range(values.size) if i not in {element for element, _ in problems}]
    if not right:
        return Feedback(spec.id, False, message, 0.0, spec.points)
    # partial credit: each element of an array answer earns its share of the points
    names = spec.labels or tuple(f"element [{i}]" for i in range(values.size))
    credit = f"{_phrase([names[i] for i in right], 'is right')} ({len(right)} of {values.size}); "
    return Feedback(spec.id, False, credit + message, spec.points * len(right) / values.size, spec.points)


def missing_prerequisite(spec: QuestionSpec, answers: Mapping[str, Any]) -> str | None:
    """For an unanswered question that builds on earlier ones (``uses``): which of those are missing too."""
    missing = [q for q in spec.uses if answers.get(q) is None]
    if not missing:
        return None
    which = " and ".join(missing)
    return (f"no answer recorded; {spec.id} uses your answer to {which}, which "
            f"{'is' if len(missing) == 1 else 'are'} missing: answer {which} first.")


# ---------------------------------------------------------------------------------------------------------
# The notebook side.


def make_public_key(exercise: str, specs: list[QuestionSpec], expected: Mapping[str, Any],
                    seed: int | None = None) -> dict[str, Any]:
    """What a released notebook carries: the specs, coarse size hints and the data seed; no answer, no digest."""
    return {"format": KEY_FORMAT, "exercise": exercise, "seed": seed,
            "questions": {s.id: {"spec": s.to_dict(), "hints": size_hints(s, expected[s.id])} for s in specs}}


@dataclass
class ExerciseChecks:
    """``answers``, ``record`` and ``check`` for one exercise notebook, and the seed of its data.

    In the instructor's source (and the book) ``ExerciseChecks("name")`` knows no questions: ``check`` records
    the answer and confirms it in one line. A released notebook is set up ``from_key`` with its public key:
    ``check`` then also gives feedback on the answer's form and size (:func:`check_form`), never on its exact
    value. ``seed`` is None for the course data, or the seed of the student's own variant of the data.
    """

    exercise: str
    questions: dict[str, QuestionSpec] = field(default_factory=dict)
    key: dict[str, Any] | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    results: dict[str, bool] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def from_key(cls, key_json: str) -> ExerciseChecks:
        key = json.loads(key_json)
        if key.get("format") != KEY_FORMAT:
            raise ValueError(f"answer key format {key.get('format')!r} is not {KEY_FORMAT}; re-release")
        specs = {qid: QuestionSpec.from_dict(q["spec"]) for qid, q in key["questions"].items()}
        return cls(key["exercise"], specs, key, seed=key.get("seed"))

    @classmethod
    def from_specs(cls, exercise: str, specs_json: str, seed: int | None = None) -> ExerciseChecks:
        specs = [QuestionSpec.from_dict(s) for s in json.loads(specs_json)]
        return cls(exercise, {s.id: s for s in specs}, seed=seed)

    def record(self, question: str, value: Any) -> None:
        """Store an answer for grading (no feedback)."""
        self.answers[question] = value

    def feedback(self, question: str, value: Any) -> Feedback:
        spec = self.questions.get(question)
        if spec is None and not self.questions:
            return Feedback(question, True, "answer recorded.")
        if spec is None:
            return Feedback(question, False, f"there is no question {question!r}; questions are "
                            f"{sorted(self.questions)}.")
        data = answer_to_json(value)
        hints = None if self.key is None else self.key["questions"][question].get("hints")
        return check_form(spec, data, hints)

    def check(self, question: str, value: Any) -> None:
        """Record ``value`` as the answer to ``question`` and print one line of feedback on it.

        Returns None (so that a notebook shows only that line); ``results[question]`` says whether nothing
        visibly wrong was found.
        """
        self.record(question, value)
        result = self.feedback(question, value)
        self.results[question] = result.correct
        print(f"{question}: {result.message}" if result.correct else str(result))
