"""Settings of the answerer and the front ends, on top of the indexer's.

`BotSettings` extends `index.settings.IndexSettings`, so one `.env` serves both layers. Our own
settings are `NEWSBOT_*`; the Telegram ones keep the names people expect (`TELEGRAM_BOT_TOKEN`,
...). Secrets are `SecretStr`, so they never show up in a repr or a log line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from index.settings import IndexSettings


def _telegram(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


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
        validation_alias=_telegram("TELEGRAM_BOT_TOKEN"),
        description="token from @BotFather",
    )
    telegram_base_url: str = Field(
        "",
        validation_alias=_telegram("TELEGRAM_BASE_URL"),
        description="other Bot API server, e.g. http://127.0.0.1:8081/bot (token appended)",
    )
    telegram_webhook_url: str = Field(
        "",
        validation_alias=_telegram("TELEGRAM_WEBHOOK_URL"),
        description="public HTTPS URL for webhook mode; empty = long polling",
    )
    telegram_webhook_listen: str = Field(
        "127.0.0.1",
        validation_alias=_telegram("TELEGRAM_WEBHOOK_LISTEN"),
        description="address the webhook server listens on",
    )
    telegram_webhook_port: int = Field(
        8443,
        ge=1,
        le=65535,
        validation_alias=_telegram("TELEGRAM_WEBHOOK_PORT"),
        description="port the webhook server listens on",
    )
    telegram_webhook_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=_telegram("TELEGRAM_WEBHOOK_SECRET"),
        description="secret Telegram sends with each webhook call; empty: a random one per start",
    )
    telegram_allowed_users: str = Field(
        "",
        validation_alias=_telegram("TELEGRAM_ALLOWED_USERS"),
        description="comma-separated ids or @usernames; empty = everyone",
    )
    telegram_admin_users: str = Field(
        "",
        validation_alias=_telegram("TELEGRAM_ADMIN_USERS"),
        description="comma-separated ids or @usernames allowed to /reindex",
    )

    @field_validator("llm", mode="before")
    @classmethod
    def _llm_lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value
