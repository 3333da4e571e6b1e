"""What ``docker build`` makes of the Dockerfile, made without a Docker engine.

Each stage gets its own directory standing for its filesystem, and a fresh virtualenv
of this interpreter standing for the base image's Python. The build context is the
source tree minus .dockerignore, copied as Docker would send it. Instructions run as
written, with container paths mapped under the stage's directory: a literal absolute
path in ENV, WORKDIR, COPY or a mount is re-rooted there, and RUN lines (``sh -c``)
must name container paths only through ENV variables, so the same mapping reaches them.

Supported, and nothing else (anything else fails the build, loudly):
  FROM python:X.Y[-variant] [AS name], where X.Y is this interpreter's version
  ENV k=v ... | WORKDIR | COPY [--from=stage] src... dest | EXPOSE | USER | STOPSIGNAL
  RUN [--mount=type=bind,[from=stage,]source=..,target=..] shell command
  RUN useradd ... / groupadd ... (recorded, not run: they would change this machine)
  CMD [...] and HEALTHCHECK [options] CMD [...] in exec (JSON) form
.dockerignore: comments, `*` and `?` within a segment, `**` as a whole segment, `!`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class UnsupportedDockerfile(AssertionError):
    """The Dockerfile or .dockerignore uses something this builder cannot mirror faithfully."""


# -- .dockerignore ------------------------------------------------------------

@dataclass(frozen=True)
class IgnorePattern:
    segments: tuple[str, ...]
    exception: bool


def read_dockerignore(text: str) -> list[IgnorePattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        body = line[1:].strip() if exception else line
        if any(c in body for c in "[]\\") or ".." in body.split("/"):
            raise UnsupportedDockerfile(f".dockerignore: unsupported pattern {raw!r}")
        segments = tuple(s for s in PurePosixPath(body.lstrip("/")).parts if s != ".")
        if not segments or any("**" in s and s != "**" for s in segments):
            raise UnsupportedDockerfile(f".dockerignore: unsupported pattern {raw!r}")
        patterns.append(IgnorePattern(segments, exception))
    return patterns


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_matches(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _matches(pattern[1:], path[1:])


def is_ignored(patterns: list[IgnorePattern], relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = PurePosixPath(relative).parts
    ignored = False
    for pattern in patterns:
        if any(_matches(pattern.segments, parts[:n]) for n in range(1, len(parts) + 1)):
            ignored = not pattern.exception
    return ignored


def copy_context(source: Path, patterns: list[IgnorePattern], dest: Path) -> None:
    """The build context: every file of ``source`` that .dockerignore lets through."""
    can_prune = not any(p.exception for p in patterns)  # an exception may re-include below
    for here, dirs, files in os.walk(source):
        rel_dir = Path(here).relative_to(source)
        if can_prune:
            dirs[:] = [d for d in dirs if not is_ignored(patterns, (rel_dir / d).as_posix())]
        for name in files:
            rel = (rel_dir / name).as_posix()
            if not is_ignored(patterns, rel):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(here) / name, dest / rel, follow_symlinks=False)


# -- Dockerfile ---------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def read_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = ""
    if pending:
        raise UnsupportedDockerfile("Dockerfile ends inside a continued line")
    return instructions


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, env: dict[str, str]) -> str:
    if "\\$" in value or re.search(r"\$\{\w+:", value):
        raise UnsupportedDockerfile(f"unsupported substitution in {value!r}")
    return _VAR.sub(lambda m: env.get(m[1] or m[2], ""), value)


@dataclass
class Stage:
    name: str
    root: Path
    env: dict[str, str]
    workdir: Path
    python: Path

    def ensure_python(self) -> None:
        if not self.python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.python)], check=True)

    def container_path(self, literal: str, expanded: str) -> Path:
        """A path as the stage sees it: literal absolute paths live under the stage's root."""
        if literal.startswith("/"):
            return self.root / expanded.lstrip("/")
        if expanded.startswith("/"):  # built from an ENV variable, already mapped
            return Path(expanded)
        return self.workdir / expanded


@dataclass
class Image:
    """The last stage, as a container of it would start."""

    env: dict[str, str]
    workdir: Path
    cmd: list[str]
    healthcheck: list[str]
    stopsignal: str
    user: str
    users_created: list[str]
    run_lines: dict[str, list[str]]

    def which(self, program: str) -> str:
        found = shutil.which(program, path=self.env["PATH"])
        assert found, f"{program} is not on the image's PATH"
        return found


def _plumbing_env() -> dict[str, str]:
    """What pip needs on this machine to reach PyPI (certificates, proxies), its cache, and
    none of this machine's pip configuration: the image has none."""
    keep = {k: v for k, v in os.environ.items()
            if k.lower().endswith("_proxy") or k in {"SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT"}}
    cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    return {**keep, "PIP_CACHE_DIR": cache, "PIP_CONFIG_FILE": os.devnull}


