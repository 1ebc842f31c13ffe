"""Replay-store input/output: AutoTTS JSON import, the HDF5 container, and the public-data fetcher.

``h5py`` is imported only when an HDF5 file is actually read or written.
"""
from __future__ import annotations

from tts_gym.data.autotts import (StoreFormatError, import_autotts, import_autotts_to_hdf5, read_autotts_json,
                                  validate_records)
from tts_gym.data.fetch import FetchError, fetch_autotts
from tts_gym.data.hdf5 import (SCHEMA_VERSION, StoreNotFoundError, iter_stores, list_stores, load_stores,
                               open_store, save_stores, write_store_blocks)

__all__ = [
    "StoreFormatError", "StoreNotFoundError", "SCHEMA_VERSION",
    "import_autotts", "import_autotts_to_hdf5", "read_autotts_json", "validate_records",
    "open_store", "list_stores", "load_stores", "iter_stores", "save_stores", "write_store_blocks",
    "FetchError", "fetch_autotts",
]
