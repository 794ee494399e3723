#!/usr/bin/env python3
"""cli.negotiate: two esession processes negotiate over fifos, in the 4-message flow (SAS) and
the 3-message flow (signing keys: Ed25519, RSA); both sides agree on the session (same thread,
suite, SAS; each side saw the other's key) and a stanza goes through in each direction."""

import re

from clitest import ALICE, BOB, Test

t = Test("cli.negotiate")


def fingerprint(home):
    r = t.run(home, "key", "fingerprint")
    t.check_rc(r, 0, "key fingerprint")
    return r.out_text.replace(" ", "").strip().lower()


def roundtrip(a, b, label):
    for (src, dst, sender, peer) in ((a, b, ALICE, BOB), (b, a, BOB, ALICE)):
        body = "hello from %s (%s)" % (sender, label)
        st = '<message to="%s" type="chat"><body>%s</body></message>' % (peer, body)
        e = t.run(src, "encrypt", input=st.encode())
        if not t.check_rc(e, 0, "%s: encrypt %s -> %s" % (label, sender, peer)):
            continue
        t.check(body.encode() not in e.out, "%s: the body is not in clear on the wire" % label,
                e.out_text)
        d = t.run(dst, "decrypt", input=e.out)
        if t.check_rc(d, 0, "%s: decrypt %s -> %s" % (label, sender, peer)):
            t.check(("<body>%s</body>" % body) in d.out_text,
                    "%s: decrypted body arrives" % label, d.out_text)


def scenario(label, flow, key_type=None, extra=()):
    t.log("%s: %d-message flow%s" % (label, flow, ", %s keys" % key_type if key_type else ""))
    a = t.init_home(label + "-A", ALICE)
    b = t.init_home(label + "-B", BOB)
    fa = fb = None
    if key_type:
        for h in (a, b):
            r = t.run(h, "--status-fd", "1", "key", "generate", "--type", key_type)
            t.check_rc(r, 0, "%s: key generate --type %s" % (label, key_type))
            t.check(("KEY_CREATED %s " % key_type) in r.out_text,
                    "%s: KEY_CREATED status line names %s" % (label, key_type), r.out_text)
        fa, fb = fingerprint(a), fingerprint(b)
    args = ["--flow", str(flow)] + list(extra)
    ra, rb = t.negotiate(a, ALICE, b, BOB, neg_args=args)
    t.check_rc(ra, 0, "%s: negotiate (initiator)" % label)
    t.check_rc(rb, 0, "%s: respond (responder)" % label)
    ea, eb = t.status_lines(ra, "ESTABLISHED"), t.status_lines(rb, "ESTABLISHED")
    if not t.check(len(ea) == 1 and len(eb) == 1, "%s: one ESTABLISHED line on each side" % label,
                   ra.status_text + "\n---\n" + rb.status_text):
        return
    pa, pb = ea[0].split(), eb[0].split()
    t.check(pa[0] == BOB and pb[0] == ALICE, "%s: ESTABLISHED names the peer" % label, (pa, pb))
    t.check(pa[1:] == pb[1:], "%s: both sides agree on thread and suite" % label, (pa, pb))
    t.check(pa[2] == str(flow), "%s: the %d-message flow was used" % (label, flow), pa)
    sa, sb = t.status_lines(ra, "SAS"), t.status_lines(rb, "SAS")
    if flow == 4:
        ok = t.check(len(sa) == 1 and len(sb) == 1, "%s: each side prints one SAS line" % label,
                     ra.status_text + "\n---\n" + rb.status_text)
        if ok:
            ja, sas_a = sa[0].split()
            jb, sas_b = sb[0].split()
            t.check(ja == BOB and jb == ALICE, "%s: SAS lines name the peer" % label, (sa, sb))
            t.check(re.fullmatch(r"[0-9a-z]{5}", sas_a) is not None,
                    "%s: SAS is 5 characters" % label, sas_a)
            t.check(sas_a == sas_b, "%s: both sides print the same SAS" % label, (sas_a, sas_b))
            t.log("%s: SAS %s on both sides" % (label, sas_a))
    else:
        # The three-message flow has no SAS; if a side printed one, both must agree.
        t.check(len(sa) == len(sb) and [x.split()[-1] for x in sa] == [x.split()[-1] for x in sb],
                "%s: SAS lines (if any) agree" % label, (sa, sb))
    if key_type:
        ka, kb = t.status_lines(ra, "PEER_KEY"), t.status_lines(rb, "PEER_KEY")
        t.check(len(ka) == 1 and ka[0].split()[:2] == [BOB.split("/")[0], fb],
                "%s: Alice saw Bob's key %s" % (label, fb), ka)
        t.check(len(kb) == 1 and kb[0].split()[:2] == [ALICE.split("/")[0], fa],
                "%s: Bob saw Alice's key %s" % (label, fa), kb)
    for h, peer in ((a, BOB), (b, ALICE)):
        t.check(t.session_status(h, peer) == "active", "%s: session with %s is active" % (
            label, peer))
    roundtrip(a, b, label)


scenario("four", 4)
scenario("four-keys", 4, "ed25519")
scenario("three-ed25519", 3, "ed25519")
scenario("three-rsa", 3, "rsa")
scenario("four-xep0217", 4, extra=["--xep0217"])
t.finish()
