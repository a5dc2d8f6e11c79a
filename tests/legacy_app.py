"""The guide's old single-container layout, for the migration test: one process ingests, stores
(Chroma's persistent files under data/) and answers, over the host folders data/ and logs/.

    python legacy_app.py [FOLDER_TO_INGEST]      (serves GET /health and GET /ask?q=… on :8000)
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from stack.pipeline.service import Pipeline
from stack.settings import load_settings

root = Path(os.environ.get("RAG_PROJECT_ROOT", "/app/project"))
pipeline = Pipeline(load_settings(root, {"chroma_url": None}))
if len(sys.argv) > 1:
    for path in sorted(Path(sys.argv[1]).iterdir()):
        pipeline.ingest_file(path)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/ask":
            body = {"answer": pipeline.ask(parse_qs(url.query)["q"][0]).answer}
        else:
            body = {"status": "ok"}
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
