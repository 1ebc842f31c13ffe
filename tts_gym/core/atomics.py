"""An atomic fetch-and-add for numba CPU code (numba has none built in).

Used by the compiled evaluation (:func:`tts_gym.policies.compiled.run_compiled`) for dynamic work
sharing: each worker thread makes **one** compiled call and claims chunks of episodes with
``fetch_add(counter, 0, 1)`` until none are left. Per-chunk calls from Python would instead pay
the call's argument unboxing (~10 us, with the GIL held) per chunk, which serialises small chunks
on machines with many cores.
"""
from __future__ import annotations

from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["fetch_add"]


@intrinsic
def fetch_add(typingctx, array, index, value):
    """``old = array[index]; array[index] += value`` as one sequentially consistent atomic
    operation; returns ``old``. ``array``: a C-contiguous 1-D int64 array; ``index``: an integer
    (no wraparound, no bounds check); ``value``: int64."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.int64
            and array.layout == "C" and isinstance(index, types.Integer)
            and value == types.int64):
        return None

    def codegen(context, builder, signature, args):
        arr_t, idx_t, _ = signature.args
        ary = context.make_array(arr_t)(context, builder, args[0])
        idx = context.cast(builder, args[1], idx_t, types.intp)
        ptr = cgutils.get_item_pointer(context, builder, arr_t, ary, [idx], wraparound=False)
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return types.int64(array, index, value), codegen
