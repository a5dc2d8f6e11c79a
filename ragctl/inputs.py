"""Which files an ingest takes: the paths a user names, folders walked and filtered.

:func:`select` is the library function behind ``ragctl ingest PATH… [--include GLOB] [--exclude GLOB]``
(the CLI is a thin layer over it; tests call it directly).  It only looks at names and ``stat``
results; reading a file (and every way that can fail) is :func:`stack.contract.copy_to`'s job.

The rules:

- **A path named** is always taken when it is not a folder, whatever its type, name or the
  filters.  If it is a FIFO, a socket, a dangling symlink or unreadable, that is its own failed
  row later, never a refusal of the batch.  A named path that does not exist is an item with a
  ``not_found`` problem (the CLI makes it a failed row; when *no* named path exists at all, the
  command line is wrong: the CLI exits 2).
- **A folder named** is walked recursively, in name order.  A file found there is taken when its
  extension is a document type (:data:`DOCUMENT_EXTENSIONS`, any case) or it matches an
  ``--include``, and it matches no ``--exclude``.  Hidden entries (names starting with ".") are
  skipped and hidden folders not entered, unless an ``--include`` matches them.  Symlinks to files
  are taken like files (a dangling or looping one becomes a failed row); symlinks to folders are
  not followed (name the folder to take it).  A sub-folder that cannot be listed is a failed row.
  Everything not taken is reported in :attr:`Selection.skipped`, grouped by
  :meth:`Selection.skipped_groups` with the flag that takes it.
- **Globs** (``--include``/``--exclude``, repeatable) work as in rsync and ``.gitignore``:
  a pattern without "/" matches a name at any depth; a pattern with "/" matches the path relative
  to the folder named (a leading "/" changes nothing, it anchors there anyway); ``*`` matches any
  characters but "/", ``**`` any including "/", ``?`` one character, ``[abc]``/``[!abc]`` a class,
  ``\\`` escapes the next character; a trailing "/" matches folders only.  Matching is
  case-sensitive.  An ``--exclude`` that matches a folder prunes it; an ``--include`` that matches
  a folder takes every file under it.  ``--exclude`` wins over ``--include``.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ragctl.errors import UsageError
from stack.contract import DOCUMENT_SUFFIXES, PipelineError, os_error, printable

#: What a folder ingest takes by default: the formats the parsers read (the contract's list).
DOCUMENT_EXTENSIONS = DOCUMENT_SUFFIXES

# Why an entry of a folder was not taken (Skipped.reason).
TYPE, HIDDEN, EXCLUDED, SYMLINKED_FOLDER = "type", "hidden", "excluded", "symlinked folder"


# -- globs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Glob:
    """One ``--include``/``--exclude`` pattern (see the module docstring for its syntax)."""

    pattern: str

    @cached_property
    def _parsed(self) -> tuple[re.Pattern, bool, bool]:
        text = self.pattern
        folders_only = len(text) > 1 and text.endswith("/") and not text.endswith("\\/")
        if folders_only:
            text = text.rstrip("/")
        text = text.removeprefix("./")
        text = text.lstrip("/")
        if not text:
            raise UsageError(f"Empty pattern {self.pattern!r}.", "give --include/--exclude a glob such as '*.json'")
        try:
            regex = re.compile(_translate(text), re.DOTALL)
        except re.error as exc:
            raise UsageError(f"Invalid pattern {self.pattern!r}: {exc}.",
                             "see ragctl ingest --help for the glob syntax") from exc
        return regex, folders_only, "/" in text.replace("\\/", "")

    def check(self) -> Glob:
        self._parsed  # noqa: B018 - compile now, so that a bad pattern is a usage error up front
        return self

    def matches(self, relative: str, *, is_dir: bool = False) -> bool:
        """Does the pattern match this entry (its path relative to the folder named, "/"-separated)?"""
        regex, folders_only, has_slash = self._parsed
        if folders_only and not is_dir:
            return False
        if regex.fullmatch(relative):
            return True
        return not has_slash and regex.fullmatch(relative.rpartition("/")[2]) is not None


def _translate(pattern: str) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            if pattern.startswith("**", i):
                j = i + 2
                if (i == 0 or pattern[i - 1] == "/") and j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # "**/": no folder or any number of them
                    i = j + 1
                else:
                    out.append(".*")
                    i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                negate = body[:1] in ("!", "^")
                body = body[1:] if negate else body
                chars = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
                out.append(f"[^/{chars}]" if negate else f"[{chars}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def escape_glob(text: str) -> str:
    """A glob that matches exactly ``text``."""
    return "".join(f"[{c}]" if c in "*?[" else "\\\\" if c == "\\" else c for c in text)


# -- what select() returns -----------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One file to ingest: its path, whether it was named, and a problem known before reading it."""

    path: Path
    named: bool = False
    problem: PipelineError | None = None


@dataclass(frozen=True)
class Skipped:
    """An entry of a folder that was not taken, and why (TYPE, HIDDEN, EXCLUDED, SYMLINKED_FOLDER)."""

    path: Path
    reason: str
    is_dir: bool = False

    @property
    def extension(self) -> str:
        return Path(self.path.name).suffix


