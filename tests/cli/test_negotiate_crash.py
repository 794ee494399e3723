#!/usr/bin/env python3
"""cli.negotiate-crash: a negotiation's last message leaves only once its sender's session is
durable. `respond` (four-message flow) is killed with SIGKILL at random points while it runs,
200 times by default (ESESSION_NEGOTIATE_CRASH_RUNS overrides): after every kill, if `negotiate`
(Alice) reported ESTABLISHED, Bob's database holds the session on that thread. Then the same
for `negotiate` in the three-message flow, where Alice sends the last message (a quarter as
many kills): if Bob reported ESTABLISHED, Alice's database holds the session.

Kill points: half of the runs after a random delay from the start (spread over the time a
negotiation takes), half right after the victim wrote one of its stanzas (a random one, after
0-2 ms) and before that stanza is passed on: the moment just after the last message is written
is where a responder that writes before it commits loses its session."""

import os
import time

from clitest import ALICE, BOB, Test

RUNS = int(os.environ.get("ESESSION_NEGOTIATE_CRASH_RUNS", "200"))
# Smaller, faster groups keep the campaign short; the order of commit and write is the same.
GROUPS = ["--groups", "14"]

t = Test("cli.negotiate-crash")


def threads_in(home):
    return {r[0]: r[1] for r in t.query(home, "SELECT thread, status FROM sessions")}


def integrity(home):
    return t.query(home, "PRAGMA integrity_check")


def campaign(label, flow, victim, runs, extra=()):
    """Kills |victim| ("b": respond, "a": negotiate) |runs| times; the survivor must never be
    established while the victim has no session."""
    a = t.init_home(label + "-A", ALICE)
    b = t.init_home(label + "-B", BOB)
    if flow == 3:
        for h in (a, b):
            t.check_rc(t.run(h, "key", "generate", "--type", "ed25519"), 0, "key generate")
    args = ["--flow", str(flow)] + GROUPS + list(extra)
    # Calibration: how long an undisturbed negotiation takes, and how many stanzas the victim
    # writes.
    t0 = time.monotonic()
    ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=args, resp_args=GROUPS)
    took = time.monotonic() - t0
    if not (t.check_rc(ra, 0, label + ": undisturbed negotiate") and
            t.check_rc(rb, 0, label + ": undisturbed respond")):
        return
    writes = 2  # respond: messages 2 and 4; negotiate (3-message): messages 1 and 3
    t.log("%s: a negotiation takes %.0f ms; killing %s %d times" % (
        label, took * 1000, "respond" if victim == "b" else "negotiate", runs))
    victim_home, survivor = (b, "a") if victim == "b" else (a, "b")
    kills = survivor_established = after_last = run = 0
    # Until |runs| kills landed while the victim ran (a kill timed after the end misses).
    while kills < runs and run < 3 * runs:
        run += 1
        if t.rng.random() < 0.5:
            kill = (victim, None, t.rng.uniform(0, took * 1.2))
        else:
            n = t.rng.randrange(writes)
            kill = (victim, n, t.rng.choice([0, 0, t.rng.uniform(0, 0.002)]))
        ra, rb, killed = t.relay_negotiation(a, ALICE, b, BOB, neg_args=args, resp_args=GROUPS,
                                             kill=kill, timeout=60)
        kills += killed
        after_last += killed and kill[1] == writes - 1
        rs = ra if survivor == "a" else rb
        est = t.status_lines(rs, "ESTABLISHED")
        if est:
            survivor_established += 1
            thread = est[0].split()[1]
            have = threads_in(victim_home)
            if not t.check(thread in have,
                           "%s run %d: the %s is established on thread %s, so the %s must "
                           "have that session (kill %r)" % (
                               label, run, "initiator" if survivor == "a" else "responder",
                               thread, "responder" if victim == "b" else "initiator", kill),
                           "victim's sessions: %r\nsurvivor's status:\n%s" % (
                               have, rs.status_text)):
                if t.failures > 5:
                    break
    t.log("%s: %d runs, %d killed while running (%d right after the last message), "
          "the survivor established %d times" % (label, run, kills, after_last,
                                                 survivor_established))
    t.check(kills >= runs, "%s: %d kills mid-negotiation" % (label, runs), kills)
    for h in (a, b):
        ic = integrity(h)
        t.check(ic == [("ok",)], "%s: PRAGMA integrity_check" % label, ic)
    # Both homes still negotiate.
    ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=args, resp_args=GROUPS)
    t.check_rc(ra, 0, label + ": negotiate after the campaign")
    t.check_rc(rb, 0, label + ": respond after the campaign")


campaign("four", 4, "b", RUNS)
campaign("three", 3, "a", max(RUNS // 4, 1))
t.finish()
