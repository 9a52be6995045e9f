"""Errors of the local stack.

``StackError`` is the one failure the command line reports as a plain message (no traceback): the
stack could not be brought to the state asked for, and the message says why and what to do.
"""

from __future__ import annotations


class StackError(Exception):
    """The local stack cannot reach the state asked for; the message is meant for a person."""
