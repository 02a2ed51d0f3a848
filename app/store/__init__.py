"""The workstation's local database: encrypted (SQLCipher), migrated at open, holding the agent's
leads, history, cached datasets and the outbox of actions not yet accepted by the server."""

from app.store.db import (
    LocalStore,
    database_key,
    default_store_path,
    open_local_store,
    open_user_store,
    session_only_store,
)
from app.store.errors import (
    DatabaseTooNewError,
    StoreBugError,
    StoreEnvironmentError,
    StoreError,
    WrongKeyError,
)
from app.store.outbox import Outbox, OutboxItem, OutboxKind, OutboxState
from app.store.repository import (
    AgentInfo,
    AppliedChanges,
    BlockKind,
    CachedDocument,
    ChangeFeedError,
    Conflict,
    ContactBlock,
    Dataset,
    Repository,
    StoredLead,
    SyncState,
)

__all__ = [
    "AgentInfo",
    "AppliedChanges",
    "BlockKind",
    "CachedDocument",
    "ChangeFeedError",
    "Conflict",
    "ContactBlock",
    "DatabaseTooNewError",
    "Dataset",
    "LocalStore",
    "Outbox",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "Repository",
    "StoreBugError",
    "StoreEnvironmentError",
    "StoreError",
    "StoredLead",
    "SyncState",
    "WrongKeyError",
    "database_key",
    "default_store_path",
    "open_local_store",
    "open_user_store",
    "session_only_store",
]
