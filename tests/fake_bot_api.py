"""A fake Telegram Bot API server on 127.0.0.1, for tests and the Telegram load benchmark.

    api = FakeBotApi().start()          # a free port; api.base_url -> "http://127.0.0.1:N/bot"
    api.send_text(chat_id=1, text="What did Stoltenberg say about Iran?")
    api.wait_for(lambda: api.sent_to(1), timeout=60)
    api.stop()

It speaks the Bot API's HTTP protocol (`/bot{token}/{method}`, form or JSON parameters,
`{"ok": ..., "result": ...}` answers) well enough for python-telegram-bot's real `Application`:
getMe, deleteWebhook, setWebhook, setMyCommands, getUpdates (queued updates, offsets, a short
long-poll wait, only the kinds of update `allowed_updates` asked for) and sendMessage /
sendDocument (multipart) / sendChatAction / answerCallbackQuery / answerInlineQuery /
editMessageReplyMarkup, which it records. Like Telegram it refuses a message whose HTML does not
parse or whose text is over 4,096 characters ("Bad Request: can't parse entities" / "message is
too long"), a reply to a deleted message unless `allow_sending_without_reply` is set, callback
data over 64 bytes and a second answer to one callback query, so a test sees what the real
server would reject.

What users do besides typing: `press(sent, data)` presses a button under a message the bot
sent (a callback_query carrying that message, its keyboard and the message it replies to),
`inline_query(user, query)` types `@bot query` in some chat, `delete_message(chat, id)`.

`retry_after(seconds)` makes the next sendMessage fail with Telegram's 429 flood-control answer;
`fail_polls(n)` makes the next getUpdates calls fail with 502 Bad Gateway.

`fail_sends(kind, ...)` makes the next sendMessage calls fail, one kind each, and
`fail_sends_at_random(rate, kinds, seed)` fails that share of them; the kinds (`SEND_FAILURES`)
say whether the message was stored first, as the real server might have done:

    "500" "502" "503"   an error status with Telegram's JSON body         not stored
    "html"              502 with the HTML page of a proxy in front of it  not stored
    "drop"              the connection closes without an answer           not stored
    "hang"              no answer for `hang_seconds`, then it closes       not stored
    "bad-json"          200, but the body is not JSON                     stored
    "hang-after-store"  no answer for `hang_seconds`, then it closes       stored

Every stored message is in `sent` (what the user sees, duplicates included); every failed call
is in `failed` with its kind and whether it was stored.
Everything is stdlib (http.server in a thread); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import html
import itertools
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"
BOT_USER = {
    "id": 999000111,
    "is_bot": True,
    "first_name": "Newsbot",
    "username": "newsbot_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,  # BotFather's /setinline done
}
MAX_POLL_WAIT = 0.5  # seconds a getUpdates waits for news (Telegram: up to `timeout`)
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_BYTES = 64
HANG_SECONDS = 6.0  # a "hang" outlasts python-telegram-bot's default read timeout of 5 s
SEND_FAILURES = {  # kind -> stored before failing?
    "500": False,
    "502": False,
    "503": False,
    "html": False,
    "drop": False,
    "hang": False,
    "bad-json": True,
    "hang-after-store": True,
}
PROXY_ERROR_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|lt|gt|amp|quot);")
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")


@dataclass
class Raw:
    """A body sent as it is, not as JSON."""

    body: bytes
    content_type: str


DROP = (0, None)  # close the connection without an answer


class FakeBotApi:
    def __init__(self, token: str = TOKEN, bot: dict | None = None):
        self.token = token
        self.bot = dict(bot or BOT_USER)
        self.lock = threading.Condition()
        self.updates: list[dict] = []  # not yet confirmed by an offset
        self.queued_at: dict[int, float] = {}  # update_id -> time.monotonic() when queued
        self.calls: list[tuple[str, dict]] = []  # every request: (method, parameters)
        self.sent: list[dict] = []  # accepted sendMessage parameters, plus "at" and "message_id"
        self.rejected: list[dict] = []  # sendMessage refused: parameters, plus "error"
        self.actions: list[dict] = []  # sendChatAction parameters
        self.failed: list[
            dict
        ] = []  # sendMessage failed on purpose: parameters, "failure", "stored"
        self.chats: dict[int, dict] = {}
        self.messages: dict[tuple[int, int], dict] = {}  # (chat id, message id) -> Message
        self.deleted: set[tuple[int, int]] = set()
        self.documents: list[dict] = []  # sendDocument: parameters, "file" bytes, "filename"
        self.button_answers: list[dict] = []  # answerCallbackQuery parameters
        self.inline_answers: list[dict] = []  # answerInlineQuery parameters
        self.markup_edits: list[dict] = []  # editMessageReplyMarkup parameters
        self.allowed_updates: list[str] | None = None  # None: every kind (Telegram's default)
        self._callback_ids = itertools.count(1)
        self.offset = 0  # the highest getUpdates offset seen: updates below it were received
        self._flood: list[int] = []  # retry_after seconds for the next sendMessage calls
        self._poll_failures = 0
        self._send_failures: list[str] = []  # kinds of failure for the next sendMessage calls
        self._random_failures: tuple[float, tuple[str, ...], random.Random] | None = None
        self.hang_seconds = HANG_SECONDS
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None

    # -- running -----------------------------------------------------------------------------
    def start(self) -> FakeBotApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        # stop() waits for the serving loop's next look (every 0.5 s by default): most of a
        # Telegram test's time.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server, "start() the server first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """TELEGRAM_BASE_URL for python-telegram-bot: the token is appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    # -- what users do -----------------------------------------------------------------------
    def push(self, kind: str, payload: dict) -> int:
        """Queue an update of `kind` ("message", "edited_message", ...); returns its id."""
        with self.lock:
            update_id = next(self._update_ids)
            chat = payload.get("chat")
            if chat:
                self.chats[chat["id"]] = chat
            self.updates.append({"update_id": update_id, kind: payload})
            self.queued_at[update_id] = time.monotonic()
            self.lock.notify_all()
        return update_id

    def message(
        self,
        chat_id: int,
        text: str | None = None,
        user: dict | None = None,
        chat_type: str = "private",
        **fields: Any,
    ) -> dict:
        """A Message object as Telegram sends it (bot_command / mention entities included)."""
        user = user or {"id": chat_id, "is_bot": False, "first_name": "Reader"}
        chat = {"id": chat_id, "type": chat_type}
        chat.update(
            {"first_name": user["first_name"]} if chat_type == "private" else {"title": "News"}
        )
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        if text is not None:
            message["text"] = text
            entities = _entities(text)
            if entities:
                message["entities"] = entities
        message.update(fields)
        with self.lock:
            self.chats.setdefault(chat_id, chat)
            self.messages[(chat_id, message["message_id"])] = message
        return message

    def send_text(self, chat_id: int, text: str, **kwargs: Any) -> int:
        """A user sends `text`; returns the update id (the message is in `last_message`)."""
        self.last_message = self.message(chat_id, text, **kwargs)
        return self.push("message", self.last_message)

    def bot_message(self, chat_id: int, text: str, chat_type: str = "private") -> dict:
        """A message the bot sent earlier (to reply to)."""
        chat = {"id": chat_id, "type": chat_type}
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot,
            "text": text,
        }

    def callback_query(self, sent: dict, data: str | None = None, user: dict | None = None):
        """The callback_query of a user pressing a button under `sent` (an entry of `sent`):
        its first button unless `data` is given; it carries the message as it is now."""
        chat_id = int(sent["chat_id"])
        with self.lock:
            message = dict(self.messages[(chat_id, sent["message_id"])])
        if data is None:
            data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        user = user or {"id": chat_id, "is_bot": False, "first_name": "Reader"}
        query = {"id": f"cb{next(self._callback_ids)}", "from": user, "message": message}
        query["chat_instance"] = f"ci{chat_id}"
        if data is not None:
            query["data"] = data
        return query

    def press(self, sent: dict, data: str | None = None, user: dict | None = None) -> str:
        """Queue a button press (see `callback_query`); returns the query's id."""
        query = self.callback_query(sent, data, user)
        self.push("callback_query", query)
        return query["id"]

    def inline(self, user: dict, query: str) -> dict:
        """The inline_query of `user` typing `@bot query` in some chat."""
        query_id = f"iq{next(self._callback_ids)}"
        return {"id": query_id, "from": user, "query": query, "offset": "", "chat_type": "group"}

    def inline_query(self, user: dict, query: str) -> str:
        """Queue an inline query (see `inline`); returns its id."""
        inline = self.inline(user, query)
        self.push("inline_query", inline)
        return inline["id"]

    def delete_message(self, chat_id: int, message_id: int) -> None:
        with self.lock:
            self.deleted.add((chat_id, message_id))

    def buttons(self, sent: dict) -> list[tuple[str, str]]:
        """(text, callback data) of each button under a message the bot sent, as it is now."""
        with self.lock:
            markup = self.messages[(int(sent["chat_id"]), sent["message_id"])].get("reply_markup")
        rows = (markup or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row]

    def answered(self, query_id: str) -> dict | None:
        """The answerCallbackQuery or answerInlineQuery for the query, once it came."""
        with self.lock:
            for answer in self.button_answers + self.inline_answers:
                if answer.get("callback_query_id", answer.get("inline_query_id")) == query_id:
                    return answer
        return None

    def retry_after(self, seconds: int = 1, times: int = 1) -> None:
        """The next `times` sendMessage calls get Telegram's 429 flood-control answer."""
        with self.lock:
            self._flood.extend([seconds] * times)

    def fail_polls(self, times: int = 1) -> None:
        """The next `times` getUpdates calls fail with 502 Bad Gateway (a network hiccup)."""
        with self.lock:
            self._poll_failures += times

    def fail_sends(self, *kinds: str) -> None:
        """The next sendMessage calls fail, one per kind given (see `SEND_FAILURES`)."""
        unknown = set(kinds) - set(SEND_FAILURES)
        assert not unknown, f"unknown kinds of failure: {unknown}"
        with self.lock:
            self._send_failures.extend(kinds)

    def fail_sends_at_random(
        self, rate: float, kinds: tuple[str, ...] = ("500", "502", "503"), seed: int = 0
    ) -> None:
        """From now on, each sendMessage fails with probability `rate`, in one of `kinds`."""
        unknown = set(kinds) - set(SEND_FAILURES)
        assert not unknown, f"unknown kinds of failure: {unknown}"
        with self.lock:
            self._random_failures = (rate, tuple(kinds), random.Random(seed))

    # -- what the bot did --------------------------------------------------------------------
    def sent_to(self, chat_id: int) -> list[dict]:
        with self.lock:
            return [m for m in self.sent if int(m["chat_id"]) == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent_to(chat_id)]

    def methods(self) -> list[str]:
        with self.lock:
            return [method for method, _ in self.calls]

    def wait_for(self, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Poll `condition` until it is true (returning it) or raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.02)
        raise TimeoutError(f"condition not met in {timeout} s; sent so far: {self.sent!r}")

    def fetched(self, update_id: int) -> bool:
        """Has the bot confirmed (by a getUpdates offset past it) that it received the update?"""
        with self.lock:
            return self.offset > update_id

    # -- the API -----------------------------------------------------------------------------
    def handle(self, method: str, params: dict) -> tuple[int, dict | Raw | None]:
        with self.lock:
            self.calls.append((method, params))
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return 200, {"ok": True, "result": True}
        return handler(params)

    def api_getMe(self, params: dict) -> tuple[int, dict]:
        return 200, {"ok": True, "result": self.bot}

    def api_getUpdates(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            if self._poll_failures:
                self._poll_failures -= 1
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        if params.get("allowed_updates"):
            with self.lock:  # as Telegram: kept until the next call that names some
                self.allowed_updates = list(params["allowed_updates"])
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), MAX_POLL_WAIT)
        deadline = time.monotonic() + wait
        with self.lock:
            if offset:
                self.offset = max(offset, self.offset)
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self._deliverable() and time.monotonic() < deadline:
                self.lock.wait(max(deadline - time.monotonic(), 0.01))
            batch = self._deliverable()[:limit]
        return 200, {"ok": True, "result": batch}

    def _deliverable(self) -> list[dict]:
        """The queued updates, less the kinds not asked for: Telegram drops those."""
        if self.allowed_updates is not None:
            allowed = set(self.allowed_updates)
            self.updates = [u for u in self.updates if allowed & set(u)]
        return self.updates

    def _next_failure(self) -> str | None:
        with self.lock:
            if self._send_failures:
                return self._send_failures.pop(0)
            if self._random_failures:
                rate, kinds, chance = self._random_failures
                if chance.random() < rate:
                    return chance.choice(kinds)
        return None

    def api_sendMessage(self, params: dict) -> tuple[int, dict | Raw | None]:
        with self.lock:
            if self._flood:
                seconds = self._flood.pop(0)
                self.rejected.append({**params, "error": 429, "at": time.monotonic()})
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {seconds}",
                    "parameters": {"retry_after": seconds},
                }
        text = str(params.get("text", ""))
        error = None
        if str(params.get("parse_mode", "")).upper() == "HTML":
            error = html_error(text)
            visible = html.unescape(TAG.sub("", text)) if error is None else text
        else:
            visible = text
        if error is None and not visible.strip():
            error = "message text is empty"
        if error is None and len(visible.encode("utf-16-le")) // 2 > MESSAGE_LIMIT:
            error = "message is too long"
        error = error or self._reply_error(params) or _markup_error(params)
        if error:
            with self.lock:
                self.rejected.append({**params, "error": error, "at": time.monotonic()})
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}
        failure = self._next_failure()
        if failure is not None:
            return self._fail(failure, params, visible)
        return 200, {"ok": True, "result": self._store(params, visible)}

    def _reply_error(self, params: dict) -> str | None:
        """Telegram's refusal of a reply to a deleted message, unless told to send anyway."""
        reply = params.get("reply_parameters")
        if not reply:
            return None
        chat_id = int(params["chat_id"])
        gone = (chat_id, int(reply["message_id"])) in self.deleted
        if gone and not reply.get("allow_sending_without_reply"):
            return "message to be replied not found"
        return None

    def _message(self, params: dict, **content: Any) -> dict:
        """The Message Telegram would store for `params`, kept for button presses."""
        chat_id = int(params["chat_id"])
        with self.lock:
            message_id = next(self._message_ids)
            chat = self.chats.get(chat_id, {"id": chat_id, "type": "private", "first_name": "R"})
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": self.bot,
                **content,
            }
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            reply = params.get("reply_parameters")
            replied = (chat_id, int(reply["message_id"])) if reply else None
            if replied and replied not in self.deleted and replied in self.messages:
                message["reply_to_message"] = self.messages[replied]
            self.messages[(chat_id, message_id)] = message
        return message

    def _store(self, params: dict, visible: str) -> dict:
        """Keep the message as delivered; returns the Message Telegram would answer with."""
        message = self._message(params, text=visible)
        with self.lock:
            self.sent.append(
                {**params, "message_id": message["message_id"], "at": time.monotonic()}
            )
        return message

    def _fail(self, failure: str, params: dict, visible: str) -> tuple[int, dict | Raw | None]:
        """Answer a sendMessage with `failure`: a status and a body, or DROP to close the
        connection without an answer."""
        stored = SEND_FAILURES[failure]
        if stored:
            self._store(params, visible)
        with self.lock:
            self.failed.append(
                {**params, "failure": failure, "stored": stored, "at": time.monotonic()}
            )
        if failure.startswith("hang"):
            time.sleep(self.hang_seconds)
            return DROP
        if failure == "drop":
            return DROP
        if failure == "html":
            return 502, Raw(PROXY_ERROR_PAGE, "text/html")
        if failure == "bad-json":
            return 200, Raw(b'{"ok": true, "result": {"message_id": 1, "da', "application/json")
        status = int(failure)
        description = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return status, {"ok": False, "error_code": status, "description": description[status]}

    def api_sendDocument(self, params: dict) -> tuple[int, dict]:
        document = params.get("document")
        caption = str(params.get("caption", ""))
        error = None
        if not isinstance(document, Upload) or not document.content:
            error = "there is no document in the request"
        elif str(params.get("parse_mode", "")).upper() == "HTML":
            error = html_error(caption)
        if error is None and len(html.unescape(TAG.sub("", caption))) > CAPTION_LIMIT:
            error = "message caption is too long"
        error = error or self._reply_error(params) or _markup_error(params)
        if error:
            with self.lock:
                self.rejected.append({**params, "error": error, "at": time.monotonic()})
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}
        file = {"file_id": f"doc{len(self.documents)}", "file_unique_id": "u", "file_name": ""}
        file["file_name"] = document.filename
        message = self._message(params, document=file, caption=caption)
        with self.lock:
            self.documents.append(
                {
                    **params,
                    "file": document.content,
                    "filename": document.filename,
                    "message_id": message["message_id"],
                    "at": time.monotonic(),
                }
            )
        return 200, {"ok": True, "result": message}

    def api_answerCallbackQuery(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            query_id = params.get("callback_query_id")
            if any(a["callback_query_id"] == query_id for a in self.button_answers):
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: query is too old and response timeout expired "
                    "or query ID is invalid",
                }
            self.button_answers.append({**params, "at": time.monotonic()})
        return 200, {"ok": True, "result": True}

    def api_answerInlineQuery(self, params: dict) -> tuple[int, dict]:
        results = params.get("results") or []
        for result in results:
            content = result.get("input_message_content", {})
            error = None
            if str(content.get("parse_mode", "")).upper() == "HTML":
                error = html_error(content.get("message_text", ""))
            if error:
                return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}
        with self.lock:
            self.inline_answers.append({**params, "results": results, "at": time.monotonic()})
        return 200, {"ok": True, "result": True}

    def api_editMessageReplyMarkup(self, params: dict) -> tuple[int, dict]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        with self.lock:
            if key not in self.messages:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: message to edit not found",
                }
            self.markup_edits.append({**params, "at": time.monotonic()})
            message = self.messages[key]
            if params.get("reply_markup"):
                message["reply_markup"] = params["reply_markup"]
            else:
                message.pop("reply_markup", None)
        return 200, {"ok": True, "result": message}

    def api_sendChatAction(self, params: dict) -> tuple[int, dict]:
        with self.lock:
            self.actions.append({**params, "at": time.monotonic()})
        return 200, {"ok": True, "result": True}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hung up: fine
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as python-telegram-bot's httpx client expects
    # Headers and body leave in separate writes; with Nagle's algorithm on, the body of each
    # answer waited for the client's delayed ACK (~40 ms a request on Linux loopback).
    disable_nagle_algorithm = True
    fake: FakeBotApi

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", self.path.split("?", 1)[0])
        if not match:
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        if match[1] != self.fake.token:
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        self._reply(*self.fake.handle(match[2], _parameters(self.headers, body)))

    def _reply(self, status: int, payload: dict | Raw | None) -> None:
        if payload is None:  # DROP
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(payload, Raw):
            data, content_type = payload.body, payload.content_type
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the bot gave up
            self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


