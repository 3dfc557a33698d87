#!/usr/bin/env python3
"""count-http.py ADDR PORT DIR: a static HTTP server of DIR (as python3 -m http.server)
that counts the bytes it sends for each path. GET /__bytes answers them as JSON:
{"total": N, "paths": {"/bundles/ID": N, ...}}. For the channel tests and
bench/distribution.sh: the origin's egress is the figure that matters."""
import functools
import http.server
import json
import sys
import threading

count = {}
lock = threading.Lock()


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/__bytes":
            with lock:
                body = json.dumps({"total": sum(count.values()), "paths": count}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def copyfile(self, src, dst):
        path = self.path.split("?", 1)[0]
        while True:
            b = src.read(1 << 16)
            if not b:
                break
            dst.write(b)
            with lock:
                count[path] = count.get(path, 0) + len(b)


if __name__ == "__main__":
    addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    http.server.ThreadingHTTPServer((addr, port), functools.partial(Handler, directory=root)).serve_forever()
