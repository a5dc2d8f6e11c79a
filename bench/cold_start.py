"""A cold ``ragctl search`` / ``ragctl ask`` in the embedded default: the whole command's wall time,
and where the time goes.

Makes (once, kept under --project) an embedded project of KorQuAD paragraphs with at least
--chunks chunks, then runs each command --runs times as a new process (``python -m ragctl``),
as a user's shell does, and reports the median and the spread: with the warm analyser process
(stack/pipeline/warm.py; the default) and without it (RAGCTL_WARM=0).  A further process times the
phases of the same work one by one (imports, the pipeline, Chroma, kiwi, the embedding model, the
search itself) so that the total can be explained.

    python bench/cold_start.py --dataset ../shared/corpus/eval/korquad_v1_dev_a.json --runs 7

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["연차 휴가는 며칠인가요?", "봉화댐", "임종석이 지명수배 된 날은?"]

PHASES = r"""
import json, sys, time
marks = [("start", time.perf_counter())]
def mark(name): marks.append((name, time.perf_counter()))
import ragctl.cli.app  # noqa: F401  (what every command imports)
mark("import the CLI")
from stack.pipeline.service import Pipeline
from stack.settings import load_settings
from pathlib import Path
pipeline = Pipeline(load_settings(Path(sys.argv[1]), {}))
mark("import and make the pipeline")
pipeline.check_model(pipeline.settings.collection)
mark("open Chroma")
from stack.pipeline import lexical
lexical.kiwi_tokens(["준비"])
mark("load kiwi and analyse once")
embedder = pipeline.embedder_for(pipeline.settings.collection)
embedder.encode_query("준비")
mark("load the embedding model and encode once")
pipeline.search(sys.argv[2])
mark("search (everything loaded)")
pipeline.ask(sys.argv[2])
mark("ask (everything loaded)")
print(json.dumps([(name, round((t - marks[i][1]) * 1000, 1)) for i, (name, t) in enumerate(marks[1:])]))
"""


def make_project(folder: Path, dataset: str, chunks: int) -> int:
    """An embedded project of KorQuAD paragraphs (one text file per article) with >= ``chunks``."""
    marker = folder / ".bench-chunks"
    if marker.exists():
        return int(marker.read_text())
    sys.path.insert(0, str(REPO))
    from stack.pipeline.service import Pipeline
    from stack.settings import load_settings

    with open(dataset, encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "ragctl", "init", str(folder / "project"), "--yes"],
                   check=True, capture_output=True, cwd=REPO)
    pipeline = Pipeline(load_settings(folder / "project", {}))
    total = 0
    for i, article in enumerate(articles):
        path = docs / f"article{i:03d}.txt"
        path.write_text("\n\n".join(p["context"] for p in article["paragraphs"]), encoding="utf-8")
        result = pipeline.ingest_file(path)
        total += result.chunks
        if total >= chunks:
            break
    marker.write_text(str(total))
    return total


def timed_command(project: Path, *args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ragctl", "-p", str(project), *args], check=True,
                   capture_output=True, cwd=REPO, env=os.environ | {"NO_COLOR": "1"} | env)
    return time.perf_counter() - start


def stop_warm_process(run_dir: Path) -> None:
    """End the warm analyser the commands started (bench/ leaves no process behind)."""
    import signal

    for sock in (run_dir / "ragctl").glob("warm-*.sock"):
        from stack.pipeline.warm import WarmClient, WarmUnavailable

        try:
            os.kill(WarmClient(sock).ping()["pid"], signal.SIGTERM)
        except (WarmUnavailable, ProcessLookupError):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a SQuAD-format Korean QA set (KorQuAD)")
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--project", default=str(Path(tempfile.gettempdir()) / "ragctl-bench-cold"),
                        help="where the project is made (kept, reused by later runs)")
    args = parser.parse_args()

    folder = Path(args.project)
    chunks = make_project(folder, args.dataset, args.chunks)
    project = folder / "project"
    run_dir = folder / "run"
    run_dir.mkdir(exist_ok=True)
    warm = {"XDG_RUNTIME_DIR": str(run_dir), "RAGCTL_WARM": "1"}
    cold = {"RAGCTL_WARM": "0"}
    # The OS's file cache, as for any later command; with the warm process allowed, the first
    # command starts it as it exits (its own time is reported apart).
    first = timed_command(project, "search", QUESTIONS[0], env=warm)
    time.sleep(15)  # the warm process loads kiwi and the model
    times: dict[str, list[float]] = {"search": [], "ask": [], "search (RAGCTL_WARM=0)": [], "ask (RAGCTL_WARM=0)": []}
    try:
        for run in range(args.runs):
            question = QUESTIONS[run % len(QUESTIONS)]
            for command, taken in times.items():
                taken.append(timed_command(project, command.split()[0], question,
                                           env=cold if "WARM=0" in command else warm))
    finally:
        stop_warm_process(run_dir)
    phases = subprocess.run([sys.executable, "-c", PHASES, str(project), QUESTIONS[0]], check=True,
                            capture_output=True, text=True, cwd=REPO, env=os.environ | cold).stdout.strip().splitlines()[-1]
    result = {
        "machine": machine(), "chunks": chunks, "runs": args.runs,
        "first_search_s (starts the warm process as it exits)": round(first, 2),
        "commands": {name: {"p50_s": round(statistics.median(v), 2), "min_s": round(min(v), 2),
                            "max_s": round(max(v), 2), "all_s": [round(x, 2) for x in v]}
                     for name, v in times.items()},
        "phases_ms": json.loads(phases),
    }
    for name, row in result["commands"].items():
        print(f"ragctl {name}: p50 {row['p50_s']} s (min {row['min_s']}, max {row['max_s']}) over {args.runs} runs")
    for name, ms in result["phases_ms"]:
        print(f"  {name:<45} {ms:>8.1f} ms")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
