"""Settings come from NEWSBOT_* variables and `.env`; bad values are one readable error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import BotSettings
from index.errors import SettingsError
from index.settings import IndexSettings, env_name, load_settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def example_assignments() -> list[tuple[int, str, str]]:
    """(line number, name, value) of every assignment in .env.example."""
    found = []
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if match := ASSIGNMENT.match(line):
            found.append((number, match.group(1), match.group(2)))
    return found


def test_defaults_without_env(workdir):
    settings = load_settings()
    assert settings.corpus_dir == Path("corpus")
    assert settings.store_dir == Path(".newsbot")
    assert settings.embed_model == "bundled"
    assert settings.chunk_size == 256
    assert settings.chroma_host is None
    assert settings.chroma_dir == Path(".newsbot/chroma")
    assert settings.manifest_path == Path(".newsbot/manifest.sqlite3")


def test_environment_variables_are_read(workdir, monkeypatch):
    monkeypatch.setenv("NEWSBOT_CHUNK_SIZE", "128")
    monkeypatch.setenv("NEWSBOT_CORPUS_DIR", "/data/news")
    monkeypatch.setenv("NEWSBOT_LOG_LEVEL", "info")
    settings = load_settings()
    assert settings.chunk_size == 128
    assert settings.corpus_dir == Path("/data/news")
    assert settings.log_level == "INFO"


def test_dotenv_is_read_and_environment_wins(workdir, monkeypatch):
    (workdir / ".env").write_text(
        "NEWSBOT_CHUNK_SIZE=100\nNEWSBOT_EMBED_MODEL=hashing\nNEWSBOT_TOP_K=3\n"
        "SOMETHING_ELSE=1\nTELEGRAM_BOT_TOKEN=123:abc\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("NEWSBOT_CHUNK_SIZE", "200")
    index_settings = load_settings()  # ignores what it does not know (TOP_K, TELEGRAM_*)
    assert index_settings.chunk_size == 200
    assert index_settings.embed_model == "hashing"
    bot_settings = load_settings(BotSettings)
    assert bot_settings.top_k == 3
    assert bot_settings.telegram_bot_token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(bot_settings)


def test_empty_chroma_host_means_embedded(workdir, monkeypatch):
    monkeypatch.setenv("NEWSBOT_CHROMA_HOST", "")
    assert load_settings().chroma_host is None
    monkeypatch.setenv("NEWSBOT_CHROMA_HOST", "chroma.local")
    assert load_settings().chroma_host == "chroma.local"


def test_env_name():
    assert env_name(IndexSettings, "chunk_size") == "NEWSBOT_CHUNK_SIZE"
    assert env_name(BotSettings, "top_k") == "NEWSBOT_TOP_K"
    assert env_name(BotSettings, "telegram_bot_token") == "TELEGRAM_BOT_TOKEN"


def test_env_example_lists_every_setting():
    listed = {name for _, name, _ in example_assignments()}
    expected = {env_name(BotSettings, field) for field in BotSettings.model_fields}
    assert not expected - listed, f"missing from .env.example: {sorted(expected - listed)}"
    assert not listed - expected, f"unknown names in .env.example: {sorted(listed - expected)}"


def test_env_example_has_a_comment_above_every_setting():
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, name, _ in example_assignments():
        assert lines[number - 2].startswith("# "), f"{name} (line {number}) has no comment"


def test_env_example_shows_the_defaults(workdir):
    defaults = load_settings(BotSettings)
    (workdir / ".env").write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    from_example = load_settings(BotSettings)
    assert from_example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSBOT_CHUNK_SIZE", "abc"),
        ("NEWSBOT_CHUNK_SIZE", "8"),
        ("NEWSBOT_CHROMA_PORT", "70000"),
        ("NEWSBOT_LOG_LEVEL", "LOUD"),
        ("NEWSBOT_EMBED_BATCH_SIZE", "0"),
        ("NEWSBOT_COLLECTION", "x"),
    ],
)
def test_invalid_value_names_the_variable(workdir, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert repr(value) in message
    assert "\n" not in message


def test_invalid_value_in_dotenv_names_the_variable(workdir):
    (workdir / ".env").write_text("NEWSBOT_CHUNK_SIZE=abc\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="NEWSBOT_CHUNK_SIZE='abc'"):
        load_settings()


def test_invalid_bot_value_names_the_variable(workdir, monkeypatch):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_PORT", "abc")
    monkeypatch.setenv("NEWSBOT_TOP_K", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(BotSettings)
    assert "TELEGRAM_WEBHOOK_PORT='abc'" in str(caught.value)
    assert "NEWSBOT_TOP_K" in str(caught.value)


def test_overlap_must_be_less_than_half_the_chunk(workdir, monkeypatch):
    monkeypatch.setenv("NEWSBOT_CHUNK_SIZE", "64")
    monkeypatch.setenv("NEWSBOT_CHUNK_OVERLAP", "40")
    with pytest.raises(SettingsError, match="NEWSBOT_CHUNK_OVERLAP.*NEWSBOT_CHUNK_SIZE"):
        load_settings()


@pytest.mark.parametrize("variable", ["NEWSBOT_CORPUS_DIR", "NEWSBOT_STORE_DIR"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_folder_is_refused_not_taken_for_the_working_folder(
    workdir, monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"Invalid setting {variable}={value!r}: is empty")
    monkeypatch.setenv(variable, ".")  # said on purpose
    assert getattr(load_settings(), variable.removeprefix("NEWSBOT_").lower()) == Path(".")


def test_an_empty_folder_in_dotenv_is_refused(workdir):
    (workdir / ".env").write_text("NEWSBOT_STORE_DIR=\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="NEWSBOT_STORE_DIR='': is empty"):
        load_settings(BotSettings)


def test_a_dotenv_that_is_not_utf8_names_the_file_and_the_line(workdir):
    (workdir / ".env").write_bytes(b"NEWSBOT_TOP_K=3\n\nTELEGRAM_BOT_TOKEN=caf\xe9\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(BotSettings)
    message = str(caught.value)
    assert message == (
        f"The settings file {workdir / '.env'} is not UTF-8 text, line 3: "
        "save it as UTF-8 (or remove the line)."
    )
