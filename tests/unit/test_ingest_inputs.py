"""Which files an ingest takes and how one file is read (issue #10, items 2 and 11), with generated
inputs: file names from an alphabet of glob, shell and Rich markup characters, Hangul, emoji,
control characters and over-long names; globs checked against fnmatch; special files.

Fast: no model, no pipeline.  The same classes through the CLI: tests/integration/test_ingest_inputs.py.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import os
import shlex
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ragctl.errors import UsageError
from ragctl.inputs import DOCUMENT_EXTENSIONS, EXCLUDED, HIDDEN, TYPE, Glob, escape_glob, select
from stack import contract
from stack.pipeline import files
from stack.pipeline.errors import FileTooLarge

# Every character class the issue names; "/" makes nested folders, NUL is the one byte no name can hold.
NASTY = list('[]/\\:*?"<>|') + ["[bold]", "[/]", "[/bold]", "[v2]", "한", "글", "배포용", "😀", "🇰🇷", "\t", "\x1b",
                                 "\x7f", "\n", " ", ".", "-", "a", "B", "ß"]
EXTENSIONS = [".txt", ".TXT", ".md", ".hwp", ".hwpx", ".pdf", ".docx", ".html", ".json", ".csv", ".[x]", ".*",
              ".?", ".\\", "", ".tar.gz", ". sp"]

names = st.lists(st.sampled_from(NASTY), min_size=1, max_size=8).map("".join)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _components(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".", "..")]


def _make_tree(root: Path, specs: list[tuple[str, str]]) -> dict[Path, str]:
    """Create the files named (a "/" in a name makes folders); returns {path: relative} of those made."""
    made: dict[Path, str] = {}
    for name, ext in specs:
        parts = _components(name)
        if not parts:
            continue
        parts[-1] += ext
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.parent in made:
                continue
            path.write_bytes(b"x")
        except OSError:  # a part is already a file, or a name is too long: not this test's concern
            continue
        made[path] = "/".join(parts)
    return made


@SETTINGS
@given(st.lists(st.tuples(names, st.sampled_from(EXTENSIONS)), min_size=1, max_size=12))
def test_every_file_of_a_folder_is_taken_or_reported_skipped(specs):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = _make_tree(root, specs)
        selection = select([root])
        taken = {item.path for item in selection.items}
        skipped_paths = {s.path for s in selection.skipped}
        assert all(item.problem is None and not item.named for item in selection.items)
        for path, relative in made.items():
            hidden = any(part.startswith(".") for part in relative.split("/"))
            inside_skipped = any(path == s or s in path.parents for s in skipped_paths)
            assert (path in taken) != inside_skipped, (relative, taken, skipped_paths)
            if not hidden:
                assert (path in taken) == (path.suffix.lower() in DOCUMENT_EXTENSIONS), relative
        # Every group of skipped types says how to take it, and that flag does take exactly those files.
        for group in selection.skipped_groups():
            if group["reason"] != TYPE:
                continue
            assert group["take_with"], group
            if group["take_with"] == "--include GLOB":  # more than three names without an extension
                assert group["extension"] == "" and group["count"] > 3
                continue
            flags = shlex.split(group["take_with"])
            again = select([root], include=flags[1::2])
            assert {str(p) for p in group["paths"]} <= {str(i.path) for i in again.items}
        text = selection.describe_skipped()
        assert bool(text) == bool(selection.skipped)
        assert all(p.exists() or p.is_symlink() for p in taken)  # in a stable order, each once
        assert len(taken) == len(selection.items)


@SETTINGS
@given(st.lists(st.tuples(names, st.sampled_from(EXTENSIONS)), min_size=1, max_size=6))
def test_files_named_are_always_taken_whatever_the_filters(specs):
    with tempfile.TemporaryDirectory() as tmp:
        made = _make_tree(Path(tmp), specs)
        selection = select(list(made), exclude=["*"])
        assert [i.path for i in selection.items] == list(made)
        assert all(i.named and i.problem is None for i in selection.items)
        assert not selection.skipped


@SETTINGS
@given(names.filter(lambda n: "/" not in n and n not in ("", ".", "..")))
def test_escaped_glob_matches_exactly_that_name(name):
    glob = Glob(escape_glob(name))
    assert glob.matches(name)
    assert glob.matches(f"some/folder/{name}")
    assert not glob.matches(name + "x")
    assert not glob.matches("x" + name)


patterns = st.lists(st.sampled_from(["*", "?", "a", "b", ".", "[ab]", "[!a]", "한", "[", "]", "😀", "x"]),
                    min_size=1, max_size=6).map("".join)
subjects = st.lists(st.sampled_from(["a", "b", ".", "한", "[", "]", "😀", "x", "y", "\n"]), max_size=7).map("".join)


@settings(max_examples=500, deadline=None)
@given(patterns, subjects)
def test_globs_without_slash_match_names_as_fnmatch_does(pattern, name):
    assert Glob(pattern).matches(name) == fnmatch.fnmatchcase(name, pattern)


@pytest.mark.parametrize(("pattern", "path", "is_dir", "expected"), [
    ("*.json", "a.json", False, True),
    ("*.json", "deep/er/a.json", False, True),  # no "/": any depth
    ("*.json", "a.JSON", False, False),  # case-sensitive, as rsync and ripgrep
    ("data/*.json", "data/a.json", False, True),
    ("data/*.json", "x/data/a.json", False, False),  # a "/": relative to the folder named
    ("/data/*.json", "data/a.json", False, True),
    ("data/*.json", "data/sub/a.json", False, False),  # "*" never crosses "/"
    ("data/**/*.json", "data/a.json", False, True),
    ("data/**/*.json", "data/s/t/a.json", False, True),
    ("**/drafts", "a/b/drafts", True, True),
    ("drafts/", "a/drafts", True, True),
    ("drafts/", "a/drafts", False, False),  # trailing "/": folders only
    ("\\*.md", "*.md", False, True),
    ("\\*.md", "a.md", False, False),
    ("[[]v2].txt", "[v2].txt", False, True),
])
def test_glob_semantics(pattern, path, is_dir, expected):
    assert Glob(pattern).matches(path, is_dir=is_dir) is expected


@pytest.mark.parametrize("pattern", ["", "/", "[z-a].txt"])
def test_a_bad_pattern_is_a_usage_error(pattern):
    with pytest.raises(UsageError):
        select(["."], include=[pattern])


def test_include_exclude_hidden_and_folders(tmp_path):
    for name in ("a.txt", "b.json", "c.JSON", "notes/d.md", "notes/drafts/e.md", ".env", ".git/config.txt",
                 "exports/f.csv", "node_modules/g.md"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "notes")
    rel = lambda selection: sorted(str(i.path.relative_to(tmp_path)) for i in selection.items)

    default = select([tmp_path])
    assert rel(default) == ["a.txt", "node_modules/g.md", "notes/d.md", "notes/drafts/e.md"]
    reasons = {str(s.path.relative_to(tmp_path)): s.reason for s in default.skipped}
    assert reasons == {"b.json": TYPE, "c.JSON": TYPE, ".env": HIDDEN, ".git": HIDDEN, "exports/f.csv": TYPE,
                       "link": "symlinked folder"}
    assert "take it with --include '*.json'" in default.describe_skipped()
    assert "take it with --include '*.JSON'" in default.describe_skipped()

    wider = select([tmp_path], include=["*.json", "exports/", ".env"], exclude=["node_modules/", "drafts"])
    assert rel(wider) == [".env", "a.txt", "b.json", "exports/f.csv", "notes/d.md"]
    excluded = {str(s.path.relative_to(tmp_path)) for s in wider.skipped if s.reason == EXCLUDED}
    assert excluded == {"node_modules", "notes/drafts"}
    assert rel(select([tmp_path], include=["*.json"], exclude=["*.json"])) == rel(default)  # --exclude wins


def test_missing_and_unlistable_paths_are_problem_items(tmp_path, monkeypatch):
    good = tmp_path / "good.txt"
    good.write_text("x")
    long_name = tmp_path / ("긴" * 100 + ".txt")  # 300+ bytes: no file system here holds it
    selection = select([good, tmp_path / "nope.txt", long_name, tmp_path / "dir[" / "x].txt"])
    assert [i.problem.code if i.problem else None for i in selection.items] == [None, "not_found", "not_found",
                                                                                 "not_found"]
    assert not selection.nothing_exists and len(selection.missing) == 3
    assert select([tmp_path / "nope"]).nothing_exists

    locked = tmp_path / "inbox" / "locked"
    locked.mkdir(parents=True)
    (locked / "a.txt").write_text("x")
    (tmp_path / "inbox" / "b.txt").write_text("x")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root can list a chmod 000 folder, so say no here
    items = select([tmp_path / "inbox"]).items
    assert [(i.path.name, i.problem and i.problem.code) for i in items] == [("b.txt", None), ("locked", "unreadable")]
    assert "permission denied" in items[1].problem.message


# -- reading one file: stack.pipeline.files ------------------------------------------------------
def _specials(tmp_path: Path) -> dict[str, str]:
    """name → expected error code, for every kind of bad file the issue lists."""
    os.mkfifo(tmp_path / "fifo.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.txt"))
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (tmp_path / "loop.txt").symlink_to(tmp_path / "loop.txt")
    (tmp_path / "dir.txt").mkdir()
    return {"fifo.txt": "not_regular_file", "sock.txt": "not_regular_file", "dangling.txt": "broken_symlink",
            "loop.txt": "broken_symlink", "dir.txt": "not_regular_file", "missing.txt": "not_found",
            "긴" * 100 + ".txt": "not_found"}


def test_special_files_each_raise_their_own_clear_error_and_a_fifo_never_blocks(tmp_path):
    for name, code in _specials(tmp_path).items():
        with pytest.raises(files.PipelineError) as caught:
            files.copy_to(tmp_path / name, io.BytesIO())
        assert caught.value.code == code, (name, caught.value.message)
        assert name in caught.value.message and caught.value.hint
    with pytest.raises(files.NotRegularFile, match=r"not a regular file \(FIFO\)"):
        files.copy_to(tmp_path / "fifo.txt", io.BytesIO())
    with pytest.raises(files.NotRegularFile, match="character device"):
        files.copy_to(Path("/dev/null"), io.BytesIO())


def test_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "locked.txt"
    path.write_text("secret")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads a chmod 000 file: make open() refuse as it would for anyone else
        real_open = os.open

        def refusing_open(file, flags, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(files.Unreadable, match="permission denied"):
        files.copy_to(path, io.BytesIO())


def test_a_file_changing_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing.txt"
    path.write_bytes(b"a" * (3 << 20))  # three blocks
    real_read = contract._read
    calls = []

    def read_then_append(fd, n):
        calls.append(n)
        if len(calls) == 2:
            with path.open("ab") as handle:
                handle.write(b"more")
        return real_read(fd, n)

    monkeypatch.setattr(contract, "_read", read_then_append)
    with pytest.raises(files.FileChanged, match="changed while it was being read"):
        files.copy_to(path, io.BytesIO())


def test_snapshot_is_the_bytes_hashed_and_goes_away(tmp_path):
    source = tmp_path / "[v2] 메모 😀.txt"
    source.write_text("내용")
    snap = files.snapshot(source, tmp_path)
    assert snap.path.name == source.name and snap.path.read_bytes() == source.read_bytes()
    assert snap.size == len("내용".encode())
    files.discard(snap)
    assert not snap.path.parent.exists()
    with pytest.raises(FileTooLarge):
        files.snapshot(source, tmp_path, max_bytes=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]  # nothing left by a failed read
    assert stat.S_ISREG(os.stat(source).st_mode)


def test_a_long_name_is_read_even_where_the_scratch_folder_cannot_hold_it(tmp_path, monkeypatch):
    source = tmp_path / "doc.md"
    source.write_text("# x")
    real = Path.open

    def short_names_only(self, mode="r", *args, **kwargs):
        if "x" in mode and self.name == "doc.md":
            raise OSError(errno.ENAMETOOLONG, "File name too long")
        return real(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", short_names_only)
    snap = files.snapshot(source, tmp_path)
    assert snap.path.name == "document.md" and snap.path.read_text() == "# x"


@settings(max_examples=60, deadline=None)
@given(names)
def test_read_errors_name_the_file_whatever_its_name(name):
    parts = _components(name)
    assume(parts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp).joinpath(*parts)
        with pytest.raises(files.PipelineError) as caught:
            files.copy_to(path, io.BytesIO())  # never created: not found, whatever the name
        assert caught.value.code == "not_found" and path.name in caught.value.message
