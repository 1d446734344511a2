r"""Release exercise notebooks to students and grade their submissions, without a server or database.

Modules: :mod:`~glmmteach.grading.notebooks` (source notebooks, student and solution notebooks),
:mod:`~glmmteach.grading.sandbox` (the bubblewrap sandbox), :mod:`~glmmteach.grading.runner` (executing a
notebook and collecting its answers), :mod:`~glmmteach.grading.child` (the program that runs the cells, and the
format in which answers are recorded), :mod:`~glmmteach.grading.scoring` (the key, scoring one submission),
:mod:`~glmmteach.grading.release` and :mod:`~glmmteach.grading.gradebook` (grading a folder of submissions),
:mod:`~glmmteach.grading.export` (the files grading writes: CSVs safe to open in a spreadsheet, feedback),
:mod:`~glmmteach.grading.late` (the course file and late penalties), :mod:`~glmmteach.grading.collect`
(an LMS bulk download into one folder per student).
The command line is :mod:`glmmteach.cli`.

**Instructor source notebooks** (``exercises/*.ipynb``) mark their cells:

* the cell tagged ``checks-setup`` creates ``answers``, ``record`` and ``check``
  (:class:`glmmteach.checks.ExerciseChecks`); release and grading rewrite it;
* a cell whose metadata holds ``{"glmmteach": {"question": {...}}}`` defines a question (fields of
  :class:`glmmteach.checks.QuestionSpec`: ``id``, ``points``, ``kind``, ``shape``, ``rtol``, ``atol``,
  ``options``, ``labels``);
* cells tagged ``solution`` hold solutions: in a code cell the lines between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (or the whole cell, without markers) are replaced by ``raise NotImplementedError()``;
  a markdown cell tagged ``solution`` (e.g. the book's ``{solution-start}`` / ``{solution-end}`` gates) is
  dropped.

**Key.** The answer key is what the solution notebook records when run (no value is typed in by hand). It is
computed by executing the source (outside the sandbox: it is the instructor's own code), once per release (and
per student for an exercise with variants), and kept in a key store outside the release folder
(:mod:`~glmmteach.grading.keys`) that ``grade`` reuses. A released notebook holds no answer and no digest of
one: only the specs, coarse size hints and its data seed (:func:`glmmteach.checks.make_public_key`).

**Release** runs every source notebook twice: once with form checks only, to compute the key and check that
every question is answered with a value of the right kind and shape; then with the public key of the
student notebook, to check that every question is ``check``-ed and that each check accepts the solution. It
refuses (:class:`ReleaseError`) unless all of that holds and the student notebook's JSON contains neither a
solution line nor an answer value. ``release --students roster.csv`` writes a folder per student.

**Grading** runs each submitted notebook's code cells in one fresh Python process (IPython's shell, no
Jupyter kernel), in its own temporary folder, in a bubblewrap sandbox, within a time limit that includes the
start. Cells run on after a failing cell, so that answers recorded before and after it count (status ``error``,
or ``incomplete`` when the only errors are the unanswered ``NotImplementedError`` placeholders). Each answer
is written to a file the moment it is recorded; the grader reads that file once the sandbox is dead, as
untrusted data (numbers, strings, lists only), and scores it in its own process against the key, so replacing
``check`` or writing files earns nothing, and a time-out (``timeout``) or a process that dies (``error``)
keeps the answers recorded before it. The submission's ``checks-setup`` cell is replaced by the grader's own
for that student, so the data it works on are the student's (a seed copied from a classmate's notebook is never
used). An answer too large to grade, or that cannot be converted, gets its own message. Outputs beyond
``MAX_OUTPUT_BYTES`` are dropped.

**Sandbox** (details in :mod:`~glmmteach.grading.sandbox`): for root and for an ordinary user alike, each
notebook runs in bubblewrap with its own PID namespace (everything it starts dies with it, at the time limit
too), no network, a file system holding only the system, a read-only Python installation and glmmteach
package, and its own small writable folder: the instructor's files, the key, the gradebook and other
submissions are not there at all. Memory, processes, file sizes, CPU time and output are limited. As root,
the notebook also runs under an unused user id of its own. Without bubblewrap, ``grade`` refuses to run
unless given ``sandbox=False`` (``--no-sandbox``), and every status in the gradebook then ends in
``(no sandbox)``.
"""

from .errors import GradingError, ReleaseError
from .export import STATUS_TEXT, write_feedback, write_gradebook
from .gradebook import grade
from .notebooks import (
    PLACEHOLDER,
    SETUP_TAG,
    SOLUTION_TAG,
    Exercise,
    load_exercise,
    load_exercises,
    solution_lines,
    solution_notebook,
    strip_solution,
    student_notebook,
)
from .release import Released, leaked_values, prepare_release, release
from .runner import Execution, execute_notebook, sandbox_available
from .sandbox import Sandbox
from .scoring import GradeRow, compute_key, grade_submission, score_answer

__all__ = [
    "PLACEHOLDER", "SETUP_TAG", "SOLUTION_TAG", "STATUS_TEXT", "Execution", "Exercise", "GradeRow",
    "GradingError", "ReleaseError", "Released", "Sandbox", "compute_key", "execute_notebook", "grade",
    "grade_submission", "leaked_values", "load_exercise", "load_exercises", "prepare_release", "release",
    "sandbox_available", "score_answer", "solution_lines", "solution_notebook", "strip_solution",
    "student_notebook", "write_feedback", "write_gradebook",
]
