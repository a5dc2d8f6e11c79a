"""A stored eval run as one self-contained HTML page: the summary, the fingerprint, then every
question (failures first) with its answer, pass/fail and the cited passages.

Nothing outside the file is referenced (no script, stylesheet, font or image from anywhere: the
CSS is inline, there is no JavaScript), so it opens offline and makes no request.  Every text
from the question set, the answers and the documents is escaped (:func:`html.escape`)."""

from __future__ import annotations

from html import escape

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","Noto Sans KR","Malgun Gothic",sans-serif;margin:2em auto;
max-width:70em;padding:0 1em;color:#1b1b1b;background:#fff}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.q{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.fail{border-left:6px solid #c0392b}.pass{border-left:6px solid #27ae60}.err{border-left:6px solid #8e44ad}
.tag{font-weight:600;font-size:.85em;padding:.05em .5em;border-radius:3px;color:#fff}
.tag.fail{background:#c0392b;border:0}.tag.pass{background:#27ae60;border:0}.tag.err{background:#8e44ad;border:0}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;border-radius:4px;margin:.3em 0}
.muted{color:#666;font-size:.9em}details{margin:.3em 0}summary{cursor:pointer}
"""


def _text(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in pairs)


def _question(row: dict) -> str:
    kind = "err" if row.get("error") else "pass" if row.get("passed") else "fail"
    label = {"err": "ERROR", "pass": "PASS", "fail": "FAIL"}[kind]
    checks = [f"answer has gold: {'yes' if row.get('answer_has_gold') else 'no'}"]
    if row.get("file"):
        checks.append(f"expected file cited: {'yes' if row.get('source_has_gold') else 'no'} "
                      f"(rank {row.get('file_rank') or '–'}) — {row['file']}")
    checks.append(f"{row.get('latency_ms', 0):.0f} ms")
    parts = [(f'<div class="q {kind}"><p><span class="tag {kind}">{label}</span> '
             f'<span class="muted">line {_text(row.get("line"))}</span></p>'),
             f"<p><b>Q.</b> {_text(row['question'])}</p>",
             f"<p><b>Expected:</b> {' | '.join(_text(a) for a in row.get('answers', []))}</p>",
             f'<p class="muted">{_text(" · ".join(checks))}</p>']
    if row.get("error"):
        parts.append(f"<pre>{_text(row['error'].get('message'))}</pre>")
    else:
        parts.append(f"<pre>{_text(row.get('answer'))}</pre>")
    for source in row.get("sources", []):
        where = f", {source['location']}" if source.get("location") else ""
        cited = " (cited)" if source.get("cited") else ""
        parts.append(f"<details><summary>[{_text(source.get('n'))}] {_text(source.get('file'))}{_text(where)}"
                     f"{_text(cited)} <span class=\"muted\">score {_text(source.get('score'))}</span></summary>"
                     f"<pre>{_text(source.get('text'))}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


def render_html(run: dict) -> str:
    """The run as a complete HTML document (UTF-8)."""
    summary = run.get("summary", {})
    results = sorted(run.get("results", []), key=lambda r: (bool(r.get("passed")), r.get("line") or 0))
    metrics = [
        ("questions", summary.get("questions")),
        ("passed", summary.get("passed")),
        ("answer has gold", _share(summary.get("answer_has_gold"))),
        ("expected file cited", f"{_share(summary.get('source_has_gold'))} of {summary.get('with_file')}"),
        ("mean rank of the expected file", summary.get("mean_file_rank")),
        ("mean answer length (chars)", summary.get("mean_answer_chars")),
        ("latency p50 / p95 (ms)", f"{summary.get('latency_ms_p50')} / {summary.get('latency_ms_p95')}"),
        ("errors / malformed rows", f"{summary.get('errors')} / {summary.get('malformed_rows')}"),
    ]
    fingerprint = []

    def walk(data: dict, prefix: str = "") -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                fingerprint.append((f"{prefix}{key}", value))

    walk(run.get("fingerprint") or {})
    malformed = "".join(f"<li>line {_text(e.get('line'))}: {_text(e.get('message'))}</li>"
                        for e in run.get("malformed_rows", []))
    source = run.get("question_set", {}).get("path")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="ko"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request may leave the page: no outside assets, and the policy says so to the browser too.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>ragctl eval {_text(run.get('id'))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>ragctl eval — run {_text(run.get('id'))}</h1>",
        f'<p class="muted">{_text(run.get("created_at"))} · question set {_text(source)}</p>',
        f"<h2>Summary</h2><table>{_rows(metrics)}</table>",
        f"<h2>What shaped the answers</h2><table>{_rows(fingerprint)}</table>",
        f"<h2>Malformed rows</h2><ul>{malformed}</ul>" if malformed else "",
        "<h2>Questions (failures first)</h2>",
        *(_question(row) for row in results),
        "</body></html>",
        "",
    ])
