#!/usr/bin/env python3
"""cli.bad-input: malformed XML, binary garbage, a 100 MB stanza, markup a stanza reader must
refuse, a stanza for an unknown peer, a tampered stanza, a replayed stanza, a missing home and
a locked home. Each gives exactly one 'esession: error: ...' line on stderr and the documented
exit status, never plaintext on stdout for a failed decrypt, and leaves the state usable:
malformed input changes no session; a tampered or replayed stanza ends the session at the
receiver (XEP-0200 §8) but leaves the sender's state unharmed; a locked home is waited for
(busy timeout, 10 s) and then refused without consuming anything."""

import os
import subprocess
import sys
import threading
import time

from clitest import (ALICE, BOB, EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, EXIT_STATE, NS_C, Result,
                     Test)

t = Test("cli.bad-input")


def pair(label):
    return t.session_pair(label)[:2]


def msg(to, body, frm=None):
    return ('<message to="%s"%s type="chat"><body>%s</body></message>\n'
            % (to, ' from="%s"' % frm if frm else "", body)).encode()


def encrypt(home, data, what):
    r = t.run(home, "encrypt", input=data)
    t.check_rc(r, EXIT_OK, what)
    return r.out


# --- the locked home runs in the background (it waits out the 10 s busy timeout) ---
lock_result = {}


def locked_home_case():
    la, lb = pair("lock")
    db = os.path.join(la, "esession.db")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
         "c.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True)\n"
         "time.sleep(float(sys.argv[2]))\n"
         "c.execute('ROLLBACK')\n", db, "14"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = holder.stdout.readline()
    if line.strip() != b"locked":
        lock_result["setup"] = holder.stderr.read().decode()
        holder.kill()
        return
    t0 = time.monotonic()
    r = t.run(la, "encrypt", input=msg(BOB, "while locked"), timeout=60)
    lock_result["waited"] = time.monotonic() - t0
    lock_result["r"] = r
    lock_result["holder_alive"] = holder.poll() is None
    holder.wait(timeout=30)
    # Released: the state is usable, and the refused run consumed no counter (the peer decrypts
    # the next stanza, which must be the first it receives).
    e = t.run(la, "encrypt", input=msg(BOB, "after the lock"))
    d = t.run(lb, "decrypt", input=e.out)
    lock_result["after"] = (e, d)


lock_thread = threading.Thread(target=locked_home_case, daemon=True)
lock_thread.start()

a, b = pair("malformed")


def rows():
    return (t.session_rows(a), t.session_rows(b))


