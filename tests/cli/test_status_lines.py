#!/usr/bin/env python3
"""cli.status-lines: status lines cannot be forged by peer data, and JIDs are prepared.

    test_status_lines.py ESESSION [ESESSION_COUNTERS]

- A man in the middle who puts spaces into the thread of an offer: the responder's ESTABLISHED
  (and every other) line keeps exactly its documented fields, the thread percent-encoded.
- A resource with a space (Resourceprep allows it) appears percent-encoded in ACCOUNT_CREATED,
  NEGOTIATION_STARTED and ESTABLISHED, each line with its documented number of fields.
- JIDs are prepared as RFC 7622 says: `init --jid Alice@Example.ORG/Pda` creates
  alice@example.org/Pda; `--account ALICE@example.org` selects it; `negotiate --to
  Bob@EXAMPLE.com/laptop` reaches bob@example.com/laptop, and `encrypt` of a stanza addressed to
  BOB@example.com/laptop uses that session. Invalid JIDs (a space in the localpart, an empty
  resource, an unbound '@') are refused with exit 2.
"""

import re

from clitest import EXIT_INPUT, EXIT_OK, Test

t = Test("cli.status-lines")

FIELDS = {"ACCOUNT_CREATED": 1, "NEGOTIATION_STARTED": 2, "NEGOTIATION_REQUEST": 1,
          "ESTABLISHED": 6, "TRUST": 2, "SAS": 2, "PEER_KEY": 3, "NEGOTIATION_FAILED": 2,
          "ERROR": None}


def check_lines(r, what):
    for line in r.status_text.splitlines():
        parts = line.split(" ")
        t.check(parts[0] == "[ESESSION:]" and all(parts), what + ": well-formed line", line)
        n = FIELDS.get(parts[1])
        if n is not None:
            t.check(len(parts) - 2 == n, what + ": %s has %d fields" % (parts[1], n), line)
        t.check(all(0x20 < ord(c) < 0x7f for c in line.replace(" ", "")),
                what + ": printable ASCII only", line)


def fields(r, keyword):
    return [l.split(" ")[2:] for l in r.status_text.splitlines()
            if l.startswith("[ESESSION:] " + keyword + " ")]


# --- JID preparation ---
a = t.path("A")
r = t.run(a, "init", "--jid", "Alice@Example.ORG/Pda", status=True)
t.check_rc(r, EXIT_OK, "init with a mixed-case JID")
t.check(fields(r, "ACCOUNT_CREATED") == [["alice@example.org/Pda"]],
        "the account is the prepared JID (resource case kept)", r.status_text)
r = t.run(a, "--account", "ALICE@example.org", "session", "list")
t.check_rc(r, EXIT_OK, "--account with another spelling of the bare JID")
b = t.path("B")
r = t.run(b, "init", "--jid", "bob@example.com/my laptop", status=True)
t.check_rc(r, EXIT_OK, "init with a space in the resource")
t.check(fields(r, "ACCOUNT_CREATED") == [["bob@example.com/my%20laptop"]],
        "ACCOUNT_CREATED percent-encodes the space", r.status_text)
check_lines(r, "init")
for bad in ("al ice@example.org/x", "alice@example.org/", "@example.org/x", "alice@/x"):
    r = t.run(t.path("bad"), "init", "--jid", bad)
    t.check_rc(r, EXIT_INPUT, "init --jid %r refused" % bad)

ra, rb = t.negotiate(a, "alice@example.org/Pda", b, "Bob@EXAMPLE.com/my laptop")
if t.check_rc(ra, EXIT_OK, "negotiate to Bob@EXAMPLE.com/my laptop") and \
        t.check_rc(rb, EXIT_OK, "respond"):
    check_lines(ra, "negotiate")
    check_lines(rb, "respond")
    est = fields(ra, "ESTABLISHED")
    t.check(len(est) == 1 and est[0][0] == "bob@example.com/my%20laptop",
            "ESTABLISHED names the prepared peer, encoded", ra.status_text)
    r = t.run(a, "encrypt", input=b"<message to='BOB@example.com/my laptop'><body>hi</body>"
              b"</message>\n")
    t.check_rc(r, EXIT_OK, "encrypt to another spelling of the peer's JID")
    d = t.run(b, "decrypt", input=r.out)
    t.check_rc(d, EXIT_OK, "decrypt it")
    t.check(b"hi" in d.out, "its body", d.out)

# --- a thread with spaces, put into the offer on the way ---
c = t.init_home("C", "carol@example.net/x")
d = t.init_home("D", "dave@example.net/y")


def spaced_thread(line):
    return re.sub(rb"<thread>([^<]*)</thread>", rb"<thread>\1 x y</thread>", line, count=1)


def unspaced_thread(line):
    return line.replace(b" x y</thread>", b"</thread>")


# The thread is rewritten both ways: Dave's session gets the spaced one, Carol's the original.
ra, rb, _ = t.relay_negotiation(c, "carol@example.net/x", d, "dave@example.net/y",
                                a_to_b=spaced_thread, b_to_a=unspaced_thread,
                                neg_args=("--timeout", "10"), resp_args=("--timeout", "10"))
check_lines(rb, "respond to a spaced thread")
check_lines(ra, "negotiate with a spaced thread")
est = fields(rb, "ESTABLISHED")
t.check(len(est) == 1 and est[0][1].endswith("%20x%20y"),
        "Dave's ESTABLISHED: the thread's spaces encoded, the fields in place", rb.status_text)
t.finish()
