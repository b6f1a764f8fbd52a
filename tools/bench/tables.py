"""The side-by-side benchmarks' tables: cells for figures that may be missing, and the layout."""

from __future__ import annotations


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fixed(value: float | None) -> str:
    """Milliseconds or seconds, to two decimals."""
    return "-" if value is None else f"{value:.2f}"


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    """How many times ``numerator`` the ``denominator`` is; "-" when either is missing."""
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a text table: the first column left-aligned, figures right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines: list[str] = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    lines.insert(1, "-" * len(lines[0]))
    return lines