@dataclass
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content: bytes


def _parameters(headers, body: bytes) -> dict:
    """Form fields (JSON-encoded when not strings, as python-telegram-bot sends them), multipart
    fields and files, or JSON."""
    if not body:
        return {}
    content_type = headers.get("Content-Type") or ""
    if "json" in content_type:
        return json.loads(body)
    if content_type.startswith("multipart/form-data"):
        return _multipart(content_type, body)
    params: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        params[key] = _field(value)
    return params


def _field(value: str) -> Any:
    if value.startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _multipart(content_type: str, body: bytes) -> dict:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    params: dict[str, Any] = {}
    for part in form.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = Upload(filename, content)
        else:
            params[name] = _field(content.decode())
    # A file may be sent as an attach:// reference to another part.
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            params[name] = params.get(value[len("attach://") :], value)
    return params


def _markup_error(params: dict) -> str | None:
    markup = params.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= CALLBACK_DATA_BYTES:
                return "BUTTON_DATA_INVALID"
    return None


def _entities(text: str) -> list[dict]:
    """The bot_command and mention entities Telegram would attach (offsets in UTF-16 units)."""
    entities = []
    for kind, pattern in (("bot_command", r"^/\w+(?:@\w+)?"), ("mention", r"(?<!\w)@\w{3,}")):
        for match in re.finditer(pattern, text):
            offset = len(text[: match.start()].encode("utf-16-le")) // 2
            length = len(match[0].encode("utf-16-le")) // 2
            entities.append({"type": kind, "offset": offset, "length": length})
    return sorted(entities, key=lambda e: e["offset"])


