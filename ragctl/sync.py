"""``ragctl sync DIR``: a folder and a collection kept the same (issue #26, part 4).

The library behind the command (the CLI is a thin layer over :func:`scan`, :func:`make_plan` and
:func:`apply`; tests call them directly).  A document synced from a folder is named by its path
relative to the folder (``policies/leave.hwpx``); its id is the SHA-256 of its bytes, as for any
ingest.  So the folder and the collection compare by relative path and content hash:

- a path the collection does not hold, with bytes it does not hold: **new**, ingested;
- a path it holds with other bytes: **changed**: the new bytes are ingested first, and only when
  they are stored is the old document deleted (the old chunks answer until then: never a window
  with neither);
- bytes it holds under a path that is gone from the folder: **moved** (or renamed): the record is
  renamed, nothing parsed or embedded again;
- a document whose path is gone and whose bytes are nowhere in the folder: **gone**; listed, and
  deleted only with ``--delete``.

Which files: those ``ragctl ingest DIR`` takes (:func:`ragctl.inputs.select`: document extensions,
no hidden entries, symlinked folders not followed, so a symlink loop is never walked).  A **stat
cache** (path → size, mtime, inode, hash) in the project's ``data/sync/`` lets a pass over an
unchanged tree read no file.  A file whose size or mtime moves while it is hashed is **growing**:
left for the next pass.  A file that cannot be read is reported; the rest goes on.

Every pass starts from what the catalog holds, so a pass killed anywhere (kill -9) is finished by
the next one: an ingested file is found by its hash; a changed file whose new version was stored
but whose old one was not deleted yet has two records under one path, and the next pass deletes the
one whose bytes are no longer in the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stack.contract import PipelineError
from stack.names import DocumentStatus

NEW, CHANGED, MOVED, GONE, UNCHANGED, GROWING, UNREADABLE = (
    "new", "changed", "moved", "gone", "unchanged", "growing", "unreadable")


@dataclass
class SeenFile:
    """A file of the folder, as this pass saw it."""

    rel: str
    path: Path
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None = None


@dataclass
class Step:
    """One line of the plan: what happens to one path."""

    action: str
    path: str
    document_id: str | None = None
    old_path: str | None = None  # moved: where it was; changed: the id it replaces is ``replaces``
    replaces: str | None = None
    reason: str | None = None
    outcome: str | None = None  # after apply: done, skipped, failed, kept (gone without --delete)
    error: dict | None = None
    report: dict | None = None  # after an ingest: the parts of the file that could not be read

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    #: Records under a path whose bytes are no longer there, left by a pass cut short: deleted.
    leftovers: list = field(default_factory=list)

    def of(self, action: str) -> list[Step]:
        return [s for s in self.steps if s.action == action]

    def counts(self) -> dict[str, int]:
        return {a: len(self.of(a)) for a in (NEW, CHANGED, MOVED, GONE, UNCHANGED, GROWING, UNREADABLE)}


def parse_interval(text: str) -> float:
    """``30s``, ``5m``, ``1h`` or a number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text or "")
    if not match or float(match.group(1)) <= 0:
        from ragctl.errors import UsageError

        raise UsageError(f"Invalid interval {text!r}: a number of seconds, or 30s, 5m, 1h.",
                         "ragctl sync DIR --watch --interval 30s")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]



