"""Storage plumbing shared by the services' store adapters (PostgreSQL: pools and schema migrations)."""

from jobrelay.storage.postgres import Migration, MigrationError, migrate, open_pool

__all__ = ["Migration", "MigrationError", "migrate", "open_pool"]
