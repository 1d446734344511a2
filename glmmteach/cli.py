"""The ``glmmteach`` command: ``release`` exercise notebooks to students, ``collect`` an LMS download,
``grade`` their submissions,
and ``copy-course`` (the lessons, exercises and data into a folder of the reader's)::

    glmmteach release SOURCE_DIR OUT_DIR [--students roster.csv] [--keys KEYS_DIR]
        [--secret-file FILE] [--force]
    glmmteach grade SOURCE_DIR SUBMISSIONS_DIR --out gradebook.csv [--keys KEYS_DIR]
        [--student ID] [--marks marks.csv] [--course course.toml] [--times times.csv]
        [--timeout SECONDS] [--jobs N] [--no-sandbox]
    glmmteach collect LMS_DOWNLOAD.zip SUBMISSIONS_DIR [--students roster.csv]
    glmmteach copy-course DIR [--force]

Exit status 0 on success, 1 when a release is refused or grading cannot start, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .course import add_subcommand as add_copy_course
from .grading import GradingError, grade, release
from .grading.collect import collect
from .grading.keys import read_roster, read_secret


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glmmteach", description="Release and grade glmmteach exercises.")
    commands = parser.add_subparsers(dest="command", required=True)

    rel = commands.add_parser("release", help="write student notebooks (solutions removed) after checking "
                              "that every solution passes its own checks")
    rel.add_argument("source_dir", type=Path, help="folder of instructor source notebooks")
    rel.add_argument("out_dir", type=Path, help="folder for the student notebooks")
    rel.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                     help="notebooks checked in parallel (default: number of CPUs)")
    rel.add_argument("--timeout", type=_positive_float, default=600,
                     help="seconds allowed per solution notebook (default 600)")
    rel.add_argument("--students", type=Path, metavar="ROSTER_CSV",
                     help="roster (a 'student' column): one folder of notebooks per student, with the "
                     "student's own data for exercises with variants")
    rel.add_argument("--keys", type=Path, metavar="KEYS_DIR",
                     help="private key store, outside OUT_DIR (default: OUT_DIR-keys beside it)")
    rel.add_argument("--force", action="store_true",
                     help="overwrite an earlier release in OUT_DIR (its key store is reused unless --keys)")
    rel.add_argument("--secret-file", type=Path, metavar="FILE",
                     help="a new key store's secret (64 hex digits) from FILE instead of a random one, so that the "
                     "students' data can be reproduced (e.g. in tests); keep FILE as private as the key store")

    gra = commands.add_parser("grade", help="run and score every student's notebooks")
    gra.add_argument("source_dir", type=Path, help="folder of instructor source notebooks (the key)")
    gra.add_argument("submissions_dir", type=Path, help="one folder per student, named by student id")
    gra.add_argument("--out", type=Path, required=True,
                     help="gradebook CSV; feedback/ and executed/ are written beside it")
    gra.add_argument("--timeout", type=_positive_float, default=300,
                     help="seconds allowed per submitted notebook (default 300)")
    gra.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                     help="submissions run in parallel (default: number of CPUs)")
    gra.add_argument("--keys", type=Path, metavar="KEYS_DIR",
                     help="the key store written by release (needed for exercises with variants; default: "
                     "keys computed once and kept in a 'keys' folder beside the gradebook)")
    gra.add_argument("--student", metavar="ID", help="regrade this student only, updating the gradebook")
    gra.add_argument("--marks", type=Path, metavar="MARKS_CSV",
                     help="instructor's marks of free-text answers (default: marks.csv beside the gradebook)")
    gra.add_argument("--course", type=Path, metavar="COURSE_TOML",
                     help="course file: graded sets, weights, deadlines, late policy, extensions (practice sets "
                     "stay out of totals and LMS files)")
    gra.add_argument("--times", type=Path, metavar="TIMES_CSV",
                     help="submission times (student, notebook, submitted) for --course's late policy (default: "
                     "SUBMISSIONS_DIR/submission-times.csv, written by collect)")
    gra.add_argument("--no-sandbox", action="store_true",
                     help="run submissions unconfined, as your user, when no sandbox (bubblewrap) is "
                     "available; every gradebook status then says '(no sandbox)'")
    col = commands.add_parser("collect", help="unpack an LMS bulk download (Canvas, Moodle) into one folder "
                              "per student")
    col.add_argument("archive", type=Path, help="the zip the LMS gave")
    col.add_argument("submissions_dir", type=Path, help="folder to fill: SUBMISSIONS_DIR/<student>/<notebook>")
    col.add_argument("--students", type=Path, metavar="ROSTER_CSV",
                     help="roster mapping the LMS's ids to student ids (canvas_id and name columns)")
    add_copy_course(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "copy-course":
        return args.run(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.command == "release":
            secret = read_secret(args.secret_file) if args.secret_file is not None else None
            written = release(args.source_dir, args.out_dir, timeout=args.timeout, jobs=args.jobs, log=log,
                              roster=args.students, keys_dir=args.keys, secret=secret, force=args.force)
            log(f"released {len(written)} notebook(s) to {args.out_dir}")
        elif args.command == "collect":
            placed, problems = collect(args.archive, args.submissions_dir,
                                       roster=read_roster(args.students) if args.students else None)
            for problem in problems:
                log(f"not placed: {problem}")
            log(f"placed {len(placed)} notebook(s) in {args.submissions_dir} ({sum(p.late for p in placed)} marked "
                f"late by the LMS); {len(problems)} not placed")
        else:
            rows = grade(args.source_dir, args.submissions_dir, args.out, timeout=args.timeout, jobs=args.jobs,
                         sandbox=not args.no_sandbox, log=log, keys_dir=args.keys, student=args.student,
                         marks=args.marks, course=args.course, times=args.times)
            log(f"graded {len(rows)} notebook(s); gradebook {args.out}, feedback in {args.out.parent / 'feedback'}")
    except GradingError as exc:
        log(f"glmmteach {args.command}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
