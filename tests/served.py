"""A local HTTP server on 127.0.0.1 for download tests (nothing reaches the internet)."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files from the server's folder, honouring 'Range: bytes=N-' as S3 does.

    ``server.cut_after`` (bytes) makes the next response promise the whole body but stop after that
    many bytes and drop the connection: an interrupted transfer.
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.server.folder) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        blob = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and self.server.ranges:
            start = int(match.group(1))
            if start >= len(blob):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
            blob = blob[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        cut, self.server.cut_after = self.server.cut_after, None
        self.wfile.write(blob if cut is None else blob[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True


@contextmanager
def serve(folder: Path) -> Iterator[http.server.ThreadingHTTPServer]:
    """Serve ``folder`` on a free port; ``server.url`` is its base URL, ``server.requests`` what was asked."""
    folder.mkdir(parents=True, exist_ok=True)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.folder, httpd.requests, httpd.ranges, httpd.cut_after = folder, [], True, None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
