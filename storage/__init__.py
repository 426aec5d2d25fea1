"""Persistence: ``storage.base`` is the interface, ``storage.factory`` opens the configured backend
(``storage.sqlite`` or ``storage.postgres``); only this package speaks SQL."""

from storage.base import DuplicateCardError, SchemaTooNewError, Storage

__all__ = ["DuplicateCardError", "SchemaTooNewError", "Storage"]
