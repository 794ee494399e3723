#!/usr/bin/env python3
"""cli.retained-expiry: a retained secret older than the expiry (formats §9: 90 days by default,
--retain-days) is not used: the next session starts without continuity, as a first one does,
and raises no RETAINED_MISMATCH alarm. With a longer expiry, or none (--retain-days 0), the
same aged secret still gives continuity."""

import json
import os
import sqlite3

from clitest import ALICE, BOB, Test

t = Test("cli.retained-expiry")
DAY = 86400


def trust(home, peer):
    r = t.run(home, "--json", "session", "show", peer)
    return json.loads(r.out_text)["trust"] if t.check_rc(r, 0, "session show") else None


def age(home, days):
    con = sqlite3.connect(os.path.join(home, "esession.db"), timeout=30)
    with con:
        n = con.execute("UPDATE retained_secrets SET created = created - ?", (days * DAY,)).rowcount
    con.close()
    t.check(n >= 1, "aged %d retained secret(s) by %d days" % (n, days))


def negotiate(label, args=()):
    ra, rb = t.negotiate(a, ALICE, b, BOB, neg_args=list(args), resp_args=list(args))
    t.check_rc(ra, 0, label + ": negotiate")
    t.check_rc(rb, 0, label + ": respond")
    for r in (ra, rb):
        t.check(not t.status_lines(r, "RETAINED_MISMATCH"), label + ": no RETAINED_MISMATCH",
                r.status_text)
    return trust(a, BOB), trust(b, ALICE)


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
t.check(negotiate("first") == ("new", "new"), "first: no continuity yet")
t.check(negotiate("second") == ("continuity", "continuity"), "second: continuity")

for h in (a, b):
    age(h, 91)
t.check(negotiate("91 days later") == ("new", "new"),
        "91 days later: the expired secret is not used (default 90 days)")

for h in (a, b):
    age(h, 91)
t.check(negotiate("91 days, --retain-days 100", ["--retain-days", "100"]) ==
        ("continuity", "continuity"), "--retain-days 100: a 91-day-old secret is used")

for h in (a, b):
    age(h, 3650)
t.check(negotiate("ten years, --retain-days 0", ["--retain-days", "0"]) ==
        ("continuity", "continuity"), "--retain-days 0: no limit")

r = t.run(a, "negotiate", "--to", BOB, "--retain-days", "-1")
t.check(r.rc == 2 and "retain-days" in r.err_text, "--retain-days -1 is a usage error",
        (r.rc, r.err_text))
t.finish()
