#!/usr/bin/env python3
"""cli.rekey-terminate: `esession rekey` fed to the peer's decrypt re-keys the session (stanzas
keep flowing both ways, also after crossing re-keys); `esession terminate` fed to the peer's
decrypt yields an acknowledgement (on --reply-fd, or stdout by default) which, fed back to the
initiator's decrypt, ends the session; encrypting afterwards fails with exit status 4."""

import os
import subprocess

from clitest import ALICE, BOB, EXIT_REFUSED, Test

t = Test("cli.rekey-terminate")


def new_session(label):
    return t.session_pair(label)[:2]


def send(src, dst, sender, peer, body, label, want_dec=0):
    e = t.run(src, "encrypt", input=('<message to="%s" type="chat"><body>%s</body></message>'
                                     % (peer, body)).encode())
    if not t.check_rc(e, 0, "%s: encrypt %s" % (label, body)):
        return None
    d = t.run(dst, "decrypt", input=e.out, status=True)
    if t.check_rc(d, want_dec, "%s: decrypt %s" % (label, body)) and want_dec == 0:
        t.check(("<body>%s</body>" % body) in d.out_text, "%s: %s arrives" % (label, body),
                d.out_text)
    return d


def both_ways(a, b, label, n=3):
    for i in range(n):
        send(a, b, ALICE, BOB, "%s-ab-%d" % (label, i), label)
        send(b, a, BOB, ALICE, "%s-ba-%d" % (label, i), label)


# --- re-key ---
a, b = new_session("rekey")
both_ways(a, b, "before")
for round_, (src, dst, sender, peer) in enumerate(((a, b, ALICE, BOB), (b, a, BOB, ALICE),
                                                   (a, b, ALICE, BOB))):
    label = "rekey#%d by %s" % (round_, sender)
    r = t.run(src, "rekey", "--to", peer, status=True)
    if not t.check_rc(r, 0, label + ": rekey"):
        continue
    t.check(len(r.out_text.splitlines()) == 1 and "<key>" in r.out_text,
            label + ": one stanza carrying <key/> on stdout", r.out_text)
    t.check(t.status_lines(r, "REKEY_SENT") != [], label + ": REKEY_SENT status", r.status_text)
    d = t.run(dst, "decrypt", input=r.out, status=True)
    t.check_rc(d, 0, label + ": peer decrypts the re-key stanza")
    t.check(len(t.status_lines(d, "REKEYED")) == 1, label + ": REKEYED status at the peer",
            d.status_text)
    # The peer answers first (its stanza acknowledges the new key with <new/>), then both ways.
    send(dst, src, peer, sender, "ack-%d" % round_, label)
    both_ways(a, b, label)

# Crossing re-keys: both sides re-key before seeing the other's <key/>.
ka = t.run(a, "rekey", "--to", BOB)
kb = t.run(b, "rekey", "--to", ALICE)
t.check_rc(ka, 0, "crossing: rekey by Alice")
t.check_rc(kb, 0, "crossing: rekey by Bob")
t.check_rc(t.run(b, "decrypt", input=ka.out), 0, "crossing: Bob decrypts Alice's <key/>")
t.check_rc(t.run(a, "decrypt", input=kb.out), 0, "crossing: Alice decrypts Bob's <key/>")
both_ways(a, b, "crossing")

# A re-key stanza replayed after it was accepted is refused (the session ends at the receiver).
r = t.run(a, "rekey", "--to", BOB)
t.check_rc(r, 0, "rekey before replay")
t.check_rc(t.run(b, "decrypt", input=r.out), 0, "first delivery of the re-key")
rep = t.run(b, "decrypt", input=r.out)
t.check_rc(rep, 1, "replayed re-key stanza is refused as a cryptographic failure")
t.check(rep.out == b"", "replayed re-key: nothing on stdout", rep.out_text)

