"""``tts-gym data fetch``: download the public AutoTTS replay stores and convert them to HDF5.

The 12 stores (4 models x 3 benchmarks) are fetched from the AutoTTS repository into the user cache
(``$TTS_GYM_CACHE``, else ``$XDG_CACHE_HOME/tts_gym``, else ``~/.cache/tts_gym``) under
``autotts/<model>/<benchmark>.json``, checked against the SHA-256 manifest below, validated by the
importer, and written to one HDF5 file (by default ``<cache>/autotts.h5``). Files already in the
cache with the right checksum are not downloaded again.

Offline, the first connection attempt fails within ``timeout`` seconds and a :class:`FetchError`
says how to use local copies instead (``tts-gym data import DIR -o OUT.h5`` or ``TTS_GYM_DATA=DIR``).
"""
from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tts_gym.data.catalog import BENCHMARKS, MODELS

AUTOTTS_BASE_URL = ("https://raw.githubusercontent.com/zhengkid/AutoTTS/main/"
                    "efficient_reasoning_controller/test_environment")
ENV_BASE_URL = "TTS_GYM_FETCH_URL"

# SHA-256 of the published store files (the copies this project was validated against).
AUTOTTS_SHA256 = {
    "Qwen3-0.6B/aime24.json": "6b4297405b494c84afb05b337af315c617513eb2580ed327ca7040b760988a7d",
    "Qwen3-0.6B/aime25.json": "33f65695ecc78fb777f53bead2128ba1249772b3608c6a22bd4e674488d453e0",
    "Qwen3-0.6B/hmmt25.json": "7e7c574aaedcd05b36b801c11e3bdd7e2cfd3b7309a2376967cc1e8bc01ebebc",
    "Qwen3-1.7B/aime24.json": "5d6c9a63e26c7cf60181c53b67adc7017db146bf2ff1e3b9784673cb97313ad1",
    "Qwen3-1.7B/aime25.json": "77bfb8e8589d0c0da3ccb6d5852c37bf23273e047664a5086d492896a5ae2496",
    "Qwen3-1.7B/hmmt25.json": "87d158ecdc3551e375891d19917ce02f8fdcadd778afe99ad2ae179f872fb298",
    "Qwen3-4B/aime24.json": "d99ce8711c60605b7555a7fc6e66cc5ae0abe7ce6b36bf4e712802d26aa7ffdd",
    "Qwen3-4B/aime25.json": "977f56022b0cd225bd0233aff1f7b39740c45ec79693475ada8c766ee4097a3f",
    "Qwen3-4B/hmmt25.json": "4bc0b51765a0fc5a3d9a462b1ff317b70577d478c5cb5e06f20fe9d5b73b4b1c",
    "Qwen3-8B/aime24.json": "be725bdacc64712088d5c947b9b869471ad659c8465c3e5b6e9ff5191bfd0128",
    "Qwen3-8B/aime25.json": "969bba7bb0276f66d421d069e078e20a9b3ff4a59977393a2733a97ca6e4566c",
    "Qwen3-8B/hmmt25.json": "561efa74e3dd4ca79b67463c7c5d449762824b4534bdc7267b19d9af29d2a9a9",
}

OFFLINE_HINT = ("to use local copies of the AutoTTS stores (a directory laid out <model>/<benchmark>.json), "
                "run `tts-gym data import DIR -o OUT.h5`, or set TTS_GYM_DATA=DIR (or TTS_GYM_DATA=OUT.h5)")


class FetchError(OSError):
    """Downloading failed (offline, HTTP error, checksum mismatch); the message says what to do."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve_host(url: str, timeout: float) -> None:
    """Fail fast when the host name does not resolve (DNS lookups ignore urllib's timeout)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            result.append(None)
        except OSError as exc:
            result.append(exc)

    t = threading.Thread(target=lookup, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        raise FetchError(f"cannot reach {parts.hostname}: name lookup timed out after {timeout:g}s "
                         f"(offline?); {OFFLINE_HINT}")
    if result[0] is not None:
        raise FetchError(f"cannot reach {parts.hostname} ({result[0]}); offline? {OFFLINE_HINT}")


def _download(url: str, dest: Path, timeout: float, progress: bool, label: str) -> None:
    """Stream ``url`` to ``dest`` (through ``dest.part``, renamed when complete)."""
    part = dest.with_name(dest.name + ".part")
    try:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https/file URL
        except urllib.error.HTTPError as exc:
            raise FetchError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            host = urllib.parse.urlsplit(url).netloc or url
            raise FetchError(f"cannot reach {host} ({reason}); offline? {OFFLINE_HINT}") from None
        with resp:
            total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            bar = None
            if progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=label, file=sys.stderr, leave=False)
            try:
                with open(part, "wb") as out:
                    while True:
                        try:
                            block = resp.read(1 << 16)
                        except (socket.timeout, TimeoutError, OSError) as exc:
                            raise FetchError(f"download of {url} interrupted ({exc}); try again, or "
                                             f"{OFFLINE_HINT}") from None
                        if not block:
                            break
                        out.write(block)
                        if bar is not None:
                            bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()


def fetch_autotts(output: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None,
                  base_url: str | None = None, models: tuple[str, ...] = MODELS,
                  benchmarks: tuple[str, ...] = BENCHMARKS, timeout: float = 5.0,
                  progress: bool = True, verify_checksums: bool = True, force: bool = False) -> Path:
    """Download the AutoTTS stores, verify and validate them, and write one HDF5 file.

    ``output`` defaults to ``<cache>/autotts.h5``; ``base_url`` to ``$TTS_GYM_FETCH_URL`` or the
    AutoTTS repository (a ``file://`` URL of a local mirror works too). ``timeout`` bounds each
    connection attempt and each read. ``force`` downloads again even when the cache is valid.
    Checksums are checked for the files of the manifest when ``verify_checksums``.
    Returns the HDF5 path. Raises :class:`FetchError` or ``StoreFormatError``.
    """
    from tts_gym.data.resolve import cache_dir as default_cache_dir
    from tts_gym.data.resolve import fetched_store_path
    from tts_gym.data.autotts import import_autotts
    from tts_gym.data.hdf5 import save_stores

    base = (base_url or os.environ.get(ENV_BASE_URL) or AUTOTTS_BASE_URL).rstrip("/")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = cache / "autotts"
    out_path = Path(output) if output is not None else (
        fetched_store_path() if cache_dir is None else cache / "autotts.h5")
    todo = []
    files = []
    for m in models:
        for b in benchmarks:
            rel = f"{m}/{b}.json"
            dest = root / m / f"{b}.json"
            files.append(dest)
            expected = AUTOTTS_SHA256.get(rel) if verify_checksums else None
            if not force and dest.is_file() and (expected is None or _sha256(dest) == expected):
                continue
            todo.append((rel, dest, expected))
    if todo:
        _resolve_host(base, timeout)
    for i, (rel, dest, expected) in enumerate(todo, 1):
        dest.parent.mkdir(parents=True, exist_ok=True)
        url = f"{base}/{urllib.parse.quote(rel)}"
        _download(url, dest, timeout, progress, f"[{i}/{len(todo)}] {rel}")
        if expected is not None:
            got = _sha256(dest)
            if got != expected:
                dest.unlink()
                raise FetchError(f"checksum mismatch for {rel}: got sha256 {got[:16]}..., expected "
                                 f"{expected[:16]}... (upstream changed? rerun with --no-verify to accept it)")
    stores = import_autotts(files)  # full validation
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_stores(out_path, stores)
    return out_path
