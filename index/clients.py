"""Chroma clients: embedded `PersistentClient` by default, `HttpClient` when a host is set.

chromadb keeps one `System` per store folder and process (its `SharedSystemClient` registry):
every `PersistentClient` of a folder shares its vector index in memory, and so never sees what
another process -- a `newsbot index` run -- writes there. A reader that learns the index
changed (`ChunkStore.reopen`) calls `forget_shared_clients` and makes a new client, which loads
the folder from disk again.

Forgetting goes through chromadb's public `clear_system_cache()`, which forgets the System of
every folder, not only ours. Forgetting just ours would mean editing the registry's private
dict (`SharedSystemClient._identifier_to_system`), which chromadb may reshape in any release;
the wider reach costs nothing here:
- a client keeps the System it was made with (it holds its server API), so every open
  `ChunkStore` -- of this folder or another -- goes on working; only the next client made for
  another folder loads that folder from disk again, once;
- it also resets chromadb's reference counts, which only `Client.close()` reads. newsbot never
  closes a client: clients live as long as the process. (Closing is not the way to reload
  either: it stops the shared System only when the process's last client of the folder is
  closed, and then under any thread still reading through it.)

chromadb registers a System before it has started it, so a client made meanwhile in another
thread gets a half-made one; and forgetting while a client is being made would lose it.
Clients are made, and forgotten, one at a time (`_CLIENTS`).
"""

from __future__ import annotations

import threading

from index.failures import store_failure
from index.settings import IndexSettings

_CLIENTS = threading.RLock()


def make_client(settings: IndexSettings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        with _CLIENTS:
            if settings.chroma_host:
                return chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
            settings.chroma_dir.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(
                path=str(settings.chroma_dir), settings=chroma_settings
            )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise store_failure(exc, settings, "open") from exc


def forget_shared_clients() -> None:
    """Make the next embedded client of any folder load it from disk again."""
    from chromadb.api.shared_system_client import SharedSystemClient

    with _CLIENTS:
        SharedSystemClient.clear_system_cache()


def reload_client(settings: IndexSettings):
    """A new embedded client of the store folder that loads it from disk again."""
    with _CLIENTS:
        forget_shared_clients()
        return make_client(settings)
