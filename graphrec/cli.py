"""What every ``python -m graphrec.<verb>`` entry point shares."""

from __future__ import annotations

__all__ = ["BadInput"]


class BadInput(Exception):
    """Input the user can fix; the entry point prints it as one line and exits with status 2."""