# --- termination, acknowledgement on --reply-fd ---
for mode in ("reply-fd", "stdout"):
    a, b = new_session("term-" + mode)
    both_ways(a, b, mode, 2)
    term = t.run(a, "terminate", "--to", BOB, status=True)
    if not t.check_rc(term, 0, mode + ": terminate"):
        continue
    t.check(len(term.out_text.splitlines()) == 1, mode + ": one termination stanza",
            term.out_text)
    t.check(t.status_lines(term, "TERMINATING") != [], mode + ": TERMINATING status",
            term.status_text)
    t.check(t.session_status(a, BOB) == "closing", mode + ": initiator's session is closing",
            t.session_status(a, BOB))
    # The initiator cannot send any more while closing.
    late = t.run(a, "encrypt", input=('<message to="%s"><body>late</body></message>'
                                      % BOB).encode())
    t.check_rc(late, EXIT_REFUSED, mode + ": encrypt while closing")
    t.check(late.out == b"", mode + ": nothing on stdout", late.out_text)
    t.check_error_line(late, mode + ": encrypt while closing")
    if mode == "reply-fd":
        rfd, wfd = os.pipe()
        sr, sw = os.pipe()
        p = subprocess.Popen([t.esession, "--home", b, "--status-fd", str(sw), "decrypt",
                              "--reply-fd", str(wfd)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             pass_fds=(wfd, sw))
        os.close(wfd)
        os.close(sw)
        out, err = p.communicate(term.out, timeout=60)
        with os.fdopen(rfd, "rb") as f:
            ack = f.read()
        with os.fdopen(sr, "rb") as f:
            st = f.read().decode()
        t.check(p.returncode == 0, "reply-fd: peer's decrypt of the termination exits 0",
                err.decode())
        t.check(len(out.decode().splitlines()) == 1 and "terminate" in out.decode(),
                "reply-fd: stdout holds the decrypted termination request only", out.decode())
        t.check(len(ack.decode().splitlines()) == 1, "reply-fd: one acknowledgement on --reply-fd",
                ack.decode())
        t.check("[ESESSION:] TERMINATED" in st, "reply-fd: TERMINATED status at the peer", st)
    else:
        d = t.run(b, "decrypt", input=term.out, status=True)
        t.check_rc(d, 0, "stdout: peer's decrypt of the termination")
        lines = d.out_text.splitlines()
        t.check(len(lines) == 2, "stdout: decrypted request and acknowledgement on stdout",
                d.out_text)
        ack = (lines[-1] + "\n").encode() if lines else b""
        t.check(t.status_lines(d, "TERMINATED") != [], "stdout: TERMINATED status at the peer",
                d.status_text)
    t.check(b"<c xmlns=" in ack and ('to="%s"' % ALICE).encode() in ack,
            mode + ": the acknowledgement is an encrypted stanza for the initiator",
            ack.decode(errors="replace"))
    t.check(t.session_status(b, ALICE) == "ended", mode + ": responder's session ended",
            t.session_status(b, ALICE))
    f = t.run(a, "decrypt", input=ack, status=True)
    if not t.check_rc(f, 0, mode + ": initiator decrypts the acknowledgement as written"):
        # Carry on with the sender named explicitly, to check the rest of the flow.
        f = t.run(a, "decrypt", "--from", BOB, input=ack, status=True)
        t.check_rc(f, 0, mode + ": initiator decrypts the acknowledgement with --from")
    t.check(t.status_lines(f, "TERMINATED") != [], mode + ": TERMINATED status at the initiator",
            f.status_text)
    t.check(t.session_status(a, BOB) == "ended", mode + ": initiator's session ended",
            t.session_status(a, BOB))
    for home, peer, who in ((a, BOB, "initiator"), (b, ALICE, "responder")):
        e = t.run(home, "encrypt", input=('<message to="%s"><body>after the end</body></message>'
                                          % peer).encode())
        t.check_rc(e, EXIT_REFUSED, "%s: %s encrypts after termination" % (mode, who))
        t.check(e.out == b"", "%s: %s: nothing on stdout" % (mode, who), e.out_text)
        t.check_error_line(e, "%s: %s encrypts after termination" % (mode, who))
        k = t.run(home, "rekey", "--to", peer)
        t.check(k.rc in (2, 4) and k.out == b"",
                "%s: %s cannot re-key an ended session (exit %s)" % (mode, who, k.rc),
                k.describe())
    # The acknowledgement replayed to the initiator changes nothing.
    f2 = t.run(a, "decrypt", input=ack)
    t.check(f2.rc != 0 and f2.out == b"", mode + ": a replayed acknowledgement is refused",
            f2.describe())
    # A new session can be negotiated afterwards.
    ra, rb = t.negotiate(a, ALICE, b, BOB)
    t.check(ra.rc == 0 and rb.rc == 0, mode + ": a new session after termination",
            ra.describe() + "\n" + rb.describe())
    both_ways(a, b, mode + "-new", 1)

t.finish()
