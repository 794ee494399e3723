#!/usr/bin/env python3
"""cli.exit-status: every documented exit status is produced, each failure with one
'esession: error: ...' line on stderr:
  0 ok, 1 cryptographic failure, 2 bad input or usage, 3 local state or I/O,
  4 refused or ended by the peer."""

import os

from clitest import (ALICE, BOB, EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, EXIT_REFUSED, EXIT_STATE,
                     Test)

t = Test("cli.exit-status")
seen = set()


def expect(r, want, what, contains=None):
    if t.check_rc(r, want, what):
        seen.add(want)
    if want != EXIT_OK:
        t.check_error_line(r, what, contains)


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
ra, rb = t.negotiate(a, ALICE, b, BOB)
expect(ra, EXIT_OK, "negotiate")
expect(rb, EXIT_OK, "respond")
msg = ('<message to="%s" type="chat"><body>exit statuses</body></message>' % BOB).encode()
e = t.run(a, "encrypt", input=msg)
expect(e, EXIT_OK, "encrypt")
expect(t.run(a, "session", "list"), EXIT_OK, "session list")
expect(t.run(None, "--version"), EXIT_OK, "--version")

# 1: a cryptographic failure (a MAC that does not verify).
i = e.out.index(b"<mac>") + len(b"<mac>")
tampered = e.out[:i] + (b"B" if e.out[i:i + 1] == b"A" else b"A") + e.out[i + 1:]
r = t.run(b, "decrypt", input=tampered)
expect(r, EXIT_CRYPTO, "decrypt of a stanza with a wrong MAC", "MAC")
t.check(r.out == b"", "no output for the refused stanza", r.out_text)

# 2: bad input or usage.
expect(t.run(a, "--no-such-option", "session", "list"), EXIT_INPUT, "unknown global option")
expect(t.run(a, "encrypt", "--bogus"), EXIT_INPUT, "unknown command option")
expect(t.run(a), EXIT_INPUT, "no command")
expect(t.run(a, "negotiate"), EXIT_INPUT, "negotiate without --to")
expect(t.run(a, "rekey", "--to", "not a jid"), EXIT_INPUT, "rekey --to with a bad JID")
expect(t.run(a, "encrypt", input=b"<message to='%s'><body>unclosed</message>" % BOB.encode()),
       EXIT_INPUT, "encrypt of malformed XML")
expect(t.run(a, "encrypt", input=b'<message to="carol@example.net/x"><body>hi</body></message>'),
       EXIT_INPUT, "encrypt for a peer without a session", "carol@example.net/x")

# 3: local state or I/O.
missing = t.path("no-such-home")
r = t.run(missing, "session", "list")
expect(r, EXIT_STATE, "session list with a missing home", missing)
t.check(not os.path.exists(missing), "a missing home is not created by session list")
r = t.run(missing, "encrypt", input=msg)
expect(r, EXIT_STATE, "encrypt with a missing home")
t.check(r.out == b"", "nothing on stdout", r.out_text)
os.makedirs(t.path("empty-home"), mode=0o700)
expect(t.run(t.path("empty-home"), "encrypt", input=msg), EXIT_STATE,
       "encrypt with a home that has no account")

# 4: refused by the peer: the responder has no acceptable MODP group in common.
ra, rb = t.negotiate(t.init_home("C", ALICE), ALICE, t.init_home("D", BOB), BOB,
                     neg_args=["--groups", "16"], resp_args=["--groups", "14"])
expect(ra, EXIT_REFUSED, "negotiate refused by the responder", "refused")
expect(rb, EXIT_REFUSED, "respond with no acceptable option")
t.check(t.status_lines(ra, "NEGOTIATION_FAILED") != [], "NEGOTIATION_FAILED status line",
        ra.status_text)

t.check(seen == {0, 1, 2, 3, 4}, "exit statuses 0-4 all produced", sorted(seen))
t.finish()
