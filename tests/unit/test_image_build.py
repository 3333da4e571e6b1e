"""The image test's own reading of .dockerignore and the Dockerfile (tests/integration/image_build.py):
Docker's matching rule for the patterns it supports, and a loud failure for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.image_build import (
    UnsupportedDockerfile,
    build_image,
    is_ignored,
    read_dockerfile,
    read_dockerignore,
)

PATTERNS = read_dockerignore("""
# comment
.git
**/__pycache__
*.egg-info
docs
!docs/keep.md
store/*/draft?.sql
""")


@pytest.mark.parametrize(("path", "ignored"), [
    (".git", True),
    (".git/config", True),                         # a parent matches
    ("store/__pycache__/db.cpython-311.pyc", True),  # ** spans any depth, including none
    ("__pycache__/x.pyc", True),
    ("outreach.egg-info/PKG-INFO", True),
    ("client/outreach.egg-info", False),           # * stays within the first segment
    ("docs/production.md", True),
    ("docs/keep.md", False),                       # the later exception wins
    ("store/migrations/draft1.sql", True),
    ("store/migrations/draft12.sql", False),       # ? is one character
    ("store/migrations/0001_init.sql", False),
    ("README.md", False),
])
def test_the_last_pattern_matching_a_path_or_a_parent_decides(path: str, ignored: bool) -> None:
    assert is_ignored(PATTERNS, path) is ignored


@pytest.mark.parametrize("pattern", ["*.py[co]", "docs\\*", "../outside", "a**b"])
def test_a_pattern_outside_the_supported_subset_fails_loudly(pattern: str) -> None:
    with pytest.raises(UnsupportedDockerfile, match="unsupported pattern"):
        read_dockerignore(pattern)


def test_continued_lines_and_their_comments_make_one_instruction() -> None:
    [run] = read_dockerfile("# syntax=docker/dockerfile:1\nRUN a \\\n# why\n && b\n")
    assert (run.keyword, run.args, run.line) == ("RUN", "a  && b", 2)


@pytest.mark.parametrize(("dockerfile", "complaint"), [
    ("FROM python:3.11-slim\nADD x /x\n", "ADD"),
    ("FROM python:3.11-slim\nRUN cp a /etc/b\n", "name container paths through ENV"),
    ("FROM python:3.11-slim\nCMD outreach worker\n", "exec"),
    ("FROM debian:12\n", "only python"),
    ("FROM python:3.11-slim\nENV A B\n", "key=value"),
])
def test_an_instruction_outside_the_supported_subset_fails_loudly(
    tmp_path: Path, dockerfile: str, complaint: str,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "Dockerfile").write_text(dockerfile)
    (source / ".dockerignore").write_text("")
    with pytest.raises(UnsupportedDockerfile, match=complaint):
        build_image(source, tmp_path / "work")
