"""Checked by pyright in test_core_typing.py; lines marked ``# error`` must be reported.

Workflows whose steps do not fit are type errors: each step of a chain must accept what the
step before returns (its first argument, which the chain fills in), and a chord's body must
accept the list of its header's results.
"""

from __future__ import annotations

from typing import Any, NoReturn

from taskq import TaskQ
from taskq.canvas import Signature, chain, chord, group
from taskq.result import AsyncResult

app = TaskQ("typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def upper(text: str) -> str:
    return text.upper()


@app.task
def total(values: list[int]) -> int:
    return sum(values)


@app.task
def join(values: list[str]) -> str:
    return "".join(values)


@app.task
def many(*values: int) -> int:
    return sum(values)


@app.task(bind=True)
def bound(self: Any, text: str, times: int) -> str:
    return text * times


# Partial application: what s() leaves out comes from the step before.
complete: Signature[int] = add.s(1, 2)
partial: Signature[int, int] = add.s(1)
by_keyword: Signature[int, int] = add.s(y=2)
ignores_parent: Signature[str, object] = upper.si("x")
bound_partial: Signature[str, str] = bound.s(3)

# Chains that fit, with their result types.
steps: AsyncResult[int] = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()
piped: AsyncResult[str] = (add.s(1, 2) | add.si(0, 0) | upper.si("done")).delay()
fed: AsyncResult[int] = chain(upper.s("a"), upper.s(), add.si(1, 1), many.s(2)).delay()
collected: AsyncResult[int] = chord([add.s(1, 1), add.s(2, 2)], total.s()).apply_async()
as_pipe: AsyncResult[int] = (group(add.s(1, 1), add.s(2, 2)) | total.s()).apply_async()
in_chain = chain(add.s(1, 2), group(add.s(1), add.s(2)), total.s())
anything = chain(
    add.s(1, 2), add.s(3), add.s(4), add.s(5), add.s(6), add.s(7), add.s(8), add.s(9), add.s(10)
)

# Steps that do not fit.
chain(add.s(1, 2), upper.s())  # error
chain(add.s(1, 2), add.s(3, 4))  # error
chain(upper.s("a"), add.s(1))  # error
chain(add.s(1, 2), add.s(3), upper.s())  # error
mismatch = add.s(1, 2) | upper.s()  # error
later = add.s(1, 2) | add.s(3) | upper.s()  # error
chord([add.s(1, 1), add.s(2, 2)], join.s())  # error
wrong_pipe = group(upper.s("a"), upper.s("b")) | total.s()  # error
add.s("x")  # error
upper.si(1)  # error
wrong_result: AsyncResult[str] = chain(add.s(1, 2), add.s(3)).apply_async()  # error


@app.task
def errback(request: Any, exc: BaseException, traceback: str | None) -> None: ...


# A signature may leave out up to three leading arguments (an errback's request, exc and
# traceback); one that leaves out more than one does not fit a chain, which passes one.
errback_sig: Signature[None] = errback.s()
add.s(1, 2).link_error(errback.s())
no_args: Signature[int, NoReturn] = add.s()
chain(add.s(1, 2), add.s())  # error