class Builder:
    def __init__(self, source: Path, work: Path) -> None:
        self.source = source
        self.work = work
        self.context = work / "context"
        self.stages: dict[str, Stage] = {}
        self.stage: Stage | None = None
        self.cmd: list[str] = []
        self.healthcheck: list[str] = []
        self.stopsignal = "SIGTERM"
        self.user = "root"
        self.users_created: list[str] = []
        self.run_lines: dict[str, list[str]] = {}

    def build(self) -> Image:
        patterns = read_dockerignore((self.source / ".dockerignore").read_text("utf-8"))
        self.context.mkdir(parents=True)
        copy_context(self.source, patterns, self.context)
        for instruction in read_dockerfile((self.source / "Dockerfile").read_text("utf-8")):
            handler = getattr(self, f"_do_{instruction.keyword.lower()}", None)
            if handler is None:
                raise UnsupportedDockerfile(f"Dockerfile line {instruction.line}: {instruction.keyword}")
            if instruction.keyword != "FROM" and self.stage is None:
                raise UnsupportedDockerfile(f"Dockerfile line {instruction.line}: before FROM")
            handler(instruction.args)
        assert self.stage is not None
        self.stage.ensure_python()
        return Image(self.stage.env, self.stage.workdir, self.cmd, self.healthcheck, self.stopsignal,
                     self.user, self.users_created, self.run_lines)

    @property
    def current(self) -> Stage:
        assert self.stage is not None
        return self.stage

    def _do_from(self, args: str) -> None:
        words = args.split()
        match = re.fullmatch(r"python:(\d+)\.(\d+)(-[a-z0-9]+)?", words[0])
        if match is None or len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
            raise UnsupportedDockerfile(f"FROM {args}: only python:X.Y[-variant] [AS name]")
        if (int(match[1]), int(match[2])) != sys.version_info[:2]:
            raise UnsupportedDockerfile(f"FROM {args}: this interpreter is {sys.version_info[:2]}")
        name = words[2] if len(words) == 3 else str(len(self.stages))
        root = self.work / "stages" / name
        python = self.work / "base-python" / name  # the base image's /usr/local, made when first used
        root.mkdir(parents=True)
        env = {**_plumbing_env(), "PATH": f"{python}/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "HOME": str(root / "root")}
        self.stage = self.stages[name] = Stage(name, root, env, root, python)
        self.run_lines[name] = []

    def _do_env(self, args: str) -> None:
        before = dict(self.current.env)  # Docker expands every pair with the values before it
        for word in shlex.split(args):
            key, eq, literal = word.partition("=")
            if not eq:
                raise UnsupportedDockerfile(f"ENV {args}: only the key=value form")
            value = expand(literal, before)
            self.current.env[key] = str(self.current.root / value.lstrip("/")) if literal.startswith("/") \
                else value

    def _do_workdir(self, args: str) -> None:
        path = self.current.container_path(args, expand(args, self.current.env))
        path.mkdir(parents=True, exist_ok=True)
        self.current.workdir = path

    def _do_copy(self, args: str) -> None:
        words = shlex.split(args)
        origin = self.context
        while words and words[0].startswith("--"):
            flag = words.pop(0)
            if not flag.startswith("--from="):
                raise UnsupportedDockerfile(f"COPY {flag}: only --from")
            origin = self.stages[flag.removeprefix("--from=")].root
        *sources, dest_literal = words
        dest = self.current.container_path(dest_literal, expand(dest_literal, self.current.env))
        for src in sources:
            if any(c in src for c in "*?["):
                raise UnsupportedDockerfile(f"COPY {args}: no wildcards")
            path = origin / expand(src, self.current.env).lstrip("/")
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True, symlinks=True)
            else:
                target = dest / path.name if dest_literal.endswith("/") or dest.is_dir() else dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)

    def _do_run(self, args: str) -> None:
        command = args
        mounts = []
        while command.startswith("--"):
            flag, _, command = command.partition(" ")
            command = command.strip()
            if not flag.startswith("--mount="):
                raise UnsupportedDockerfile(f"RUN {flag}: only --mount")
            options = dict(kv.split("=", 1) for kv in flag.removeprefix("--mount=").split(","))
            mounts.append(self._mount(options))
        if command.startswith("["):
            raise UnsupportedDockerfile("RUN in exec form")
        words = shlex.split(command)
        if words[0] in {"useradd", "groupadd"}:
            if any(op in command for op in ("&&", ";", "|", "`", "$(")):
                raise UnsupportedDockerfile(f"RUN {command}: {words[0]} must stand alone")
            if words[0] == "useradd":
                self.users_created.append(words[-1])
            return
        literal_paths = [w for w in words if w.startswith("/") or "=/" in w]
        if literal_paths:
            raise UnsupportedDockerfile(f"RUN {command}: name container paths through ENV: {literal_paths}")
        self.run_lines[self.current.name].append(command)
        self.current.ensure_python()
        try:
            subprocess.run(["/bin/sh", "-c", command], env=self.current.env, cwd=self.current.workdir,
                           check=True)
        finally:
            for link in mounts:
                link.unlink()

    def _mount(self, options: dict[str, str]) -> Path:
        if options.pop("type", None) != "bind" or set(options) - {"from", "source", "target"}:
            raise UnsupportedDockerfile(f"RUN --mount {options}: only type=bind with from, source, target")
        origin = self.stages[options["from"]].root if "from" in options else self.context
        target = self.current.root / options["target"].lstrip("/")
        if target.exists():
            raise UnsupportedDockerfile(f"RUN --mount target {options['target']} exists in the stage")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(origin / options.get("source", "").lstrip("/"))
        return target

    def _do_expose(self, args: str) -> None:
        pass  # documentation for whoever runs the image

    def _do_user(self, args: str) -> None:
        self.user = args

    def _do_stopsignal(self, args: str) -> None:
        self.stopsignal = args

    def _do_cmd(self, args: str) -> None:
        self.cmd = _exec_form("CMD", args)

    def _do_healthcheck(self, args: str) -> None:
        options, _, command = args.partition("CMD ")
        if not all(w.startswith("--") for w in options.split()):
            raise UnsupportedDockerfile(f"HEALTHCHECK {args}: only [options] CMD [...]")
        self.healthcheck = _exec_form("HEALTHCHECK CMD", command)


def _exec_form(what: str, args: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise UnsupportedDockerfile(f"{what} {args}: only the exec (JSON) form") from exc
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise UnsupportedDockerfile(f"{what} {args}: only the exec (JSON) form")
    return value


def build_image(source: Path, work: Path) -> Image:
    return Builder(source, work).build()
