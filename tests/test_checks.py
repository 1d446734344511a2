"""Feedback that teaches: misconceptions recognised from the answer's value, partial credit per element, and
questions that build on an earlier answer saying so (glmmteach.checks, scored as the grader scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from glmmteach.checks import (
    TRANSFORMS,
    ExactMatcher,
    QuestionSpec,
    QuestionSpecError,
    alternative_id,
    check_form,
    diagnose,
    make_public_key,
    missing_prerequisite,
    size_hints,
)
from glmmteach.grading import score_answer

SD_MESSAGE = "is a variance where the question asks for a standard deviation."
MIXTURE_MESSAGE = "uses chi-squared with one degree of freedom: tau = 0 is on the boundary."


def _spec(**fields) -> QuestionSpec:
    return QuestionSpec.from_dict({"id": "q1", **fields})


def test_a_variance_given_for_an_sd_names_the_misconception():
    spec = _spec(misconceptions=[{"name": "variance", "transform": "square", "message": SD_MESSAGE}])
    tau = 1.8734
    feedback = diagnose(spec, tau**2, ExactMatcher(spec, tau))
    assert not feedback.correct and feedback.points == 0
    assert feedback.message == "your answer " + SD_MESSAGE
    assert diagnose(spec, tau, ExactMatcher(spec, tau)).message == "right."
    # an unrelated wrong value is not called a variance
    assert "variance" not in diagnose(spec, 1.3 * tau, ExactMatcher(spec, tau)).message


def test_chi2_1_p_value_where_the_mixture_is_right_is_recognised_from_the_recorded_alternative():
    spec = _spec(kind="p_value", rtol=0.01,
                 misconceptions=[{"name": "chi2_1", "transform": "recorded", "message": MIXTURE_MESSAGE}])
    statistic = 2.37
    mixture, chi2_1 = 0.5 * stats.chi2.sf(statistic, 1), stats.chi2.sf(statistic, 1)
    key = {"q1": mixture, alternative_id("q1", "chi2_1"): chi2_1}
    assert score_answer(spec, key["q1"], chi2_1, key).message == "your answer " + MIXTURE_MESSAGE
    assert score_answer(spec, key["q1"], mixture, key).correct
    # a key without the recorded value (an older release) scores as before: no misconception named
    assert MIXTURE_MESSAGE not in score_answer(spec, key["q1"], chi2_1).message


def test_a_misconception_comes_before_the_generic_slips_and_after_close():
    spec = _spec(kind="probability", misconceptions=[
        {"name": "conditional", "transform": "recorded", "message": "is the conditional probability."}])
    population, conditional = 0.31, 0.19
    matcher = ExactMatcher(spec, population, {"conditional": conditional})
    assert diagnose(spec, conditional, matcher).message == "your answer is the conditional probability."
    assert "close" in diagnose(spec, population * 1.005, matcher).message
    assert "odds" in diagnose(spec, population / (1 - population), matcher).message


def test_array_answers_get_partial_credit_and_say_which_elements_are_right():
    spec = _spec(kind="odds_ratio", points=2, shape=[2], labels=["lower", "upper"])
    interval = np.exp(np.array([-0.21, 1.43]))
    feedback = diagnose(spec, [interval[0], math.log(interval[1])], ExactMatcher(spec, interval))
    assert not feedback.correct and feedback.points == pytest.approx(spec.points / 2)
    assert feedback.message.startswith("lower is right (1 of 2); upper is on the log scale")
    three = _spec(shape=[3], points=3, labels=["laplace", "agq5", "exact"])
    values = np.array([-1.52, -1.47, -1.46])
    partly = diagnose(three, [values[0], values[1], 0.0], ExactMatcher(three, values))
    assert partly.points == pytest.approx(2 * three.points / 3)
    assert partly.message.startswith("laplace and agq5 are right (2 of 3); exact is not correct")
    nothing = diagnose(three, (-values).tolist(), ExactMatcher(three, values))
    assert nothing.points == 0 and "right" not in nothing.message


def test_a_question_that_builds_on_a_missing_answer_says_so():
    spec = _spec(uses=["q0"])
    assert missing_prerequisite(spec, {}) == ("no answer recorded; q1 uses your answer to q0, which is "
                                              "missing: answer q0 first.")
    assert missing_prerequisite(spec, {"q0": 1.5}) is None
    two = QuestionSpec.from_dict({"id": "q6", "uses": ["q4", "q5"]})
    assert "q6 uses your answer to q4 and q5, which are missing" in missing_prerequisite(two, {"q4": None})


@pytest.mark.parametrize(("field", "value", "named"), [
    ("misconceptions", [{"name": "v", "transform": "cube", "message": "m"}], "'cube'"),
    ("misconceptions", [{"name": "v", "transform": "square"}], "exactly 'name'"),
    ("misconceptions", [{"name": "not a name", "transform": "square", "message": "m"}], "'not a name'"),
    ("uses", "q0", "'uses'"),
    ("uses", ["q1"], "'uses'"),
])
def test_malformed_feedback_specs_are_refused_naming_the_field(field, value, named):
    with pytest.raises(QuestionSpecError, match=named):
        _spec(**{field: value})


def test_choice_questions_take_no_misconceptions_and_specs_round_trip():
    with pytest.raises(QuestionSpecError, match="numeric kind"):
        _spec(kind="choice", options=["a", "b"],
              misconceptions=[{"name": "v", "transform": "square", "message": "m"}])
    spec = _spec(uses=["q0"], misconceptions=[{"name": "v", "transform": "half", "message": "m."}])
    assert QuestionSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_is_recognised_where_it_is_defined(name):
    spec = _spec(misconceptions=[{"name": "slip", "transform": name, "message": "names the slip."}])
    answer = 0.37
    wrong = TRANSFORMS[name](answer)
    assert diagnose(spec, wrong, ExactMatcher(spec, answer)).message == "your answer names the slip."


def test_a_released_notebook_names_a_transform_misconception_from_the_size_window_alone():
    """The public key has no answer, but undoing the misconception's transform lands the student's variance
    in the SD's window: the notebook can say so (a recorded misconception needs the grader)."""
    spec = _spec(misconceptions=[{"name": "variance", "transform": "square", "message": SD_MESSAGE}])
    tau = 4.2
    hints = size_hints(spec, tau)
    assert check_form(spec, tau**2, hints).message == "your answer " + SD_MESSAGE
    assert check_form(spec, tau, hints).correct
    assert make_public_key("ex", [spec], {"q1": tau})["questions"]["q1"]["spec"]["misconceptions"]


def test_a_misconception_about_one_element_is_named_for_that_element_only():
    spec = _spec(shape=[2], labels=["statistic", "p-value"], misconceptions=[
        {"name": "half", "transform": "half", "message": "is half of it.", "element": "statistic"}])
    answer = np.array([1.788, 0.1812])
    matcher = ExactMatcher(spec, answer)
    assert "statistic is half of it" in diagnose(spec, [answer[0] / 2, answer[1]], matcher).message
    assert "half" not in diagnose(spec, [answer[0], answer[1] / 2], matcher).message
    with pytest.raises(QuestionSpecError, match="not among the labels"):
        _spec(shape=[2], labels=["statistic", "p-value"], misconceptions=[
            {"name": "half", "transform": "half", "message": "m.", "element": "lower"}])