def html_error(text: str) -> str | None:
    """What Telegram's HTML parser would object to, or None: unknown or unbalanced tags, and
    `<`, `>` or `&` that are not part of a tag or an entity."""
    stack: list[str] = []
    position = 0
    for match in TAG.finditer(text):
        problem = _bare_specials(text[position : match.start()], position)
        if problem:
            return problem
        closing, name = match[1] == "/", match[2].lower()
        if name not in ALLOWED_TAGS:
            return f'can\'t parse entities: unsupported start tag "{name}" at {match.start()}'
        if closing:
            if not stack or stack[-1] != name:
                return f"can't parse entities: can't find end tag corresponding to {name}"
            stack.pop()
        else:
            stack.append(name)
        position = match.end()
    problem = _bare_specials(text[position:], position)
    if problem:
        return problem
    if stack:
        return f"can't parse entities: can't find end tag corresponding to start tag {stack[-1]}"
    return None


def _bare_specials(chunk: str, offset: int) -> str | None:
    for match in re.finditer(r"[<>&]", chunk):
        if match[0] == "&" and ENTITY.match(chunk, match.start()):
            continue
        return (
            "can't parse entities: unexpected "
            f"{'end tag' if match[0] == '>' else 'character'} at byte offset "
            f"{offset + match.start()}"
        )
    return None


# -- driving an Application with updates of this fake's making ---------------------------------
ALICE = {"id": 101, "is_bot": False, "first_name": "Alice", "username": "alice"}
_update_ids = itertools.count(1_000_000)  # apart from ids a test numbers itself


async def deliver(application, kind: str, payload: dict) -> None:
    """Hand `application` one update holding `payload` as its `kind` ("message", ...)."""
    from telegram import Update

    update = {"update_id": next(_update_ids), kind: payload}
    await application.process_update(Update.de_json(update, application.bot))


async def press(application, api: FakeBotApi, sent: dict, data=None, user=ALICE) -> str:
    """Press a button under `sent` (the first, or the one with `data`); returns the query id."""
    query = api.callback_query(sent, data, user)
    await deliver(application, "callback_query", query)
    return query["id"]


async def type_inline(application, api: FakeBotApi, query: str, user=ALICE) -> str:
    """Type `@bot query` in any chat; returns the inline query's id."""
    inline = api.inline(user, query)
    await deliver(application, "inline_query", inline)
    return inline["id"]
