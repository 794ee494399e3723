#!/usr/bin/env python3
"""cli.offline: offline sessions (XEP-0187) through the command line. Alice, whose key Bob
learnt in an earlier session, publishes signed options (`offline publish` writes the PEP
stanzas); Bob, with no session active, starts one from them (`offline start`), sending two
messages; Alice's `decrypt` accepts the request and reads both, once: the same request again
is a replay, refused with nothing written. `offline retract` withdraws the options and destroys
their secrets, after which a request finds nothing. Options whose signer Bob does not know are
refused, with nothing written."""

import os
import shutil
import subprocess

from clitest import ALICE, BOB, Test

t = Test("cli.offline")
ALICE_BARE = ALICE.split("/")[0]


def keygen(h, label):
    t.check_rc(t.run(h, "key", "generate"), 0, label + ": key generate")


a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
keygen(a, "Alice")
keygen(b, "Bob")
# An earlier online session tells Bob Alice's key; it is then ended (XEP-0187 forbids an
# offline session beside an active one).
ra, rb = t.negotiate(a, ALICE, b, BOB)
t.check_rc(ra, 0, "negotiate")
t.check_rc(rb, 0, "respond")
end = t.run(a, "terminate", "--to", BOB)
t.check_rc(end, 0, "terminate")
t.check_rc(t.run(b, "decrypt", input=end.out), 0, "Bob reads the termination")

pub = t.run(a, "offline", "publish", "--expires", "2h", status=True)
t.check_rc(pub, 0, "offline publish")
lines = pub.out_text.splitlines()
t.check(len(lines) == 2 and "<create" in lines[0] and "<publish" in lines[1] and
        "xep-0187.html#ns" in lines[1], "publish writes the node creation and the publication",
        pub.out_text)
options = t.path("options.xml")
with open(options, "w") as f:
    f.write(lines[1] if len(lines) == 2 else "")
t.check("1 " in t.run(a, "offline", "list").out_text or
        t.run(a, "offline", "list").out_text.strip() != "", "offline list shows the set")

fe = t.run(b, "offline", "fetch", "--to", ALICE_BARE)
t.check(fe.rc == 0 and '<items node="http://www.xmpp.org/extensions/xep-0187.html#ns"/>' in
        fe.out_text and 'to="%s"' % ALICE_BARE in fe.out_text and 'type="get"' in fe.out_text,
        "offline fetch writes the PEP items request", fe.out_text)

msgs = ('<message to="%s" type="chat"><body>first</body></message>\n'
        '<message to="%s" type="chat"><body>second</body></message>\n'
        % (ALICE_BARE, ALICE_BARE)).encode()
st = t.run(b, "offline", "start", "--to", ALICE_BARE, "--options", options, input=msgs,
           status=True)
t.check_rc(st, 0, "offline start")
out = st.out_text.splitlines()
t.check(len(out) == 2 and "<init" in out[0] and "<c " in out[0] and "<c " in out[1] and
        "first" not in st.out_text and "second" not in st.out_text,
        "the request carries the first message encrypted, the second follows encrypted",
        st.out_text)
t.check(t.status_lines(st, "ESTABLISHED") != [], "Bob's session is established at once",
        st.status_text)

d = t.run(a, "decrypt", input=st.out, status=True)
t.check_rc(d, 0, "Alice decrypts the offline request and the stanza after it")
t.check("<body>first</body>" in d.out_text and "<body>second</body>" in d.out_text,
        "both messages arrive", d.out_text)

again = t.run(a, "decrypt", input=out[0].encode() + b"\n" if out else b"")
t.check(again.rc != 0 and again.out_text == "", "the same request again is refused, nothing "
        "written", (again.rc, again.out_text, again.err_text))
t.check("replay" in again.err_text, "and said to be a replay", again.err_text)

# Back online, Alice negotiates an online session: it carries stanzas both ways, and Bob's
# offline session with her bare JID ends with it (XEP-0187 §5).
ro, rb2 = t.negotiate(a, ALICE, b, BOB)
t.check(ro.rc == 0 and rb2.rc == 0, "an online session after the offline one", (ro.rc, rb2.rc))
for src, dst, peer, body in ((a, b, BOB, "online from alice"), (b, a, ALICE, "online from bob")):
    e = t.run(src, "encrypt", input=('<message to="%s"><body>%s</body></message>'
                                     % (peer, body)).encode())
    dd = t.run(dst, "decrypt", input=e.out)
    t.check(e.rc == 0 and dd.rc == 0 and ("<body>%s</body>" % body) in dd.out_text,
            "online both ways: " + body, (e.rc, dd.rc, dd.err_text))
bob_sessions = t.run(b, "session", "list").out_text
t.check(any(ALICE_BARE + " " in l and "ended" in l for l in bob_sessions.splitlines()) and
        not any(l.split()[1:3] == ["active", ALICE_BARE] for l in bob_sessions.splitlines()),
        "Bob's offline session has ended", bob_sessions)

ret = t.run(a, "offline", "retract")
t.check_rc(ret, 0, "offline retract")
t.check(len(ret.out_text.splitlines()) == 1 and "<item" in ret.out_text,
        "retract writes the empty publication", ret.out_text)
