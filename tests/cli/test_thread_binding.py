#!/usr/bin/env python3
"""cli.thread-binding: a stanza's <thread/> names one session, whose peer must be the stanza's
sender. Three parties: Alice and Mallory each have a session with Bob.
- Mallory's stanza (from her own session with Bob) carrying Alice's thread is refused (exit 2),
  and Alice's session with Bob stays usable;
- a stanza with an unknown thread, or addressed to another JID than Bob's, is refused (exit 2)
  and the genuine stanza still decrypts afterwards;
- a stanza whose thread names an ended session is refused (exit 4) and the active session is
  not destroyed;
- no refusal changes anything in Bob's database;
- encrypt refuses a thread that names none of the peer's sessions, or an ended one;
- respond refuses a negotiation request on another peer's thread."""

import re

from clitest import ALICE, BOB, EXIT_INPUT, EXIT_REFUSED, Test

MALLORY = "mallory@example.net/evil"
THREAD = re.compile(rb"<thread>([^<]*)</thread>")

t = Test("cli.thread-binding")


def dump(home):
    return t.query(home, "SELECT * FROM sessions ORDER BY id")


def thread_of(line):
    m = THREAD.search(line)
    return m.group(1).decode() if m else None


def with_thread(stanza, thread):
    return THREAD.sub(b"<thread>" + thread.encode() + b"</thread>", stanza, count=1)


def msg(src, to, body):
    r = t.run(src, "encrypt", input=('<message to="%s" type="chat"><body>%s</body></message>'
                                     % (to, body)).encode())
    t.check_rc(r, 0, "encrypt %r" % body)
    return r.out


def refused(label, stanza, want_rc, want_error, want_status):
    before = dump(b)
    d = t.run(b, "--status-fd", "1", "decrypt", input=stanza)
    t.check_rc(d, want_rc, label)
    t.check(b"<body>" not in d.out, "%s: nothing decrypted is written" % label, d.out_text)
    t.check_error_line(d, label, want_error)
    t.check(("ERROR %s " % want_status) in d.out_text, "%s: ERROR %s status line" % (
        label, want_status), d.out_text)
    t.check(dump(b) == before, "%s: Bob's sessions are untouched" % label)


def delivered(label, stanza, body):
    d = t.run(b, "decrypt", input=stanza)
    t.check(d.rc == 0 and ("<body>%s</body>" % body).encode() in d.out, label, d.describe())
    return d


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
m = t.init_home("M", MALLORY)
for src, jid in ((a, ALICE), (m, MALLORY)):
    r1, r2 = t.negotiate(src, jid, b, BOB)
    if not (t.check_rc(r1, 0, "negotiate %s" % jid) and t.check_rc(r2, 0, "respond to %s" % jid)):
        t.finish()

# Alice's stanzas must reach Bob in the order she encrypted them (counters are implicit), so
# each one is delivered before the next is made.
first = msg(a, BOB, "alice 1")
alice_thread = thread_of(first)
delivered("Alice's first stanza reaches Bob", first, "alice 1")

# 1. Mallory, in her own session with Bob, uses Alice's thread.
mal = msg(m, BOB, "from mallory")
t.check(thread_of(mal) not in (None, alice_thread), "Mallory's session has its own thread",
        thread_of(mal))
refused("Mallory's stanza on Alice's thread", with_thread(mal, alice_thread), EXIT_INPUT,
        "another peer", "no-session")
delivered("Alice's session stays usable after Mallory's attempt", msg(a, BOB, "alice 2"),
          "alice 2")
# Mallory's stanza on her own thread is still hers to send.
delivered("Mallory's stanza on her own thread decrypts", mal, "from mallory")

# 2. An unknown thread: refused; the same stanza on its real thread then decrypts (its counter
# was not consumed, the session not destroyed).
s3 = msg(a, BOB, "alice 3")
refused("a stanza on an unknown thread", with_thread(s3, "0123456789abcdef" * 2), EXIT_INPUT,
        "no session with", "no-session")
delivered("the stanza on its own thread decrypts after the refusal", s3, "alice 3")

# 3. Addressed to someone else.
s4 = msg(a, BOB, "alice 4")
refused("a stanza addressed to another JID",
        s4.replace(('to="%s"' % BOB).encode(), b'to="bob@example.com/phone"'), EXIT_INPUT,
        "addressed to", "no-session")
delivered("the stanza addressed to Bob decrypts after the refusal", s4, "alice 4")

# 4. encrypt keeps a thread to its own session.
r = t.run(a, "encrypt", input=('<message to="%s"><thread>%s</thread><body>x</body></message>'
                               % (BOB, thread_of(mal))).encode())
t.check_rc(r, EXIT_INPUT, "encrypt refuses a thread that names no session with the peer")
t.check(r.out == b"", "encrypt writes nothing for a foreign thread", r.out_text)
t.check_error_line(r, "encrypt with a foreign thread", "no session with")

# 5. A thread of an ended session: Alice ends her session and negotiates a new one; a stanza
# of the old session that arrives again (a replay of her first one) is refused, and the new
# session is not destroyed.
late = first
term = t.run(a, "terminate", "--to", BOB)
t.check_rc(term, 0, "terminate")
ack = t.run(b, "decrypt", input=term.out)
t.check_rc(ack, 0, "Bob receives the termination")
r1, r2 = t.negotiate(a, ALICE, b, BOB)
if not (t.check_rc(r1, 0, "negotiate again") and t.check_rc(r2, 0, "respond again")):
    t.finish()
t.check(thread_of(late) == alice_thread, "the late stanza names the old session")
refused("a stanza of the ended session", late, EXIT_REFUSED, "has ended", "terminated")
r = t.run(a, "encrypt", input=('<message to="%s"><thread>%s</thread><body>x</body></message>'
                               % (BOB, alice_thread)).encode())
t.check_rc(r, EXIT_REFUSED, "encrypt refuses the thread of the ended session")
new = msg(a, BOB, "in the new session")
t.check(thread_of(new) not in (None, alice_thread), "the new session has a new thread")
delivered("the new session still decrypts after the late stanza", new, "in the new session")

# 6. A negotiation request on another peer's thread is refused before it is answered.
taken = thread_of(new)
seen = {}


def a_to_b(line):
    mm = THREAD.search(line)
    if mm:
        seen["t"] = mm.group(1)
        line = line.replace(mm.group(0), b"<thread>" + taken.encode() + b"</thread>")
    return line


def b_to_a(line):
    return line.replace(b"<thread>" + taken.encode() + b"</thread>",
                        b"<thread>" + seen.get("t", b"") + b"</thread>")


before = dump(b)
rm, rb, _ = t.relay_negotiation(m, MALLORY, b, BOB, neg_args=["--groups", "14"],
                                resp_args=["--groups", "14"], a_to_b=a_to_b, b_to_a=b_to_a)
t.check_rc(rb, EXIT_INPUT, "respond refuses a request on Alice's thread from Mallory")
t.check(not t.status_lines(rm, "ESTABLISHED") and not t.status_lines(rb, "ESTABLISHED"),
        "nobody is established on another peer's thread", rm.status_text + rb.status_text)
t.check(dump(b) == before, "the refused request changes nothing in Bob's database")
t.finish()
