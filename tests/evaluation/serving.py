"""Real servers for the endpoint tests: `transformers serve` on 127.0.0.1, and a small HTTP proxy in
front of it that fails chosen requests (HTTP 500, a cut connection, a response without content).

Both listen on 127.0.0.1 only, on a free port; every request they make has a timeout; a server is
started in a process group of its own and stopped by its PID (`stop_server`).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helpers

#: Longest wait for a server to answer /health after it is started, in seconds.
START_TIMEOUT = 240
#: Longest a proxied request may take, in seconds.
UPSTREAM_TIMEOUT = 120


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command() -> list[str]:
    """`transformers serve` of the interpreter running the tests."""
    script = Path(sys.executable).with_name("transformers")
    return [str(script if script.exists() else shutil.which("transformers"))]


def start_server(model_dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """`transformers serve MODEL_DIR` on 127.0.0.1:`port`, pinned to that model, once it answers /health."""
    command = [*serve_command(), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **helpers.SUBPROCESS_ENV},
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"transformers serve did not answer within {START_TIMEOUT} s: {log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the server's process group (its model runs in a child process) by its PID: `sig`, then SIGKILL."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # children left behind, if any
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of `upstream_port` that answers the chat-completion requests it
    receives, in order, as `plan` says, then passes the rest through:

    - ``"500"``: HTTP 500 with an error body, the server never asked;
    - ``"cut"``: the server's response with its full length announced, but the connection closed halfway;
    - ``"no_content"``: the server's response without ``choices[0].message.content``.
    """

    def __init__(self, upstream_port: int, plan: list[str]):
        self.upstream_port = upstream_port
        self.plan = list(plan)
        self.chat_requests = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                status, body = proxy.forward("GET", self.path, None, dict(self.headers))
                self.reply(status, body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = None
                if self.path.endswith("/chat/completions"):
                    with proxy.lock:
                        proxy.chat_requests += 1
                        fault = proxy.plan.pop(0) if proxy.plan else None
                if fault == "500":
                    self.reply(500, json.dumps({"error": {"message": "injected failure", "code": 500}}).encode())
                    return
                status, answer = proxy.forward("POST", self.path, body, dict(self.headers))
                if fault == "no_content":
                    data = json.loads(answer)
                    del data["choices"][0]["message"]["content"]
                    answer = json.dumps(data).encode()
                if fault == "cut":
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer[: len(answer) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.reply(status, answer)

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=UPSTREAM_TIMEOUT)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization", "accept")}
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
