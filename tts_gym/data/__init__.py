"""Replay stores: where they come from (the one resolver, :func:`resolve_stores`), the catalog of
known stores, AutoTTS JSON import, the HDF5 container, and the public-data fetcher.

``h5py`` is imported only when an HDF5 file is actually read or written.
"""
from __future__ import annotations

from tts_gym.data.autotts import (StoreFormatError, import_autotts, import_autotts_to_hdf5, read_autotts_json,
                                  validate_records)
from tts_gym.data.fetch import FetchError, fetch_autotts
from tts_gym.data.catalog import StoreNotFoundError
from tts_gym.data.hdf5 import (SCHEMA_VERSION, iter_stores, list_stores, load_stores, open_store, save_stores,
                               write_store_blocks)
from tts_gym.data.resolve import resolve_store, resolve_stores

__all__ = [
    "StoreFormatError", "StoreNotFoundError", "SCHEMA_VERSION",
    "import_autotts", "import_autotts_to_hdf5", "read_autotts_json", "validate_records",
    "open_store", "list_stores", "load_stores", "iter_stores", "save_stores", "write_store_blocks",
    "FetchError", "fetch_autotts", "resolve_stores", "resolve_store",
]