def refused(home, cmd, data, want, what, contains=None, unchanged=True, secret=None):
    """Runs a command expected to fail; checks status, one error line, no output."""
    before = rows() if unchanged else None
    r = t.run(home, cmd, input=data)
    t.check_rc(r, want, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", "%s: nothing on stdout" % what, r.out_text)
    if secret:
        t.check(secret.encode() not in r.out + r.err, "%s: no plaintext anywhere" % what)
    if unchanged:
        t.check(rows() == before, "%s: no session changed" % what)
    return r


# Malformed XML and garbage, to both filters.
cases = [
    ("unclosed element", msg(BOB, "x").replace(b"</body>", b"")),
    ("mismatched tags", b"<message to='%s'><body>x</bodyy></message>" % BOB.encode()),
    ("truncated stanza at end of input", b"<message to='%s'><body>x</bo" % BOB.encode()),
    ("text outside any stanza", b"hello " + msg(BOB, "x")),
    ("undefined entity", b"<message to='%s'><body>&nosuch;</body></message>" % BOB.encode()),
    ("bare ampersand", b"<message to='%s'><body>a & b</body></message>" % BOB.encode()),
    ("reference to U+0000", b"<message to='%s'><body>x&#0;y</body></message>" % BOB.encode()),
    ("reference to U+0001", b"<message to='%s'><body>x&#x1;y</body></message>" % BOB.encode()),
    ("reference to a surrogate",
     b"<message to='%s'><body>x&#xD800;y</body></message>" % BOB.encode()),
    ("invalid UTF-8", b"<message to='%s'><body>\xff\xfe</body></message>" % BOB.encode()),
    ("DOCTYPE with entity expansion",
     b'<!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
     b"<message to='%s'><body>&b;</body></message>" % BOB.encode()),
    ("binary garbage", bytes(t.rng.randrange(256) for _ in range(8192))),
    ("binary garbage after '<'", b"<" + bytes(t.rng.randrange(256) for _ in range(8192))),
    ("NUL bytes", b"\0" * 100),
]
for name, data in cases:
    refused(a, "encrypt", data, EXIT_INPUT, "encrypt: " + name)
    # To decrypt, the same bytes as if they came from Alice.
    refused(b, "decrypt", data.replace(b"to='%s'" % BOB.encode(),
                                       b"from='%s' to='%s'" % (ALICE.encode(), BOB.encode())),
            EXIT_INPUT, "decrypt: " + name)
refused(a, "encrypt", b"<foo xmlns='urn:x'/>", EXIT_INPUT, "encrypt: not a stanza")
refused(a, "encrypt", msg("", "x").replace(b' to=""', b""), EXIT_INPUT,
        "encrypt: stanza without 'to'")
refused(b, "decrypt", msg(BOB, "x"), EXIT_INPUT, "decrypt: stanza without 'from'")
refused(b, "decrypt", msg(BOB, "plaintext-xyz", ALICE), EXIT_CRYPTO,
        "decrypt: unencrypted stanza from a peer with a session", secret="plaintext-xyz")


# None of that changed anything: the session works both ways.
for (src, dst, peer, what) in ((a, b, BOB, "Alice to Bob"), (b, a, ALICE, "Bob to Alice")):
    e = t.run(src, "encrypt", input=msg(peer, "still-fine"))
    d = t.run(dst, "decrypt", input=e.out)
    t.check(e.rc == 0 and d.rc == 0 and "still-fine" in d.out_text,
            "after the malformed input, a stanza goes from %s" % what,
            e.describe() + "\n" + d.describe())

# A 100 MB stanza, generated while it is read (never stored).
def huge(home, cmd, head, tail, what):
    before = rows()
    p = subprocess.Popen([t.esession, "--home", home, cmd], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunk = b"A" * (1 << 20)
    sent = 0
    outs = {}

    def drain(name, f):
        outs[name] = f.read()
    th = [threading.Thread(target=drain, args=(n, f)) for n, f in
          (("out", p.stdout), ("err", p.stderr))]
    for x in th:
        x.start()
    try:
        p.stdin.write(head)
        while sent < 100 * (1 << 20):
            p.stdin.write(chunk)
            sent += len(chunk)
        p.stdin.write(tail)
        p.stdin.close()
    except BrokenPipeError:
        pass  # the reader gave up early: good
    rc = p.wait(timeout=120)
    for x in th:
        x.join()
    r = Result([cmd, "(100 MB stanza)"], rc, outs["out"], outs["err"])
    t.log("%s: exit %d after %d MB were written" % (what, rc, sent >> 20))
    t.check_rc(r, EXIT_INPUT, what)
    t.check_error_line(r, what)
    t.check(r.out == b"", "%s: nothing on stdout" % what)
    t.check(rows() == before, "%s: no session changed" % what)


huge(a, "encrypt", b"<message to='%s'><body>" % BOB.encode(), b"</body></message>\n",
     "encrypt: 100 MB stanza")
huge(b, "decrypt", b"<message from='%s' to='%s'><c xmlns='%s'><data>"
     % (ALICE.encode(), BOB.encode(), NS_C.encode()), b"</data><mac>AAAA</mac></c></message>\n",
     "decrypt: 100 MB stanza")

# Unknown peers.
a, b = pair("main")
refused(a, "encrypt", msg("carol@example.net/x", "to carol"), EXIT_INPUT,
        "encrypt: stanza for a peer without a session", "carol@example.net/x")
w = encrypt(a, msg(BOB, "secret-one") + msg(BOB, "secret-two") + msg(BOB, "secret-three"),
            "encrypt three stanzas")
wire = w.decode().splitlines()
t.check(len(wire) == 3, "three wire stanzas", len(wire))
refused(b, "decrypt", wire[0].replace('from="%s"' % ALICE, 'from="carol@example.net/x"')
        .encode(), EXIT_INPUT, "decrypt: stanza from a peer without a session",
        "carol@example.net/x", secret="secret-one")
# Nothing above changed anything: the three stanzas still decrypt in order.
d = t.run(b, "decrypt", input=(wire[0] + "\n").encode())
t.check_rc(d, EXIT_OK, "after all the bad input, the first real stanza decrypts")
t.check("secret-one" in d.out_text, "and its body arrives", d.out_text)

# A tampered stanza: refused (1), no plaintext, the receiver's session ends, the sender's state
# is unharmed.
a_before = t.session_rows(a)
x = wire[1]
i = x.index("<data>") + len("<data>")
tampered = x[:i] + ("B" if x[i] == "A" else "A") + x[i + 1:]
refused(b, "decrypt", tampered.encode(), EXIT_CRYPTO, "decrypt: tampered stanza", "MAC",
        unchanged=False, secret="secret-two")
t.check(t.session_rows(a) == a_before, "tampered stanza: the sender's state is unchanged")
t.check(t.session_status(b, ALICE) == "ended",
        "tampered stanza: the receiver's session ended (XEP-0200 §8)", t.session_status(b, ALICE))
r = t.run(b, "decrypt", input=(wire[1] + "\n").encode())
t.check(r.rc != 0 and r.out == b"", "the genuine stanza is refused after the session ended",
        r.describe())
r = t.run(a, "encrypt", input=msg(BOB, "sender still fine"))
t.check_rc(r, EXIT_OK, "tampered stanza: the sender can still encrypt")
t.check(t.run(a, "session", "list").rc == 0 and t.run(b, "session", "list").rc == 0,
        "both stores open")

# A replayed stanza, on a fresh session: refused (1) in a later run and within one run.
c, dd = pair("replay")
w = encrypt(c, msg(BOB, "replay-1") + msg(BOB, "replay-2"), "encrypt for the replay case")
wire = w.decode().splitlines()
d1 = t.run(dd, "decrypt", input=(wire[0] + "\n").encode())
t.check_rc(d1, EXIT_OK, "replay: first delivery")
c_before = t.session_rows(c)
refused(dd, "decrypt", (wire[0] + "\n").encode(), EXIT_CRYPTO, "decrypt: replayed stanza",
        unchanged=False, secret="replay-1")
t.check(t.session_rows(c) == c_before, "replay: the sender's state is unchanged")
t.check(t.session_status(dd, ALICE) == "ended", "replay: the receiver's session ended",
        t.session_status(dd, ALICE))
r = t.run(c, "encrypt", input=msg(BOB, "sender after replay"))
t.check_rc(r, EXIT_OK, "replay: the sender can still encrypt")
# Within one run: the stanza, then its replay.
e2, f2 = pair("replay-batch")
w = encrypt(e2, msg(BOB, "once"), "encrypt for the in-run replay")
r = t.run(f2, "decrypt", input=w + w)
t.check_rc(r, EXIT_CRYPTO, "decrypt: stanza followed by its replay in one run")
t.check(r.out_text.count("<body>once</body>") == 1 and len(r.out_text.splitlines()) == 1,
        "in-run replay: only the first copy is on stdout", r.out_text)
t.check_error_line(r, "in-run replay")

# A missing home: 3, and nothing is created.
missing = t.path("missing", "home")
r = refused(missing, "encrypt", msg(BOB, "x"), EXIT_STATE, "encrypt: missing home", missing,
            unchanged=False)
r = refused(missing, "decrypt", msg(BOB, "x", ALICE), EXIT_STATE, "decrypt: missing home",
            missing, unchanged=False)
env = dict(os.environ, ESESSION_HOME=missing)
r = t.run(None, "encrypt", input=msg(BOB, "x"), env=env)
t.check_rc(r, EXIT_STATE, "encrypt: missing $ESESSION_HOME")
t.check_error_line(r, "encrypt: missing $ESESSION_HOME", missing)
t.check(not os.path.exists(t.path("missing")), "no home was created")

# The locked home.
lock_thread.join(timeout=90)
if "setup" in lock_result:
    t.check(False, "locked home: could not take the lock", lock_result["setup"])
elif "r" not in lock_result:
    t.check(False, "locked home: the case did not complete")
else:
    r = lock_result["r"]
    t.log("locked home: encrypt gave up after %.1fs" % lock_result["waited"])
    t.check_rc(r, EXIT_STATE, "encrypt: locked home")
    t.check_error_line(r, "encrypt: locked home")
    t.check(r.out == b"", "locked home: nothing on stdout", r.out_text)
    t.check(lock_result["holder_alive"], "locked home: the lock was still held when it gave up")
    t.check(8 <= lock_result["waited"] <= 13.5,
            "locked home: it waited for the busy timeout (~10 s)", lock_result["waited"])
    e, d = lock_result["after"]
    t.check_rc(e, EXIT_OK, "locked home: encrypt after the lock is released")
    t.check_rc(d, EXIT_OK, "locked home: the peer decrypts it (no counter was consumed)")
t.finish()
