#!/usr/bin/env python3
"""cli.mixed-keys: parties whose keys are of two types (Ed25519 and RSA). One sign_algs value
serves both parties (formats §6), so the responder, whose key cannot make what the offer allows,
identifies by the SAS alone. It must not do so silently: KEY_UNUSED on its status descriptor, a
warning on stderr, and `session show` saying that our key did not identify us and why. Parties
with keys of one type identify with them and report nothing. The three-message flow, where the
responder must sign, refuses with a clear error instead."""

import json

from clitest import ALICE, BOB, Test

t = Test("cli.mixed-keys")


def home(name, jid, key_type):
    h = t.init_home(name, jid)
    args = ["key", "generate", "--type", key_type] + (["--bits", "2048"] if key_type == "rsa" else [])
    t.check_rc(t.run(h, *args), 0, "%s: key generate --type %s" % (name, key_type))
    return h


def show(h, peer):
    r = t.run(h, "--json", "session", "show", peer)
    return json.loads(r.out_text) if t.check_rc(r, 0, "session show --json " + peer) else {}


a = home("A", ALICE, "ed25519")
b = home("B", BOB, "rsa")

for label, (ini, ini_jid, res, res_jid, ini_type, res_type) in (
        ("ed25519 offers to rsa", (a, ALICE, b, BOB, "ed25519", "rsa")),
        ("rsa offers to ed25519", (b, BOB, a, ALICE, "rsa", "ed25519"))):
    ri, rr = t.negotiate(ini, ini_jid, res, res_jid)
    t.check_rc(ri, 0, label + ": negotiate")
    t.check_rc(rr, 0, label + ": respond")
    ku = t.status_lines(rr, "KEY_UNUSED")
    t.check(ku == ["%s %s %s" % (ini_jid, ini_type, res_type)],
            label + ": the responder reports KEY_UNUSED jid offered-types our-type", rr.status_text)
    t.check("warning" in rr.err_text and "can authenticate us only by the SAS" in rr.err_text,
            label + ": the responder warns on stderr", rr.err_text)
    t.check(not t.status_lines(ri, "KEY_UNUSED"), label + ": the initiator's key was used",
            ri.status_text)
    t.check(len(t.status_lines(rr, "PEER_KEY")) == 1 and not t.status_lines(ri, "PEER_KEY"),
            label + ": the initiator identified by its key, the responder by the SAS",
            (ri.status_text, rr.status_text))
    si, sr = show(ini, res_jid), show(res, ini_jid)
    t.check(si.get("own_identification") == "key" and si.get("own_key_unused") == "" and
            si.get("peer_identification") == "none",
            label + ": session show (initiator): we used our key, the peer none", si)
    t.check(sr.get("own_identification") == "none" and
            sr.get("own_key_unused") == "the offer allows only %s signatures, and our key is %s"
            % (ini_type, res_type),
            label + ": session show (responder): our key unused, and why", sr)
    r = t.run(res, "session", "show", ini_jid)
    t.check(("our key:   not used: the offer allows only %s signatures" % ini_type) in r.out_text,
            label + ": session show says it in words", r.out_text)

# Keys of one type: both identify with them, and nothing is reported.
c = home("C", BOB, "ed25519")
ra, rc = t.negotiate(a, ALICE, c, BOB)
t.check_rc(rc, 0, "same type: respond")
t.check(not t.status_lines(rc, "KEY_UNUSED") and "warning" not in rc.err_text,
        "same type: no KEY_UNUSED, no warning", (rc.status_text, rc.err_text))
sc = show(c, ALICE)
t.check(sc.get("own_identification") == "key" and sc.get("peer_identification") == "key",
        "same type: both identified by key", sc)
r = t.run(c, "session", "show", ALICE)
t.check("our key:   identified us (key)" in r.out_text, "same type: session show says so",
        r.out_text)

# The three-message flow: the responder must sign, so mixed types refuse, with a clear error.
ra, rb = t.negotiate(a, ALICE, b, BOB, neg_args=["--flow", "3"])
t.check(ra.rc != 0 and rb.rc != 0, "three-message, mixed types: refused on both sides",
        (ra.rc, rb.rc))
t.check("rsa" in rb.err_text or "signature" in rb.err_text,
        "three-message, mixed types: the responder says why", rb.err_text)
t.finish()
