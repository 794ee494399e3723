#!/usr/bin/env python3
"""cli.negotiation-content: a stanza riding, encrypted, on the last negotiation message
(XEP-0116 §4.5 and §4.6.4, formats §8). The sender attaches it with --attach FILE (the responder
in the four-message flow, the initiator in the three-message flow, --one-shot for one stanza and
no session after it); the receiver delivers it like decrypt (stdout, or --content-fd), only after
its session is stored, with a CONTENT status line. Misuse is refused before anything is sent."""

import os

from clitest import ALICE, BOB, Test

t = Test("cli.negotiation-content")


def write(name, text):
    p = t.path(name)
    with open(p, "w") as f:
        f.write(text)
    return p


def relay(a, b, neg_args=(), resp_args=()):
    """Negotiates through the relay; returns (ra, rb, lines written by A, lines written by B)."""
    seen = {"a": [], "b": []}

    def tap(who):
        def f(line):
            seen[who].append(line.decode())
            return line
        return f

    ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=neg_args, resp_args=resp_args,
                                    a_to_b=tap("a"), b_to_a=tap("b"))
    return ra, rb, seen["a"], seen["b"]


def keyed_homes(label):
    a, b = t.init_home(label + "-A", ALICE), t.init_home(label + "-B", BOB)
    for h in (a, b):
        t.check_rc(t.run(h, "key", "generate"), 0, "%s: key generate" % label)
    return a, b


secret = "the first words, with forward secrecy"
attach = write("attach.xml", '<message to="%s" type="chat"><body>%s</body></message>\n'
               % (BOB, secret))
attach_to_alice = write("attach-bob.xml",
                        '<message to="%s" type="chat"><body>%s</body></message>\n'
                        % (ALICE, secret))

# 1. Four-message flow: Bob attaches to message 4; Alice delivers it after her two messages.
a, b = t.init_home("four-A", ALICE), t.init_home("four-B", BOB)
ra, rb, out_a, out_b = relay(a, b, resp_args=["--attach", attach_to_alice])
t.check_rc(ra, 0, "four: negotiate")
t.check_rc(rb, 0, "four: respond --attach")
t.check(len(out_b) == 2 and secret not in out_b[1], "four: message 4 carries the stanza encrypted",
        out_b)
t.check(len(out_a) == 3 and ("<body>%s</body>" % secret) in out_a[2],
        "four: negotiate writes the stanza after its own messages", out_a)
t.check(t.status_lines(ra, "CONTENT") != [] and t.status_lines(rb, "ATTACHED") != [],
        "four: CONTENT and ATTACHED status lines", ra.status_text + rb.status_text)
t.check(t.session_status(a, BOB) == "active" and t.session_status(b, ALICE) == "active",
        "four: both sessions active afterwards")

# The session keeps working after the attached stanza: counters stayed in step.
e = t.run(b, "encrypt", input=('<message to="%s"><body>next</body></message>' % ALICE).encode())
d = t.run(a, "decrypt", input=e.out)
t.check(t.check_rc(d, 0, "four: the next stanza decrypts") and b"<body>next</body>" in d.out,
        "four: the next stanza arrives", d.describe())

# 2. --content-fd keeps the stanza apart from the wire (here: standard error).
a, b = t.init_home("fd-A", ALICE), t.init_home("fd-B", BOB)
ra, rb, out_a, _ = relay(a, b, neg_args=["--content-fd", "2"],
                         resp_args=["--attach", attach_to_alice])
t.check_rc(ra, 0, "fd: negotiate --content-fd 2")
t.check(len(out_a) == 2 and secret not in "".join(out_a), "fd: nothing but the wire on stdout",
        out_a)
t.check(("<body>%s</body>" % secret) in ra.err_text, "fd: the stanza went to descriptor 2",
        ra.err_text)

# 3. Three-message flow: Alice attaches to message 3; Bob delivers it.
a, b = keyed_homes("three")
ra, rb, out_a, out_b = relay(a, b, neg_args=["--flow", "3", "--attach", attach])
t.check_rc(ra, 0, "three: negotiate --flow 3 --attach")
t.check_rc(rb, 0, "three: respond")
t.check(len(out_a) == 2 and secret not in "".join(out_a), "three: message 3 carries it encrypted",
        out_a)
t.check(len(out_b) == 2 and ("<body>%s</body>" % secret) in out_b[1],
        "three: respond writes the stanza after message 2", out_b)
t.check(t.session_status(b, ALICE) == "active", "three: Bob's session is active")

# 4. --one-shot: one stanza, and neither side keeps a session.
a, b = keyed_homes("oneshot")
ra, rb, out_a, out_b = relay(a, b, neg_args=["--flow", "3", "--attach", attach, "--one-shot"])
t.check_rc(ra, 0, "one-shot: negotiate")
t.check_rc(rb, 0, "one-shot: respond")
t.check(len(out_b) == 2 and ("<body>%s</body>" % secret) in out_b[1],
        "one-shot: Bob delivers the stanza", out_b)
t.check(t.session_status(a, BOB) == "ended" and t.session_status(b, ALICE) == "ended",
        "one-shot: both sessions ended at once")
t.check(t.status_lines(rb, "TERMINATED") != [], "one-shot: Bob reports TERMINATED", rb.status_text)

# 5. Misuse, refused before anything is written.
h = t.init_home("misuse-A", ALICE)
for args, what in ((["--attach", attach], "--attach in the four-message flow"),
                   (["--flow", "3", "--one-shot"], "--one-shot without --attach"),
                   (["--one-shot", "--attach", attach], "--one-shot in the four-message flow"),
                   (["--flow", "3", "--attach", t.path("missing.xml")], "a missing file"),
                   (["--flow", "3", "--attach", write("two.xml", "<message/><message/>")],
                    "two stanzas"),
                   (["--flow", "3", "--attach", write("iq.xml", "<iq type='get' id='1'/>")],
                    "an <iq/>"),
                   (["--flow", "3", "--attach", write("other.xml",
                                                       "<message to='eve@example.net/x'/>")],
                    "a stanza for someone else")):
    r = t.run(h, "negotiate", "--to", BOB, *args)
    t.check(r.rc in (2, 3) and r.out == b"", "refused with nothing written: %s" % what,
            r.describe())
    t.check_error_line(r, what)

# A responder with something to attach refuses a three-message offer (it has no last message).
a, b = keyed_homes("resp3")
ra, rb, _, out_b = relay(a, b, neg_args=["--flow", "3"], resp_args=["--attach", attach_to_alice])
t.check(rb.rc != 0 and ra.rc != 0, "resp3: both sides fail", ra.describe() + rb.describe())
t.check(len(out_b) == 1 and "feature-not-implemented" in out_b[0],
        "resp3: Bob answers feature-not-implemented", out_b)

t.finish()
