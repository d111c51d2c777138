"""Typed settings for the indexer, read from the environment and `.env`.

Every field is a `NEWSBOT_*` variable (the field name in upper case). `bot.settings` extends this
class with the answerer's and the front ends' settings; both read the same `.env` and ignore
what they do not know. `.env.example` lists every field with its default, and a test keeps it
complete.

`load_settings()` turns pydantic's validation errors into a `SettingsError` that names the
variable, so a typo in `.env` is one readable line, not a traceback; so is a `.env` that is not
UTF-8 (it names the file and the line). An empty `NEWSBOT_CORPUS_DIR=` or `NEWSBOT_STORE_DIR=`
would mean the working folder -- indexing whatever is there, or filling it with the index -- so
it is refused; `.` says so on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.errors import SettingsError

BUNDLED_MODEL = "bundled"
MODEL_WINDOW = 256  # wordpieces all-MiniLM-L6-v2 reads; longer input is silently cut


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    corpus_dir: Path = Field(Path("corpus"), description="folder of article .txt files")
    store_dir: Path = Field(
        Path(".newsbot"), description="where the index, its manifest and the chat history live"
    )
    collection: str = Field("newsbot", description="Chroma collection name", min_length=3)
    embed_model: str = Field(
        BUNDLED_MODEL,
        description="'bundled' (offline all-MiniLM-L6-v2), a sentence-transformers name or a path",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024, description="chunks per embedding batch")
    embed_runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="auto (ONNX Runtime when the model allows it, else torch), torch or onnx",
    )
    chunk_size: int = Field(
        MODEL_WINDOW,
        ge=32,
        le=8192,
        description="wordpieces per chunk, counting the embedded title and special tokens",
    )
    chunk_overlap: int = Field(
        48, ge=0, description="wordpieces of trailing sentences repeated at the next chunk's start"
    )
    chroma_host: str | None = Field(
        None, description="Chroma server host; empty = embedded Chroma in the store dir"
    )
    chroma_port: int = Field(8000, ge=1, le=65535, description="Chroma server port")
    log_level: str = Field("WARNING", description="DEBUG, INFO, WARNING or ERROR")

    @field_validator("corpus_dir", "store_dir", mode="before")
    @classmethod
    def _folder_given(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "is empty, which would mean the working folder: name a folder "
                "(`.` if you mean the working folder), or remove the line for the default"
            )
        return value

    @field_validator("chroma_host", mode="before")
    @classmethod
    def _empty_host_is_none(cls, value: Any) -> Any:
        return value or None

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @model_validator(mode="after")
    def _overlap_fits(self) -> IndexSettings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError(
                f"NEWSBOT_CHUNK_OVERLAP ({self.chunk_overlap}) must be less than half of "
                f"NEWSBOT_CHUNK_SIZE ({self.chunk_size})"
            )
        return self

    @property
    def chroma_dir(self) -> Path:
        return self.store_dir / "chroma"

    @property
    def manifest_path(self) -> Path:
        return self.store_dir / "manifest.sqlite3"


S = TypeVar("S", bound=BaseSettings)


def env_name(settings_class: type[BaseSettings], field: str) -> str:
    info = settings_class.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias.upper()
    if alias is not None and hasattr(alias, "choices"):
        return str(alias.choices[0]).upper()
    return f"{settings_class.model_config.get('env_prefix', '')}{field}".upper()


def load_settings(settings_class: type[S] = IndexSettings, **overrides: Any) -> S:
    """Read settings, raising `SettingsError` that names each bad variable."""
    try:
        return settings_class(**overrides)
    except UnicodeDecodeError:
        raise SettingsError(_not_utf8(settings_class)) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            name = env_name(settings_class, field) if field else "settings"
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            secret = any(word in field for word in ("token", "key", "secret"))
            plain = field and not secret and isinstance(value, (str, int, float))
            shown = f"={value!r}" if plain else ""
            problems.append(f"{name}{shown}: {message}")
        raise SettingsError("Invalid setting " + "; ".join(problems)) from None


def _not_utf8(settings_class: type[BaseSettings]) -> str:
    """Which env file is not UTF-8, and where (pydantic-settings only raises the codec error)."""
    env_file = settings_class.model_config.get("env_file") or ".env"
    line = ""
    try:
        Path(env_file).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        number = exc.object[: exc.start].count(b"\n") + 1
        line = f", line {number}"
    except OSError:
        pass
    return (
        f"The settings file {Path(env_file).absolute()} is not UTF-8 text{line}: "
        "save it as UTF-8 (or remove the line)."
    )
