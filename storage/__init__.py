"""Persistence: ``storage.base`` is the interface, ``storage.sqlite`` the only code speaking SQL."""

from storage.base import DuplicateCardError, SchemaTooNewError, Storage

__all__ = ["DuplicateCardError", "SchemaTooNewError", "Storage"]