@dataclass
class Selection:
    items: list[Item] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    named: int = 0  # paths named
    missing: list[Path] = field(default_factory=list)  # paths named that do not exist

    @property
    def nothing_exists(self) -> bool:
        """Every path named is missing: the command line is wrong, not one file of it."""
        return self.named > 0 and len(self.missing) == self.named

    def skipped_groups(self) -> list[dict]:
        """The skipped entries grouped (by extension for types), each with the flag that takes them."""
        groups: dict[tuple[str, str], list[Skipped]] = {}
        for s in self.skipped:
            groups.setdefault((s.reason, s.extension if s.reason == TYPE else ""), []).append(s)
        order = {TYPE: 0, HIDDEN: 1, EXCLUDED: 2, SYMLINKED_FOLDER: 3}
        out = []
        for (reason, extension), entries in sorted(groups.items(),
                                                   key=lambda kv: (order[kv[0][0]], -len(kv[1]), kv[0][1])):
            out.append({"reason": reason, "extension": printable(extension) if reason == TYPE else None,
                        "count": len(entries), "folders": sum(e.is_dir for e in entries),
                        "take_with": printable(_take_with(reason, extension, entries) or "") or None,
                        "paths": [printable(e.path) for e in entries]})
        return out

    def describe_skipped(self) -> str:
        """One line for people: 'Skipped 2 files: .json ×2 (take them with --include '*.json').'"""
        if not self.skipped:
            return ""
        parts = []
        for g in self.skipped_groups():
            label = {TYPE: printable(g["extension"] or "no extension"), HIDDEN: "hidden", EXCLUDED: "matched --exclude",
                     SYMLINKED_FOLDER: "symlinked folder"}[g["reason"]]
            them = "it" if g["count"] == 1 else "them"
            take = f" (take {them} with {g['take_with']})" if g["take_with"] else ""
            if g["reason"] == SYMLINKED_FOLDER:
                take = " (not followed: name the folder to take it)"
            parts.append(f"{label} ×{g['count']}{take}")
        folders = sum(s.is_dir for s in self.skipped)
        files = len(self.skipped) - folders
        what = " and ".join(x for x in (_plural(files, "file") if files else "",
                                         _plural(folders, "folder") if folders else "") if x)
        return f"Skipped {what}: " + "; ".join(parts) + "."


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _take_with(reason: str, extension: str, entries: Sequence[Skipped]) -> str | None:
    if reason == TYPE and extension:
        return f"--include {shlex.quote('*' + escape_glob(extension))}"
    if reason == HIDDEN and any(e.is_dir for e in entries):
        return None  # hidden folders (.git, .cache) are rarely wanted; an --include can still enter one
    if reason in (TYPE, HIDDEN) and len(entries) <= 3:
        return " ".join(f"--include {shlex.quote(escape_glob(e.path.name))}" for e in entries)
    if reason in (TYPE, HIDDEN):
        return "--include GLOB"
    return None


# -- select ------------------------------------------------------------------------------------
def select(paths: Iterable[Path | str], *, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Selection:
    """The files to ingest from the paths named, in order (see the module docstring)."""
    includes = [Glob(p).check() for p in include]
    excludes = [Glob(p).check() for p in exclude]
    selection, seen = Selection(), set()

    def add(item: Item) -> None:
        key = os.path.abspath(item.path)
        if key not in seen:
            seen.add(key)
            selection.items.append(item)

    for given in paths:
        path = Path(given)
        selection.named += 1
        try:
            info = os.stat(path)
        except OSError as exc:
            # Missing, a dangling or looping symlink, no permission to look: its own row.
            problem = os_error(path, exc)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG) and problem.code == "not_found":
                selection.missing.append(path)
                add(Item(path, named=True, problem=problem))
            else:
                add(Item(path, named=True))  # reading it says what is wrong, in every mode alike
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk(path, includes, excludes, selection, add)
        else:
            add(Item(path, named=True))
    return selection


def _walk(root: Path, includes: list[Glob], excludes: list[Glob], selection: Selection, add) -> None:
    def visit(folder: Path, relative: str, forced: bool) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problem = os_error(folder, exc)
            add(Item(folder, problem=type(problem)(f"folder {problem.message}", hint=problem.hint)))
            return
        for entry in entries:
            rel = f"{relative}{entry.name}"
            path = folder / entry.name
            hidden = entry.name.startswith(".")
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
                links_to_dir = is_link and entry.is_dir()
            except OSError:
                is_link = is_dir = links_to_dir = False
            folder_like = is_dir or links_to_dir
            if any(g.matches(rel, is_dir=folder_like) for g in excludes):
                selection.skipped.append(Skipped(path, EXCLUDED, folder_like))
                continue
            wanted = forced or any(g.matches(rel, is_dir=folder_like) for g in includes)
            if links_to_dir:
                selection.skipped.append(Skipped(path, SYMLINKED_FOLDER, True))
            elif is_dir:
                if hidden and not wanted:
                    selection.skipped.append(Skipped(path, HIDDEN, True))
                else:
                    visit(path, rel + "/", wanted)
            elif hidden and not wanted:
                selection.skipped.append(Skipped(path, HIDDEN))
            elif wanted or Path(entry.name).suffix.lower() in DOCUMENT_EXTENSIONS:
                add(Item(path))
            else:
                selection.skipped.append(Skipped(path, TYPE))

    visit(root, "", False)
