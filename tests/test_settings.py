"""Settings come from NEWSBOT_* variables and `.env`; bad values are one readable error, and
every value is checked here, when it is read, never where it is used."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

from bot.settings import BotSettings, UserList
from index.errors import SettingsError
from index.settings import IndexSettings, load_settings

REPO = Path(__file__).resolve().parent.parent

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
    assert settings.embed_model == "bundled-int8"
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


def variables(settings_class) -> dict[str, str]:
    """field -> the variable pydantic reads it from (its validation alias)."""
    return {name: info.validation_alias for name, info in settings_class.model_fields.items()}


def test_each_variable_is_the_alias_pydantic_reads(workdir, monkeypatch):
    assert variables(IndexSettings)["chunk_size"] == "NEWSBOT_CHUNK_SIZE"
    assert variables(BotSettings)["top_k"] == "NEWSBOT_TOP_K"
    assert variables(BotSettings)["telegram_bot_token"] == "TELEGRAM_BOT_TOKEN"
    monkeypatch.setenv("telegram_webhook_port", "9000")  # names are read case-blind
    monkeypatch.setenv("newsbot_top_k", "4")
    settings = load_settings(BotSettings, max_quotes=2)  # and fields by name, in code
    assert (settings.telegram_webhook_port, settings.top_k, settings.max_quotes) == (9000, 4, 2)


def test_env_example_lists_every_setting():
    listed = {name for _, name, _ in example_assignments()}
    expected = set(variables(BotSettings).values())
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


def test_an_unreadable_dotenv_names_the_file(workdir):
    os.symlink("/proc/self/mem", workdir / ".env")  # reading it fails with EIO, even for root
    with pytest.raises(SettingsError) as caught:
        load_settings(BotSettings)
    assert str(caught.value) == (
        f"Cannot read the settings file {workdir / '.env'} (Input/output error): "
        "make it readable, or remove it."
    )


def test_a_value_given_in_code_is_named_by_its_variable(workdir):
    with pytest.raises(SettingsError, match=r"^Invalid setting TELEGRAM_WEBHOOK_PORT='x': "):
        load_settings(BotSettings, telegram_webhook_port="x")


# -- every check made when the settings are read ---------------------------------------------
LLM = {"NEWSBOT_LLM": "ollama", "NEWSBOT_LLM_MODEL": "m"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {**LLM, "NEWSBOT_LLM_BASE_URL": "127.0.0.1:11434"},
            "NEWSBOT_LLM_BASE_URL='127.0.0.1:11434': must start with http:// or https://, "
            "e.g. http://127.0.0.1:11434",
        ),
        (
            {**LLM, "NEWSBOT_LLM_BASE_URL": "ftp://llm.local/"},
            "NEWSBOT_LLM_BASE_URL='ftp://llm.local/': must start with http",
        ),
        (
            {**LLM, "NEWSBOT_LLM": "openai-like"},
            "NEWSBOT_LLM_BASE_URL='': NEWSBOT_LLM=openai-like needs the server's URL, "
            "e.g. http://127.0.0.1:8000/v1",
        ),
        (
            {**LLM, "NEWSBOT_LLM_BASE_URL": "http://127.0.0.1:11434", "NEWSBOT_LLM_MODEL": " "},
            "NEWSBOT_LLM_MODEL=' ': NEWSBOT_LLM=ollama needs the name of a model",
        ),
        ({"NEWSBOT_CHROMA_HOST": "chroma.local:8000"}, "NEWSBOT_CHROMA_HOST='chroma.local:8000'"),
        ({"NEWSBOT_CHROMA_HOST": "chroma.local/api"}, "NEWSBOT_CHROMA_HOST='chroma.local/api'"),
        ({"NEWSBOT_CHROMA_HOST": "tcp://chroma.local"}, "NEWSBOT_CHROMA_HOST='tcp://chroma"),
        ({"TELEGRAM_BASE_URL": "127.0.0.1:8081/bot"}, "TELEGRAM_BASE_URL='127.0.0.1:8081/bot'"),
        (
            {"TELEGRAM_WEBHOOK_URL": "http://bot.example.org/hook"},
            "TELEGRAM_WEBHOOK_URL='http://bot.example.org/hook': must be an https:// URL",
        ),
        ({"TELEGRAM_WEBHOOK_SECRET": "not valid!"}, "TELEGRAM_WEBHOOK_SECRET: use 1-256 letters"),
        ({"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "TELEGRAM_WEBHOOK_SECRET: use 1-256 letters"),
        (
            {"TELEGRAM_ALLOWED_USERS": "101, bob smith!"},
            "TELEGRAM_ALLOWED_USERS='101, bob smith!': 'smith!' is neither a numeric user id",
        ),
        ({"TELEGRAM_ADMIN_USERS": "@a"}, "TELEGRAM_ADMIN_USERS='@a': '@a' is neither"),
        ({"TELEGRAM_ADMIN_USERS": "-5"}, "TELEGRAM_ADMIN_USERS='-5': '-5' is neither"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(workdir, monkeypatch, values, expected):
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(BotSettings)
    message = str(caught.value)
    assert message.startswith(f"Invalid setting {expected}") and "\n" not in message
    assert "not valid!" not in message  # a secret is never shown


def test_good_values_are_read_into_what_the_code_uses(workdir, monkeypatch):
    for name, value in {
        **LLM,
        "NEWSBOT_LLM_BASE_URL": " http://127.0.0.1:11434/ ",
        "NEWSBOT_CHROMA_HOST": "https://chroma.example.org",
        "TELEGRAM_BASE_URL": "http://127.0.0.1:8081/bot",
        "TELEGRAM_WEBHOOK_URL": "https://bot.example.org/hook",
        "TELEGRAM_WEBHOOK_SECRET": " s3cret-Token_1 ",
        "TELEGRAM_ALLOWED_USERS": " 12345, @Alice;bob_99  777 ",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(BotSettings)
    assert settings.llm_base_url == "http://127.0.0.1:11434"
    assert settings.chroma_host == "https://chroma.example.org"
    assert settings.telegram_webhook_secret.get_secret_value() == "s3cret-Token_1"
    assert settings.telegram_allowed_users == UserList(
        frozenset({12345, 777}), frozenset({"alice", "bob_99"})
    )
    assert settings.telegram_admin_users == UserList() and not settings.telegram_admin_users
    monkeypatch.setenv("NEWSBOT_CHROMA_HOST", "[::1]")
    assert load_settings(BotSettings).chroma_host == "[::1]"


class User:
    def __init__(self, id: int, username: str | None = None):
        self.id, self.username = id, username


def test_a_user_list_holds_ids_and_usernames_case_blind():
    users = UserList.parse(" 12345, @Alice;bob_99  777 ")
    assert User(12345) in users and User(1, "ALICE") in users and User(2, "bob_99") in users
    assert User(3, "carol") not in users and User(4) not in users and None not in users
    assert not UserList.parse("") and not UserList()


def raised_settings_errors() -> set[str]:
    """module:function of every `raise SettingsError` in bot/ and index/."""
    found = set()
    for path in sorted([*REPO.glob("bot/**/*.py"), *REPO.glob("index/*.py")]):
        module = path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Raise)
                    and isinstance(node.exc, ast.Call)
                    and getattr(node.exc.func, "id", None) == "SettingsError"
                ):
                    found.add(f"{module}:{function.name}")
    return found


def test_code_that_uses_a_setting_does_not_check_it_again():
    # Left at use: the token, required by `newsbot telegram` alone, and make_llm's refusal
    # to make no LLM. Every other SettingsError comes from reading the settings.
    assert raised_settings_errors() == {
        "index.settings:load_settings",
        "bot.telegram.app:bot_token",
        "bot.answering.llm:make_llm",
    }
