"""The user errors of indexing and localization, and the lazy imports of FAISS and rasterio."""

import importlib


class LocalizationError(ValueError):
    """Input that indexing or localization cannot use; the message names the file and the problem."""


class MapError(LocalizationError):
    """A map that cannot be used: unreadable, truncated, without geo-reference, or too small."""


class IndexMismatchError(LocalizationError):
    """An index built with another model or window than the one asked for."""


class DamagedIndexError(LocalizationError):
    """An index file that is truncated or corrupt (a chunk, ``search.faiss``); the message says how to repair it."""


class QueryError(LocalizationError):
    """A query image or ground-truth file that cannot be used."""


def import_optional(module):
    """``importlib.import_module(module)`` for ``faiss`` or ``rasterio``, with an install hint.

    Raises:
        LocalizationError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise LocalizationError(
            f"{module} is not installed ({error}); install the extra: pip install -e '.[localize]'"
        ) from None
