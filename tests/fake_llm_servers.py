"""Fake LLM servers on 127.0.0.1 for the real llama-index clients to talk to.

    FakeOpenAIServer  POST /v1/chat/completions  (OpenAI, vLLM, llama.cpp server, LM Studio)
    FakeOllamaServer  POST /api/chat             (Ollama; also /api/show, /api/version)

Each records the JSON bodies it received in `requests` and answers with `reply`: a string, or a
callable taking the request's messages and returning one. `delay` makes it slow and `raw`
sends these bytes instead of a well-formed reply. Every wait is bounded: a slow reply gives up
when the server stops, and the serving thread is joined on stop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = str | Callable[[list[dict]], str]


class FakeLLMServer:
    paths: tuple[str, ...] = ()

    def __init__(self, reply: Reply = "", delay: float = 0.0, raw: bytes | None = None):
        self.reply = reply
        self.delay = delay
        self.raw = raw
        self.requests: list[dict] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        # stop() waits for the serving loop to look up, up to one poll interval
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a request gets ----------------------------------------------------------------
    @property
    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests if "messages" in r]

    def user_prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.chat_requests]

    def content_for(self, body: dict) -> str:
        return self.reply(body.get("messages", [])) if callable(self.reply) else self.reply

    def respond(self, path: str, body: dict) -> tuple[int, dict]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # no ~40 ms wait for a delayed ACK per answer

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                server.requests.append({"path": self.path, **body})
                if server.delay and server._stopping.wait(server.delay):
                    return
                if self.path not in server.paths:
                    self._send(404, b'{"error": "not found"}')
                elif server.raw is not None:
                    self._send(200, server.raw)
                else:
                    status, payload = server.respond(self.path, body)
                    self._send(status, json.dumps(payload).encode())

            do_GET = do_POST

            def _send(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

        return Handler


class FakeOpenAIServer(FakeLLMServer):
    paths = ("/v1/chat/completions",)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def respond(self, path: str, body: dict) -> tuple[int, dict]:
        if body.get("stream"):
            return 400, {"error": {"message": "this fake does not stream"}}
        content = self.content_for(body)
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }


class FakeOllamaServer(FakeLLMServer):
    paths = ("/api/chat", "/api/show", "/api/version")

    @property
    def base_url(self) -> str:
        return self.url

    def respond(self, path: str, body: dict) -> tuple[int, dict]:
        if path == "/api/version":
            return 200, {"version": "0.0.0-fake"}
        if path == "/api/show":
            return 200, {"modelinfo": {"fake.context_length": 8192}}
        if body.get("stream", True):
            return 400, {"error": "this fake does not stream"}
        return 200, {
            "model": body.get("model", "fake"),
            "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": self.content_for(body)},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1000,
            "prompt_eval_count": 10,
            "eval_count": 5,
        }
