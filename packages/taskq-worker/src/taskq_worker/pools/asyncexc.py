"""Making another thread raise: how the threads and solo pools enforce limits and terminate.

Python cannot kill a thread, but CPython can schedule an exception in one
(``PyThreadState_SetAsyncExc``): the thread raises it the next time it runs Python bytecode.
The caveat every user of these pools must know: a thread blocked in C code (one long
``time.sleep``, a socket read, a C extension's loop) raises only when it returns to Python.
"""

from __future__ import annotations

import ctypes

__all__ = ["clear_pending", "raise_in_thread"]

# Our own prototypes of the C function rather than setting ``argtypes`` on the shared
# ``ctypes.pythonapi`` attribute, which other libraries may have set differently. PYFUNCTYPE keeps
# the GIL held during the call, as the C API requires.
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def raise_in_thread(ident: int, exc_type: type[BaseException]) -> bool:
    """Make thread ``ident`` raise ``exc_type()`` soon; False if no such thread is running.

    Only a class can be scheduled (CPython instantiates it without arguments). A later call
    replaces an exception still pending.
    """
    return bool(_set_async_exc(ident, exc_type))


def clear_pending(ident: int) -> None:
    """Drop an exception scheduled for thread ``ident`` that it has not raised yet."""
    _clear_async_exc(ident, None)
