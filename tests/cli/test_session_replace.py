#!/usr/bin/env python3
"""cli.session-replace: reading never writes, and at most one session per pair of full JIDs is
active.
- The read-only commands (session list/show, peer list/show, key list/show/fingerprint, with
  and without --json) leave the database exactly as it was, `updated` times included.
- A second negotiation between the same full JIDs ends the first session on both sides, in the
  same transaction: `session list` shows it ended, its stored state holds no key any more
  (none of its former keys is left in the database file either), and the new one is the only
  active session.
- encrypt then uses the new session, even after `session show` of the old one; a stanza of
  the old session is refused (exit 4) without touching the new one, which keeps working."""

import json
import os
import re
import sqlite3
import time

from clitest import (ALICE, BOB, EXIT_REFUSED, Test, secret_values, session_secrets,
                     stored_session)

t = Test("cli.session-replace")


def dump(home):
    """Every row of every table, read-only."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(home, "esession.db"), uri=True,
                          timeout=30)
    try:
        out = {}
        for (name,) in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                   "ORDER BY name"):
            out[name] = con.execute("SELECT * FROM \"%s\" ORDER BY rowid" % name).fetchall()
        return out
    finally:
        con.close()


def rows(home):
    return {r[0]: r for r in t.session_rows(home)}


def listed(home):
    r = t.run(home, "--json", "session", "list")
    t.check_rc(r, 0, "session list --json")
    return json.loads(r.out_text or "[]")


def thread_of(line):
    m = re.search(rb"<thread>([^<]*)</thread>", line)
    return m.group(1).decode() if m else None


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
for h in (a, b):
    t.check_rc(t.run(h, "key", "generate"), 0, "key generate")
ra, rb = t.negotiate(a, ALICE, b, BOB)
if not (t.check_rc(ra, 0, "first negotiate") and t.check_rc(rb, 0, "first respond")):
    t.finish()
first = t.status_lines(ra, "ESTABLISHED")[0].split()[1]

# --- reading never writes ---
time.sleep(1.1)  # so that a write would show in an 'updated' time (seconds)
for home, peer in ((a, BOB), (b, ALICE)):
    before = dump(home)
    sid = str(listed(home)[0]["id"])
    for args in (["session", "list"], ["--json", "session", "list"], ["session", "show", sid],
                 ["session", "show", peer], ["--json", "session", "show", peer],
                 ["peer", "list"], ["--json", "peer", "list"], ["peer", "show", peer.split("/")[0]],
                 ["--json", "peer", "show", peer.split("/")[0]], ["key", "list"],
                 ["key", "show"], ["key", "fingerprint"], ["--json", "key", "list"]):
        r = t.run(home, *args)
        t.check_rc(r, 0, " ".join(args))
        after = dump(home)
        t.check(after == before, "%s changes nothing in the database" % " ".join(args),
                "\n".join("%s: %r\n  -> %r" % (k, before[k], after.get(k)) for k in before
                          if before[k] != after.get(k)))
        before = after

# A stanza of the first session, held back until after the second negotiation.
held = t.run(a, "encrypt", input=('<message to="%s"><body>sent in the first session</body>'
                                  '</message>' % BOB).encode())
t.check_rc(held, 0, "encrypt in the first session")
old_secrets = {}
for home in (a, b):
    (sid, _, thread, status, state), = [r for r in t.session_rows(home)]
    old_secrets[home] = (sid, secret_values(session_secrets(stored_session(state)["session"])))
    t.check(len(old_secrets[home][1]) >= 4, "the first session's state holds its keys",
            len(old_secrets[home][1]))

# --- a second negotiation replaces the first on both sides ---
ra, rb = t.negotiate(a, ALICE, b, BOB)
if not (t.check_rc(ra, 0, "second negotiate") and t.check_rc(rb, 0, "second respond")):
    t.finish()
second = t.status_lines(ra, "ESTABLISHED")[0].split()[1]
t.check(second != first, "the second session has its own thread", (first, second))
for home, r, peer in ((a, ra, BOB), (b, rb, ALICE)):
    who = "initiator" if home == a else "responder"
    t.check(t.status_lines(r, "REPLACED") == ["%s %s" % (peer, first)],
            "%s: REPLACED names the first session" % who, r.status_text)
    sessions = listed(home)
    by_thread = {s["thread"]: s for s in sessions}
    t.check(len(sessions) == 2 and by_thread.get(first, {}).get("status") == "ended" and
            by_thread.get(second, {}).get("status") == "active",
            "%s: session list shows the first session ended, the second active" % who, sessions)
    t.check(sum(1 for s in sessions if s["status"] == "active" and s["peer"] == peer) == 1,
            "%s: one active session with the peer" % who, sessions)
    sid, secrets = old_secrets[home]
    state = rows(home)[sid][4]
    ss = stored_session(state)
    sec = session_secrets(ss["session"])
    t.check(sec["state"] == 2 and not secret_values(sec) and not sec["recv"] and
            sec["send_cipher"] == b"" and sec["send_mac"] == b"",
            "%s: the ended session's state holds no key" % who, sec)
    t.check(not [s for s in secrets if s in state],
            "%s: none of the first session's keys is left in its state" % who)
    t.check(ss["sas"] != b"", "%s: the ended session keeps its SAS for session show" % who)
    r = t.run(home, "session", "show", str(sid))
    t.check(r.rc == 0 and "ended" in r.out_text, "%s: session show of the ended session" % who,
            r.describe())
    # Not in the file either, once the WAL is checkpointed into it (secure_delete).
    con = sqlite3.connect(os.path.join(home, "esession.db"), timeout=30)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    raw = open(os.path.join(home, "esession.db"), "rb").read()
    t.check(not [s for s in secrets if s in raw],
            "%s: none of the first session's keys is left in the database file" % who)

# --- encrypt uses the new session, whatever was read or shown ---
time.sleep(1.1)
t.check_rc(t.run(a, "session", "show", str(old_secrets[a][0])), 0, "show the old session")
e = t.run(a, "encrypt", input=('<message to="%s"><body>after the second negotiation</body>'
                               '</message>' % BOB).encode())
t.check_rc(e, 0, "encrypt after the second negotiation")
t.check(thread_of(e.out) == second, "encrypt uses the second session's thread",
        (thread_of(e.out), first, second))
p = t.run(a, "encrypt", input=('<presence to="%s"><status>here</status></presence>'
                               % BOB).encode())
t.check_rc(p, 0, "encrypt a presence after the second negotiation")

# The held stanza of the first session is refused and touches nothing.
before = dump(b)
d = t.run(b, "--status-fd", "1", "decrypt", input=held.out)
t.check(d.rc == EXIT_REFUSED and b"sent in the first session" not in d.out,
        "a stanza of the replaced session is refused (exit 4)", d.describe())
t.check("ERROR terminated " + ALICE in d.out_text, "the refusal has an ERROR status line",
        d.out_text)
t.check_error_line(d, "decrypt of a replaced session's stanza", "has ended")
t.check(dump(b) == before, "the refused stanza changes nothing in Bob's database")

# The new session carries stanzas both ways.
d = t.run(b, "decrypt", input=e.out + p.out)
t.check(d.rc == 0 and b"after the second negotiation" in d.out and b"<status>here</status>"
        in d.out, "Bob decrypts the new session's stanzas", d.describe())
e = t.run(b, "encrypt", input=('<message to="%s"><body>reply</body></message>'
                               % ALICE).encode())
t.check(e.rc == 0 and thread_of(e.out) == second, "Bob answers in the second session",
        e.describe())
d = t.run(a, "decrypt", input=e.out)
t.check(d.rc == 0 and b"<body>reply</body>" in d.out, "Alice decrypts Bob's answer",
        d.describe())
t.finish()
