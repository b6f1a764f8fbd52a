"""The type variables the canvas is generic over.

A :class:`~taskq.canvas.Signature` is ``Signature[R, A]``: the task returns ``R``, and accepts
``A`` from the step before it (the parent's result, which a chain prepends to its arguments).
``A`` is contravariant: a step that accepts ``object`` (an immutable ``si()`` signature) fits
after anything, and one that accepts nothing (``NoReturn``: every argument already given) fits
after nothing. Both have a default (``Any``) for type checkers, so ``Signature[int]`` and a bare
``Signature`` are valid annotations. Defaults need ``typing_extensions`` before Python 3.13,
which taskq does not require at run time: the checker sees the declarations with defaults, the
interpreter plain ones (run-time subscripts such as ``Signature[int]`` go through ``dict``'s
``__class_getitem__``, which does not count parameters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["R_co", "Arg_contra", "T", "R", "A1", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8"]

if TYPE_CHECKING:
    from typing_extensions import TypeVar as DefaultTypeVar

    #: What a signature's task returns.
    R_co = DefaultTypeVar("R_co", covariant=True, default=Any)
    #: What a signature accepts from the step before it.
    Arg_contra = DefaultTypeVar("Arg_contra", contravariant=True, default=Any)
    #: A group member's result (a group returns a list of them).
    T = DefaultTypeVar("T", default=Any)
else:
    R_co = TypeVar("R_co", covariant=True)
    Arg_contra = TypeVar("Arg_contra", contravariant=True)
    T = TypeVar("T")

# Method-scoped variables for the steps of chains and the parts of chords.
R = TypeVar("R")
A1 = TypeVar("A1")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")
R5 = TypeVar("R5")
R6 = TypeVar("R6")
R7 = TypeVar("R7")
R8 = TypeVar("R8")
