"""Load time of the 12 AutoTTS replay stores: from HDF5 (``load_stores``) vs from JSON (the importer).

The JSON path is what a user without the HDF5 file pays: read + parse + validate + intern
(``tts_gym.data.import_autotts``). The HDF5 path reads the already-interned tensors and answer tables
(``tts_gym.data.load_stores``, with and without the consistency check ``ReplayStore.validate``).
Both are timed per store and in total; the best of ``--repeat`` runs is reported (CPU time too, as
the machine may be shared), side by side with the ratio JSON / HDF5.

    python benchmarks/store_load.py                      # uses ../shared/autotts-replay
    python benchmarks/store_load.py --data DIR --repeat 7
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tts_gym.data import import_autotts, load_stores, open_store, save_stores
from tts_gym.data.autotts import find_autotts_files, infer_names, read_autotts_json

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "autotts-replay"


def best_of(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_GYM_DATA", DEFAULT_DATA)))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compression", default="gzip", choices=("gzip", "lzf", "none"))
    args = ap.parse_args()

    files = find_autotts_files(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "stores.h5"
        stores = import_autotts(args.data)
        save_stores(h5, stores, compression=args.compression)
        json_mb = sum(f.stat().st_size for f in files) / 2**20
        print(f"{len(stores)} stores from {args.data}: JSON {json_mb:.1f} MiB, HDF5 ({args.compression}) "
              f"{h5.stat().st_size / 2**20:.1f} MiB; best of {args.repeat} runs\n")

        print(f"{'':<20} {'--------- wall ms ---------':>29}   {'---------- CPU ms ---------':>29}")
        print(f"{'store':<20} {'JSON':>9} {'HDF5':>9} {'ratio':>9}   {'JSON':>9} {'HDF5':>9} {'ratio':>9}")
        for f in files:
            model, bench = infer_names(f)
            tj, cj = best_of(lambda: read_autotts_json(f), args.repeat)
            th, ch = best_of(lambda: open_store(h5, model=model, benchmark=bench), args.repeat)
            print(f"{model + '/' + bench:<20} {tj * 1e3:9.1f} {th * 1e3:9.1f} {tj / th:8.1f}x   "
                  f"{cj * 1e3:9.1f} {ch * 1e3:9.1f} {cj / ch:8.1f}x")

        tj, cj = best_of(lambda: import_autotts(args.data), args.repeat)
        th, ch = best_of(lambda: load_stores(h5), args.repeat)
        tn, cn = best_of(lambda: load_stores(h5, validate=False), args.repeat)
        print(f"\n{'all ' + str(len(stores)) + ' stores':<36} {'wall s':>8} {'CPU s':>8} {'JSON/this wall':>15} "
              f"{'JSON/this CPU':>14}")
        print(f"{'JSON (parse + validate + intern)':<36} {tj:8.3f} {cj:8.3f} {1.0:14.1f}x {1.0:13.1f}x")
        print(f"{'HDF5 load_stores (validated)':<36} {th:8.3f} {ch:8.3f} {tj / th:14.1f}x {cj / ch:13.1f}x")
        print(f"{'HDF5 load_stores(validate=False)':<36} {tn:8.3f} {cn:8.3f} {tj / tn:14.1f}x {cj / cn:13.1f}x")


if __name__ == "__main__":
    main()
