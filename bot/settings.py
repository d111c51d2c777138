"""Settings of the answerer and the front ends, on top of the indexer's.

`BotSettings` extends `index.settings.IndexSettings`, so one `.env` serves both layers. Our own
settings are `NEWSBOT_*`; the Telegram ones keep the names people expect (`TELEGRAM_BOT_TOKEN`,
...) as their validation alias. Secrets are `SecretStr`, so they never show up in a repr or a
log line.

As in `index.settings`, every value is checked here, when the settings are read: the LLM and
Bot API URLs (http or https; the LLM's is required, with a model name, once `NEWSBOT_LLM`
chooses one), the webhook's URL (https, as Telegram calls no other) and its secret (what
Telegram accepts), and the user lists, which are read into a `UserList` that the bot uses as
it is. Only the token is checked where it is used: it is required by `newsbot telegram` alone,
and `bot.telegram.app.bot_token` says so with the shape it must have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from index.settings import IndexSettings, http_url

LLM_URL_EXAMPLES = {"openai-like": "http://127.0.0.1:8000/v1", "ollama": "http://127.0.0.1:11434"}
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as a secret_token
USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{2,31})")


@dataclass(frozen=True)
class UserList:
    """Telegram users named by numeric id or @username (usernames compare case-blind)."""

    ids: frozenset[int] = frozenset()
    usernames: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.ids or self.usernames)

    def __contains__(self, user) -> bool:
        if user is None:
            return False
        username = (getattr(user, "username", None) or "").lower()
        return user.id in self.ids or (bool(username) and username in self.usernames)

    @classmethod
    def parse(cls, value: str) -> UserList:
        """`"12345, @alice bob"` -> UserList; anything else is a ValueError naming the item."""
        ids, usernames = set(), set()
        for item in re.split(r"[\s,;]+", value.strip()):
            if not item:
                continue
            if item.isdigit():
                ids.add(int(item))
            elif match := USERNAME.fullmatch(item):
                usernames.add(match[1].lower())
            else:
                raise ValueError(
                    f"{item!r} is neither a numeric user id nor an @username "
                    "(separate several with commas)"
                )
        return cls(frozenset(ids), frozenset(usernames))


# Read from the variable's text as it is; pydantic-settings would take it for JSON.
Users = Annotated[UserList, NoDecode]


class BotSettings(IndexSettings):
    # -- answering -------------------------------------------------------------------------
    top_k: int = Field(8, ge=1, le=50, description="chunks retrieved per question")
    max_quotes: int = Field(5, ge=1, le=20, description="quotes shown per answer at most")
    max_question_chars: int = Field(
        1000, ge=20, le=20000, description="longer questions are refused politely"
    )
    history_turns: int = Field(6, ge=0, le=50, description="turns of conversation remembered")
    min_relevance: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="extra margin on the calibrated refusal threshold (higher refuses more)",
    )
    rerank: bool = Field(
        True,
        description="rank sentences with the cross-encoder (off: by shared words, faster)",
    )

    # -- optional LLM ----------------------------------------------------------------------
    llm: Literal["none", "openai-like", "ollama"] = Field(
        "none", description="none (extractive answers), openai-like or ollama"
    )
    llm_base_url: str = Field(
        "", description="LLM server URL, e.g. http://127.0.0.1:8000/v1 or http://127.0.0.1:11434"
    )
    llm_model: str = Field("", description="model name the LLM server knows")
    llm_api_key: SecretStr = Field(SecretStr(""), description="API key, if the server wants one")
    llm_timeout: float = Field(30.0, gt=0, le=600, description="seconds to wait for the LLM")

    # -- Telegram --------------------------------------------------------------------------
    telegram_bot_token: SecretStr = Field(
        SecretStr(""),
        validation_alias="TELEGRAM_BOT_TOKEN",
        description="token from @BotFather",
    )
    telegram_base_url: str = Field(
        "",
        validation_alias="TELEGRAM_BASE_URL",
        description="other Bot API server, e.g. http://127.0.0.1:8081/bot (token appended)",
    )
    telegram_webhook_url: str = Field(
        "",
        validation_alias="TELEGRAM_WEBHOOK_URL",
        description="public HTTPS URL for webhook mode; empty = long polling",
    )
    telegram_webhook_listen: str = Field(
        "127.0.0.1",
        validation_alias="TELEGRAM_WEBHOOK_LISTEN",
        description="address the webhook server listens on",
    )
    telegram_webhook_port: int = Field(
        8443,
        ge=1,
        le=65535,
        validation_alias="TELEGRAM_WEBHOOK_PORT",
        description="port the webhook server listens on",
    )
    telegram_webhook_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias="TELEGRAM_WEBHOOK_SECRET",
        description="secret Telegram sends with each webhook call; empty: a random one per start",
    )
    telegram_allowed_users: Users = Field(
        UserList(),
        validation_alias="TELEGRAM_ALLOWED_USERS",
        description="comma-separated ids or @usernames; empty = everyone",
    )
    telegram_admin_users: Users = Field(
        UserList(),
        validation_alias="TELEGRAM_ADMIN_USERS",
        description="comma-separated ids or @usernames allowed to /reindex",
    )

    @field_validator("llm", mode="before")
    @classmethod
    def _llm_lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "llm_base_url",
        "llm_model",
        "telegram_base_url",
        "telegram_webhook_url",
        "telegram_webhook_secret",
        "telegram_allowed_users",
        "telegram_admin_users",
        mode="before",
    )
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    # Fields are checked in the order they are declared: `llm` is known here (unless invalid).
    @field_validator("llm_base_url")
    @classmethod
    def _llm_url(cls, value: str, info: ValidationInfo) -> str:
        llm = info.data.get("llm", "none")
        example = LLM_URL_EXAMPLES.get(llm, LLM_URL_EXAMPLES["openai-like"])
        if not value:
            if llm == "none":
                return value
            raise ValueError(f"NEWSBOT_LLM={llm} needs the server's URL, e.g. {example}")
        url = http_url(value)
        if url is None:
            raise ValueError(f"must start with http:// or https://, e.g. {example}")
        return url

    @field_validator("llm_model")
    @classmethod
    def _llm_model(cls, value: str, info: ValidationInfo) -> str:
        llm = info.data.get("llm", "none")
        if not value and llm != "none":
            raise ValueError(f"NEWSBOT_LLM={llm} needs the name of a model the server knows")
        return value

    @field_validator("telegram_base_url")
    @classmethod
    def _bot_api_url(cls, value: str) -> str:
        if value and http_url(value) is None:
            raise ValueError("must start with http:// or https://, e.g. http://127.0.0.1:8081/bot")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        if value and (http_url(value) is None or not value.lower().startswith("https://")):
            raise ValueError(
                "must be an https:// URL (Telegram calls no other), e.g. "
                "https://bot.example.org/telegram; leave it empty for long polling"
            )
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError(
                "use 1-256 letters, digits, '_' or '-' (or leave it empty for a random one)"
            )
        return value

    @field_validator("telegram_allowed_users", "telegram_admin_users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        return UserList.parse(value) if isinstance(value, str) else value