# -- the stat cache -----------------------------------------------------------------------------
class StatCache:
    """path → (size, mtime_ns, inode, sha256) of the last pass, in one JSON file per folder and collection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    @classmethod
    def for_folder(cls, data_path: Path, folder: Path, collection: str) -> StatCache:
        key = hashlib.sha256(f"{folder.resolve()}\0{collection}".encode()).hexdigest()[:16]
        return cls(data_path / "sync" / f"{collection}-{key}.json")

    def known_hash(self, seen: SeenFile) -> str | None:
        entry = self.entries.get(seen.rel)
        if entry and entry[:3] == [seen.size, seen.mtime_ns, seen.inode]:
            return entry[3]
        return None

    def save(self, files: list[SeenFile]) -> None:
        self.entries = {f.rel: [f.size, f.mtime_ns, f.inode, f.sha256] for f in files if f.sha256}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, self.path)  # a pass killed while saving keeps the previous cache


# -- looking at the folder ----------------------------------------------------------------------
def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan(folder: Path, cache: StatCache, *, include=(), exclude=()) -> tuple[list[SeenFile], list[Step]]:
    """The folder's files with their hashes (read only when the stat cache does not know them), and the
    steps for files that could not be taken: unreadable, or growing while they were read."""
    from ragctl.inputs import select
    from stack.contract import os_error, printable

    folder = Path(folder)
    selection = select([folder], include=include, exclude=exclude)
    seen, problems = [], []
    for item in selection.items:
        rel = printable(os.path.relpath(item.path, folder)).replace(os.sep, "/")
        if item.problem is not None:
            problems.append(Step(UNREADABLE, rel, reason=item.problem.message, error=item.problem.to_dict()))
            continue
        try:
            before = os.stat(item.path)
            if not stat.S_ISREG(before.st_mode):  # a FIFO, socket or device: never opened (it could block)
                from stack.contract import kind_of

                problems.append(Step(UNREADABLE, rel, reason=f"{rel} is a {kind_of(before.st_mode)}, not a file"))
                continue
            entry = SeenFile(rel, item.path, before.st_size, before.st_mtime_ns, before.st_ino)
            entry.sha256 = cache.known_hash(entry)
            if entry.sha256 is None:
                entry.sha256 = _hash(item.path)
                after = os.stat(item.path)
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    problems.append(Step(GROWING, rel, reason="it changed while it was read; the next pass takes it"))
                    continue
        except OSError as exc:
            error = os_error(item.path, exc)
            problems.append(Step(UNREADABLE, rel, reason=error.message, error=error.to_dict()))
            continue
        seen.append(entry)
    return seen, problems


# -- comparing ----------------------------------------------------------------------------------
def make_plan(files: list[SeenFile], records: list, problems: list[Step] = ()) -> Plan:
    """What to do so that the collection holds ``files``: ``records`` are its documents (DocumentRecord)."""
    plan = Plan()
    by_path: dict[str, list] = {}
    by_id = {}
    for record in records:
        by_path.setdefault(record.file_name, []).append(record)
        by_id[record.id] = record
    folder_paths = {f.rel for f in files}
    folder_ids = {f.sha256 for f in files}
    # Paths the folder does not hold any more, or whose problem (growing, unreadable) keeps them as they are.
    kept_paths = {p.path for p in problems}
    used: set[str] = set()  # record ids this plan keeps or renames
    for f in sorted(files, key=lambda f: f.rel):
        here = by_path.get(f.rel, [])
        same = next((r for r in here if r.id == f.sha256), None)
        if same is not None and same.status != DocumentStatus.DONE:
            # Failed or cancelled: tried again each pass.  Queued or in progress: the intake policy
            # follows a live ingest, and takes over one whose process died (a pass killed mid-way).
            plan.steps.append(Step(NEW, f.rel, f.sha256, reason=f"its last ingest is {same.status}"))
            used.add(same.id)
            continue
        if same is not None:
            plan.steps.append(Step(UNCHANGED, f.rel, f.sha256))
            used.add(same.id)
            plan.leftovers += [r for r in here if r.id != f.sha256 and r.id not in folder_ids]
            continue
        elsewhere = by_id.get(f.sha256)
        if elsewhere is not None and elsewhere.file_name not in folder_paths and elsewhere.id not in used \
                and not here:
            plan.steps.append(Step(MOVED, f.rel, f.sha256, old_path=elsewhere.file_name))
            used.add(elsewhere.id)
            continue
        if elsewhere is not None and elsewhere.file_name in folder_paths:
            # The same bytes at two paths are one document (ids are the bytes' hash), named by the first.
            plan.steps.append(Step(UNCHANGED, f.rel, f.sha256, reason=f"the same bytes as {elsewhere.file_name}"))
            continue
        if here:
            old = here[0]
            plan.steps.append(Step(CHANGED, f.rel, f.sha256, replaces=old.id))
            used.update(r.id for r in here)
            continue
        plan.steps.append(Step(NEW, f.rel, f.sha256))
    for path, held in sorted(by_path.items()):
        if path in folder_paths or path in kept_paths:
            continue
        for record in held:
            if record.id not in used:
                plan.steps.append(Step(GONE, path, record.id))
    plan.steps += list(problems)
    return plan


# -- applying -----------------------------------------------------------------------------------
@dataclass
class SyncTarget:
    """What a pass does to a collection, whatever holds it (the embedded pipeline or the stack's API)."""

    records: Callable[[], list]
    #: ingest [(path, name)] → IngestResult per file, in order (each waited for until stored)
    ingest: Callable[[list[tuple[Path, str]]], list]
    rename: Callable[[str, str], None]  # (document id, new name)
    delete: Callable[[str], None]  # document id


def apply(plan: Plan, target: SyncTarget, files: list[SeenFile], *, delete: bool) -> Plan:
    """Carry the plan out; each step's ``outcome`` says what happened.  The order keeps every path
    answering: moves first (a rename), then new and changed files (ingested), then, for each changed
    file whose new version is stored, its old document; last, with ``delete``, the gone ones."""
    by_rel = {f.rel: f for f in files}
    for step in plan.of(MOVED):
        _do(step, lambda s=step: target.rename(s.document_id, s.path))
    ingest_steps = plan.of(NEW) + plan.of(CHANGED)
    if ingest_steps:
        results = target.ingest([(by_rel[s.path].path, s.path) for s in ingest_steps])
        for step, result in zip(ingest_steps, results, strict=True):
            step.outcome = result.status
            step.error = result.error
            step.report = result.report
            if result.document_id and result.document_id != step.document_id:
                step.document_id = result.document_id  # the bytes read are the bytes stored
            if step.action == CHANGED and result.status in ("done", "skipped") and step.replaces:
                _do(step, lambda s=step: target.delete(s.replaces), keep_outcome=True)
    for record in plan.leftovers:
        try:
            target.delete(record.id)
        except PipelineError:
            pass
    for step in plan.of(GONE):
        if delete:
            _do(step, lambda s=step: target.delete(s.document_id))
        else:
            step.outcome = "kept"
    for step in plan.of(UNCHANGED):
        step.outcome = "done"
    for step in plan.of(GROWING) + plan.of(UNREADABLE):
        step.outcome = "skipped" if step.action == GROWING else "failed"
    return plan


def _do(step: Step, action: Callable[[], None], *, keep_outcome: bool = False) -> None:
    try:
        action()
        if not keep_outcome:
            step.outcome = "done"
    except PipelineError as exc:
        step.outcome, step.error = "failed", exc.to_dict()


def failed(plan: Plan) -> bool:
    return any(step.outcome in ("failed", "cancelled") for step in plan.steps)


def sync_once(folder: Path, target: SyncTarget, cache: StatCache, *, delete: bool, dry_run: bool,
              include=(), exclude=()) -> Plan:
    """One pass: scan, compare, and (unless ``dry_run``) apply and save the stat cache."""
    started = time.monotonic()
    files, problems = scan(folder, cache, include=include, exclude=exclude)
    plan = make_plan(files, target.records(), problems)
    if not dry_run:
        apply(plan, target, files, delete=delete)
        cache.save(files)
    plan.seconds = round(time.monotonic() - started, 3)
    return plan
