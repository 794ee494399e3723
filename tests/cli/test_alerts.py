#!/usr/bin/env python3
"""cli.alerts: key-change and retained-secret alerts. A peer that comes back with another key is
reported (KEY_CHANGED ... accepted) while its earlier key was only seen, and refused (exit 1,
KEY_CHANGED ... refused) once a key of it was verified; a key known under another JID is reported
(KEY_OTHER_JID); a peer that lost the retained secret is reported (RETAINED_MISMATCH), and a peer
that kept it is not. Also key import."""

import json
import shutil

from clitest import ALICE, BOB, Test

t = Test("cli.alerts")
BOB_BARE = BOB.split("/")[0]


def trust(home, peer):
    r = t.run(home, "--json", "session", "show", peer)
    if not t.check_rc(r, 0, "session show --json"):
        return None
    return json.loads(r.out_text)["trust"]


def negotiate(a, b, label):
    ra, rb = t.negotiate(a, ALICE, b, BOB)
    return ra, rb


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
for h in (a, b):
    t.check_rc(t.run(h, "key", "generate"), 0, "key generate")

# First contact: no alert.
ra, rb = negotiate(a, b, "first")
t.check_rc(ra, 0, "first: negotiate")
t.check_rc(rb, 0, "first: respond")
for r in (ra, rb):
    t.check(not t.status_lines(r, "KEY_CHANGED") and not t.status_lines(r, "RETAINED_MISMATCH"),
            "first: no alert on first contact", r.status_text)

t.check(trust(b, ALICE) == "new", "first: trust level new", trust(b, ALICE))

# Same keys, retained secret kept: still no alert.
ra, rb = negotiate(a, b, "second")
t.check_rc(rb, 0, "second: respond")
t.check(trust(b, ALICE) == "continuity", "second: trust level continuity", trust(b, ALICE))
t.check(not t.status_lines(rb, "KEY_CHANGED") and not t.status_lines(rb, "RETAINED_MISMATCH"),
        "second: continuity, same key: no alert", rb.status_text)

# Alice switches to a new default key: Bob only ever saw the old one unverified, so he accepts
# with an alert.
t.check_rc(t.run(a, "key", "generate", "--default"), 0, "key generate --default")
ra, rb = negotiate(a, b, "new key")
t.check_rc(rb, 0, "new key: respond still succeeds")
kc = t.status_lines(rb, "KEY_CHANGED")
t.check(len(kc) == 1 and kc[0].endswith(" accepted") and kc[0].startswith("alice@example.org "),
        "new key: KEY_CHANGED ... accepted", rb.status_text)
t.check("warning" in rb.err_text and "another key" in rb.err_text,
        "new key: a warning on stderr", rb.err_text)

pk = t.status_lines(rb, "PEER_KEY")
alice_key2 = pk[0].split()[1] if len(pk) == 1 else ""

# Bob verifies the SAS of this session (which also marks Alice's current key verified).
sas = t.status_lines(rb, "SAS")
if t.check(len(sas) == 1, "new key: SAS line", rb.status_text):
    v = t.run(b, "peer", "verify", "alice@example.org", "--sas", sas[0].split()[-1])
    t.check_rc(v, 0, "peer verify --sas")
    t.check(trust(b, ALICE) == "key-verified", "verified: trust level key-verified",
            trust(b, ALICE))

# Alice changes key again: now a verified key exists, so Bob refuses.
t.check_rc(t.run(a, "key", "generate", "--default"), 0, "key generate --default (again)")
ra, rb = negotiate(a, b, "refused")
t.check_rc(rb, 1, "refused: respond exits 1 (cryptographic failure)")
kc = t.status_lines(rb, "KEY_CHANGED")
t.check(len(kc) == 1 and kc[0].endswith(" refused"), "refused: KEY_CHANGED ... refused",
        rb.status_text)
t.check_error_line(rb, "refused: one error line", contains="other than the verified one")
t.check(ra.rc != 0, "refused: the initiator fails too", ra.describe())

# Carol presents a key Bob knows as Alice's (a copy imported from Alice's home): Bob warns.
CAROL = "carol@example.net/phone"
c = t.init_home("C", CAROL)
exp = t.run(a, "key", "export", "--secret", alice_key2[:16])
t.check_rc(exp, 0, "key export --secret")
imp = t.run(c, "key", "import", "-", input=exp.out)
t.check_rc(imp, 0, "key import -")
t.check(imp.out_text.replace(" ", "").strip().lower() == alice_key2,
        "key import prints the fingerprint of the imported key", imp.out_text)
t.check_rc(t.run(c, "key", "import", "-", input=exp.out), 2, "importing the same key twice")
t.check_rc(t.run(c, "key", "import", "-", input=b"not a key"), 2, "importing garbage")
rc_, rb = t.negotiate(c, CAROL, b, BOB)
t.check_rc(rb, 0, "carol: respond")
ko = t.status_lines(rb, "KEY_OTHER_JID")
t.check(ko == ["carol@example.net %s alice@example.org" % alice_key2],
        "carol: KEY_OTHER_JID names both JIDs", rb.status_text)
t.check("we know as alice@example.org's" in rb.err_text, "carol: a warning on stderr",
        rb.err_text)

# Alice loses her home (and the retained secret) and starts over with no key: Bob holds a secret
# that no longer matches.
shutil.rmtree(a)
a = t.init_home("A", ALICE)
ra, rb = t.negotiate(a, ALICE, b, BOB, resp_args=("--identify", "none", "--require", "none"))
t.check_rc(ra, 0, "lost state: negotiate")
t.check_rc(rb, 0, "lost state: respond")
rm = t.status_lines(rb, "RETAINED_MISMATCH")
t.check(rm == [ALICE], "lost state: Bob reports RETAINED_MISMATCH", rb.status_text)
t.check(not t.status_lines(ra, "RETAINED_MISMATCH"),
        "lost state: Alice, who holds nothing, reports nothing", ra.status_text)
t.check("did not match" in rb.err_text, "lost state: a warning on stderr", rb.err_text)

t.finish()