t.check(t.run(a, "offline", "list").out_text.strip() == "", "no options kept after retract")

# One stanza with forward secrecy, as an object: seal --format esession from the published
# options, open once (the second time is a replay). Alice publishes anew first (retract
# destroyed the set).
pub2 = t.run(a, "offline", "publish", "--for", "anyone")
t.check_rc(pub2, 0, "offline publish --for anyone")
opts2 = t.path("options2.xml")
with open(opts2, "w") as f:
    f.write(pub2.out_text.splitlines()[-1] if pub2.out_text else "")
sealed = t.run(b, "seal", "--format", "esession", "-r", ALICE_BARE, "--options", opts2,
               input=('<message to="%s"><body>sealed note</body></message>' % ALICE_BARE).encode())
t.check_rc(sealed, 0, "seal --format esession")
t.check(len(sealed.out_text.splitlines()) == 1 and "sealed note" not in sealed.out_text and
        "terminate" in sealed.out_text, "one stanza, encrypted, ending its session", sealed.out_text)
op = t.run(a, "open", input=sealed.out)
t.check_rc(op, 0, "open (format told from the input)")
t.check("<body>sealed note</body>" in op.out_text, "open reads the sealed stanza", op.out_text)
op2 = t.run(a, "open", "--format", "esession", input=sealed.out)
t.check(op2.rc != 0 and op2.out_text == "", "a second open is refused (a replay)",
        (op2.rc, op2.out_text, op2.err_text))
wrong = t.run(b, "seal", "--format", "ox", "--options", opts2, input=b"<message/>")
t.check(wrong.rc != 0 and "--options is for --format esession" in wrong.err_text,
        "--options with another format is refused", wrong.err_text)

# A stranger's options: Bob knows no key of theirs.
c = t.init_home("C", "carol@example.net/home")
keygen(c, "Carol")
pc = t.run(c, "offline", "publish")
t.check_rc(pc, 0, "Carol publishes")
carol_opts = t.path("carol.xml")
with open(carol_opts, "w") as f:
    f.write(pc.out_text.splitlines()[-1] if pc.out_text else "")
s2 = t.run(b, "offline", "start", "--to", "carol@example.net", "--options", carol_opts,
           input=b'<message to="carol@example.net"><body>x</body></message>')
t.check(s2.rc != 0 and s2.out_text == "", "options signed by an unknown key are refused",
        (s2.rc, s2.out_text, s2.err_text))

# An X.509 identity (a certificate from openssl, imported) signs the options the same way.
if shutil.which("openssl"):
    def ossl(*argv):
        subprocess.run(["openssl"] + list(argv), check=True, capture_output=True)

    ca, leaf = t.path("ca"), t.path("leaf")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + ".key", "-out",
         ca + ".pem", "-subj", "/CN=TestCA", "-days", "30", "-addext",
         "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    ossl("req", "-new", "-newkey", "ed25519", "-nodes", "-keyout", leaf + ".key", "-subj",
         "/CN=alice", "-out", leaf + ".csr")
    with open(leaf + ".ext", "w") as f:
        f.write("subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:%s\n"
                "keyUsage=critical,digitalSignature\n" % ALICE_BARE)
    ossl("x509", "-req", "-in", leaf + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
         "-CAcreateserial", "-days", "10", "-extfile", leaf + ".ext", "-out", leaf + ".crt")
    with open(leaf + ".id.pem", "wb") as f:
        f.write(open(leaf + ".crt", "rb").read() + open(leaf + ".key", "rb").read())
    ax = t.init_home("AX", ALICE)
    bx = t.init_home("BX", BOB)
    t.check_rc(t.run(ax, "key", "import", leaf + ".id.pem"), 0, "x509: key import")
    keygen(bx, "x509: Bob")
    rax, rbx = t.negotiate(ax, ALICE, bx, BOB)
    t.check(rax.rc == 0 and rbx.rc == 0, "x509: an online session first", (rax.rc, rbx.rc))
    endx = t.run(ax, "terminate", "--to", BOB)
    t.check_rc(t.run(bx, "decrypt", input=endx.out), 0, "x509: Bob reads the termination")
    pubx = t.run(ax, "offline", "publish")
    t.check_rc(pubx, 0, "x509: offline publish")
    optx = t.path("optx.xml")
    with open(optx, "w") as f:
        f.write(pubx.out_text.splitlines()[-1] if pubx.out_text else "")
    stx = t.run(bx, "offline", "start", "--to", ALICE_BARE, "--options", optx,
                input=('<message to="%s"><body>x509 note</body></message>' % ALICE_BARE).encode())
    t.check_rc(stx, 0, "x509: offline start")
    dx = t.run(ax, "decrypt", input=stx.out)
    t.check(dx.rc == 0 and "<body>x509 note</body>" in dx.out_text,
            "x509: Alice reads the offline message", (dx.rc, dx.out_text, dx.err_text))
else:
    t.log("openssl not installed: the X.509 identity case is skipped")

# Without a key, nothing is published.
e = t.init_home("E", "erin@example.net/x")
r = t.run(e, "offline", "publish")
t.check(r.rc != 0 and r.out_text == "" and "key generate" in r.err_text,
        "publishing without a key is refused with a hint", (r.rc, r.err_text))
t.finish()
