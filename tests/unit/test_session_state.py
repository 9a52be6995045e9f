"""The services keep no PostgreSQL session state, so their pools hand connections back without asyncpg's
reset round trip (`caseway_shared.db._keep_session`): every setting is SET LOCAL (the transaction's), every
advisory lock the transaction's, and nothing LISTENs or declares a cursor that outlives a statement."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")])
SESSION_STATE = {
    # A statement that starts with SET (after a quote or a semicolon), not UPDATE's SET clause.
    "a session setting": re.compile(
        r"[\"';]\s*SET\s+(?!LOCAL\b)(SESSION\s+)?[a-z_.]+\s*(=|TO\b)", re.IGNORECASE
    ),
    "set_config for the session": re.compile(r"set_config\([^)]*,\s*false\s*\)", re.IGNORECASE),
    "a session advisory lock": re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.IGNORECASE),
    "LISTEN": re.compile(r"\bLISTEN\s+[a-z_]", re.IGNORECASE),
    "a cursor WITH HOLD": re.compile(r"\bWITH\s+HOLD\b", re.IGNORECASE),
}


@pytest.mark.parametrize("what", sorted(SESSION_STATE))
def test_no_service_code_leaves_session_state_on_a_pooled_connection(what):
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        for path in SOURCES
        for text in [path.read_text()]
        for match in SESSION_STATE[what].finditer(text)
        if not (what == "a session setting" and _in_update(text, match.start()))
    ]
    assert found == [], f"{what} would leak to the next user of the connection: {found}"


def _in_update(text: str, at: int) -> bool:
    """Whether the SET at `at` is an UPDATE's (or an upsert's DO UPDATE) clause: an UPDATE shortly before."""
    return "UPDATE" in text[max(0, at - 300) : at].upper()


def test_the_checks_catch_what_they_look_for():
    session = 'await c.execute("SET search_path TO router")'
    assert SESSION_STATE["a session setting"].search(session)
    assert not _in_update(session, session.index("SET"))
    assert not SESSION_STATE["a session setting"].search('"SET LOCAL search_path TO router"')
    update = 'await c.execute("UPDATE router.cases"\n " SET status = $2 WHERE case_id = $1")'
    assert _in_update(update, update.index("SET"))
    assert SESSION_STATE["a session advisory lock"].search("SELECT pg_advisory_lock($1)")
    assert not SESSION_STATE["a session advisory lock"].search("SELECT pg_try_advisory_xact_lock($1)")
