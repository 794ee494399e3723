#!/usr/bin/env python3
"""cli.negotiate-order: a responder refuses what it could not store before it answers, never
after its last message has established the initiator. A man in the middle rewrites Alice's
messages to Bob (and Bob's answers back) so that Bob's session could not be stored: a thread
longer than 1024 bytes, a thread that names Bob's active session with Alice, a `from` JID
longer than a JID can be (a domain over 1023 bytes). Each time neither side may be established, Bob stores nothing, and
Bob's existing session stays as it was."""

import re

from clitest import ALICE, BOB, EXIT_INPUT, Test

t = Test("cli.negotiate-order")
GROUPS = ["--groups", "14"]
THREAD = re.compile(rb"<thread>([^<]*)</thread>")


def sessions(home):
    return [r[:4] + (bytes(r[4]),) for r in t.session_rows(home)]


def mitm(to_bob_thread=None, to_bob_from=None):
    """Transforms for relay_negotiation: Bob sees |to_bob_thread| / |to_bob_from| instead of
    Alice's thread / address; Alice sees her own thread in Bob's answers."""
    seen = {}

    def a_to_b(line):
        m = THREAD.search(line)
        if m:
            seen["thread"] = m.group(1)
            if to_bob_thread is not None:
                line = line.replace(m.group(0), b"<thread>" + to_bob_thread + b"</thread>")
        if to_bob_from is not None:
            line = line.replace(('from="%s"' % ALICE).encode(),
                                ('from="%s"' % to_bob_from).encode())
        return line

    def b_to_a(line):
        if to_bob_thread is not None and "thread" in seen:
            line = line.replace(b"<thread>" + to_bob_thread + b"</thread>",
                                b"<thread>" + seen["thread"] + b"</thread>")
        if to_bob_from is not None:
            line = line.replace(('to="%s"' % to_bob_from).encode(), ('to="%s"' % ALICE).encode())
        return line
    return a_to_b, b_to_a


def refused_before_answer(label, a, b, a_to_b, b_to_a, want_error):
    before_a, before_b = sessions(a), sessions(b)
    ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=GROUPS, resp_args=GROUPS,
                                    a_to_b=a_to_b, b_to_a=b_to_a, timeout=60)
    t.check(not t.status_lines(ra, "ESTABLISHED") and ra.rc != 0,
            "%s: the initiator is not established" % label, ra.describe() + "\n" + ra.status_text)
    t.check(not t.status_lines(rb, "ESTABLISHED"), "%s: the responder is not established" % label,
            rb.status_text)
    t.check_rc(rb, EXIT_INPUT, "%s: respond refuses the request" % label)
    t.check(("esession: error: " in rb.err_text) and want_error in rb.err_text,
            "%s: respond says why (%r)" % (label, want_error), rb.err_text)
    t.check(sessions(b) == before_b, "%s: the responder's sessions are as they were" % label,
            (before_b, sessions(b)))
    t.check(sessions(a) == before_a, "%s: the initiator's sessions are as they were" % label,
            (before_a, sessions(a)))


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)

# 1. A thread no store keeps.
a2b, b2a = mitm(to_bob_thread=b"f" * 1100)
refused_before_answer("thread of 1100 bytes", a, b, a2b, b2a, "thread")

# 2. A 'from' longer than a JID can be.
long_jid = "alice@" + "x" * 3100 + ".example.org/pda"
a2b, b2a = mitm(to_bob_from=long_jid)
refused_before_answer("from of %d bytes" % len(long_jid), a, b, a2b, b2a, "1023")

# 3. A thread that names Bob's active session with Alice: Bob cannot store a second session on
# it, so it must not answer either (and its session must stay).
ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=GROUPS, resp_args=GROUPS)
if t.check_rc(ra, 0, "negotiate") and t.check_rc(rb, 0, "respond"):
    first = t.status_lines(rb, "ESTABLISHED")[0].split()[1].encode()
    a2b, b2a = mitm(to_bob_thread=first)
    refused_before_answer("thread of the active session", a, b, a2b, b2a, "thread")
    t.check(t.session_status(b, ALICE) == "active", "Bob's first session is still active",
            t.session_status(b, ALICE))
    # ... and usable: Alice's next stanza in it decrypts.
    e = t.run(a, "encrypt", input=('<message to="%s"><body>still here</body></message>'
                                   % BOB).encode())
    d = t.run(b, "decrypt", input=e.out)
    t.check(e.rc == 0 and d.rc == 0 and b"still here" in d.out,
            "the first session still carries stanzas", d.describe())

# Undisturbed, the same homes negotiate.
ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=GROUPS, resp_args=GROUPS)
t.check_rc(ra, 0, "negotiate without a man in the middle")
t.check_rc(rb, 0, "respond without a man in the middle")
t.finish()
