#!/usr/bin/env python3
"""cli.seal-ox: `esession seal --format ox` and `esession open --format ox` (XEP-0373 stanzas).

Three GnuPG homes under a short /tmp path (alice, bob, carol; Ed25519 + Curve25519 keys with
the User IDs xmpp:JID; alice and bob know and have certified each other, carol knows and has
certified both, and alice and bob know carol's key but do not certify it). Checks: round trips
of signcrypt, sign and crypt (--allow-unsigned) with <thread/> in clear; gpg decrypts what we
seal and shows our <signcrypt/>; we open what gpg --sign --encrypt made of a <signcrypt/>
written here; refusals, each with its exit status, one error line and nothing on stdout:
tampered base64 (encrypted and signed-only), wrong or missing <to/>, stale and future <time/>,
--max-age, unsigned <signcrypt/> and <crypt/>, wrong signer (-i), a signer whose User ID is not
(validly) the stanza's from, not encrypted to us, <sign/> inside an encrypted message, a stanza
without from (seal and open need -i), option misuse, malformed input. Streams: two messages
in one seal and in one open, a refused stanza between good ones (the others still opened),
a keyring change between two stanzas of one open run, seal stopping at a bad stanza, empty
input. The
agents are killed and the homes removed at the end.
"""

import base64
import datetime
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

from clitest import EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, EXIT_REFUSED, GnuPGHomes, Test

NS_OX = "urn:xmpp:openpgp:0"
NS_CLIENT = "jabber:client"

t = Test("cli.seal-ox")
g = GnuPGHomes(t, "eox")
env, homes, gpg = g.env, g.homes, g.gpg


def jid(who):
    return "%s@example.org" % who


def make_home(who):
    g.new(who)
    gpg(who, "--quick-gen-key", "xmpp:" + jid(who), "ed25519", "sign", "never")
    out = gpg(who, "--with-colons", "--list-keys", "xmpp:" + jid(who)).stdout.decode()
    f = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
    gpg(who, "--quick-add-key", f, "cv25519", "encr", "never")
    return f


def introduce(who, other, certify=True):
    gpg(who, "--import", input=gpg(other, "--export", fpr[other]).stdout)
    if certify:
        gpg(who, "--quick-lsign-key", fpr[other])


def run(who, *args, input=b""):
    return t.run(None, "--gnupg-home", homes[who], *args, input=input, status=True, env=env,
                 timeout=120)


def status(r, keyword):
    return [l.split()[2:] for l in r.status_text.splitlines()
            if l.startswith("[ESESSION:] " + keyword + " ")]


def seal(who, stanza, *args):
    return run(who, "seal", "--format", "ox", *args, input=stanza.encode())


def open_(who, stanza, *args):
    return run(who, "open", "--format", "ox", *args,
               input=stanza if isinstance(stanza, bytes) else stanza.encode())


def refused(r, rc, what, contains=None):
    t.check_rc(r, rc, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", what + ": nothing on stdout", r.out[:200])
    t.check(not status(r, "OPENED") and not status(r, "SEALED"), what + ": no OPENED/SEALED")


def q(local, ns=NS_CLIENT):
    return "{%s}%s" % (ns, local)


def parse(out):
    lines = out.decode().splitlines()
    t.check(len(lines) == 1, "one stanza, on one line", out[:300])
    return ET.fromstring(lines[0])


def stamp(delta=0):
    d = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def message(sender, to, children):
    return ("<message xmlns='jabber:client' from='%s/phone' to='%s/laptop' type='chat' id='m1'>"
            "%s</message>" % (jid(sender), jid(to), children))


def gpg_stanza(signer, recipient, content, sender=None, to=None, sign=True):
    """A stanza whose <openpgp/> is what gpg makes of |content| (XML text)."""
    args = ["--encrypt", "-r", fpr[recipient]]
    if sign:
        args = ["--sign", "-u", fpr[signer]] + args
    data = gpg(signer, *args, input=content.encode()).stdout
    return message(sender or signer, to or recipient,
                   "<thread>th1</thread><openpgp xmlns='%s'>%s</openpgp>"
                   % (NS_OX, base64.b64encode(data).decode()))


def content(mode, to, when, body="hello from gpg"):
    return ("<%s xmlns='%s'>%s<time stamp='%s'/><rpad>xyz</rpad><payload>"
            "<body xmlns='jabber:client'>%s</body></payload></%s>"
            % (mode, NS_OX, "".join("<to jid='%s'/>" % j for j in to), when, body, mode))


BODY = "<body>Hi Bob &amp; co &lt;3</body>"
ORIGINAL = message("alice", "bob", "<thread>th1</thread>" + BODY +
                   "<request xmlns='urn:xmpp:receipts'/><store xmlns='urn:xmpp:hints'/>")


def round_trip(mode, open_args=()):
    what = "round trip " + mode
    r = seal("alice", ORIGINAL, "--mode", mode)
    if not t.check_rc(r, EXIT_OK, what + ": seal"):
        return None
    t.check(len(status(r, "SEALED")) == 1 and status(r, "SEALED")[0][0] == "ox",
            what + ": SEALED ox", r.status_text)
    sealed = parse(r.out)
    t.check(sealed.find(q("body")) is None and sealed.find("{urn:xmpp:receipts}request") is None,
            what + ": no body or receipt request in clear", r.out)
    t.check(sealed.find(q("thread")) is None, what + ": <thread/> is sealed too", r.out)
    t.check(len(sealed.findall(q("openpgp", NS_OX))) == 1, what + ": one <openpgp/>", r.out)
    t.check(sealed.get("to") == "bob@example.org/laptop" and sealed.get("id") == "m1",
            what + ": attributes kept", r.out)
    o = open_("bob", r.out, *open_args)
    if not t.check_rc(o, EXIT_OK, what + ": open"):
        return sealed
    opened = parse(o.out)
    t.check(opened.findtext(q("body")) == "Hi Bob & co <3", what + ": body back", o.out)
    t.check(opened.find("{urn:xmpp:receipts}request") is not None, what + ": receipt request back")
    t.check(opened.find(q("openpgp", NS_OX)) is None and opened.find("{urn:xmpp:eme:0}encryption")
            is None, what + ": <openpgp/> and <encryption/> gone", o.out)
    t.check(opened.findtext(q("thread")) == "th1", what + ": <thread/> back", o.out)
    t.check(opened.find("{urn:xmpp:hints}store") is None and not status(o, "DROPPED"),
            what + ": the clear store hint dropped silently", o.out + o.status)
    t.check(status(o, "OPENED")[:1] and status(o, "OPENED")[0][0] == "ox", what + ": OPENED ox",
            o.status_text)
    sig = status(o, "SIGNATURE")
    want = ["none"] if mode == "crypt" else ["good", fpr["alice"]]
    t.check(sig == [want], what + ": SIGNATURE " + " ".join(want), o.status_text)
    return sealed


def openpgp_bytes(sealed_line):
    e = parse(sealed_line)
    return base64.b64decode(e.findtext(q("openpgp", NS_OX)))


try:
    fpr = {}
    for who in ("alice", "bob", "carol"):
        fpr[who] = make_home(who)
    introduce("alice", "bob")
    introduce("bob", "alice")
    introduce("alice", "carol", certify=False)
    introduce("bob", "carol", certify=False)
    introduce("carol", "alice")
    introduce("carol", "bob")
    t.log("keys: " + ", ".join("%s %s" % kv for kv in fpr.items()))

    # Round trips.
    round_trip("signcrypt")
    round_trip("sign")
    round_trip("crypt", ("--allow-unsigned",))

    # Elements added outside <openpgp/> on the way (or a client's clear fallback body) are
    # unauthenticated: only the routing attributes and the payload come out (XEP-0373 §3.2).
    r = seal("alice", ORIGINAL)
    forged = r.out.replace(b"<openpgp ", b"<body>INJECTED</body><openpgp ", 1)
    forged = forged.replace(b"<message ", b"<message evil='1' ", 1)
    o = open_("bob", forged)
    if t.check_rc(o, EXIT_OK, "open a message with a clear <body/> added"):
        opened = parse(o.out)
        t.check([e.text for e in opened.findall(q("body"))] == ["Hi Bob & co <3"] and
                opened.get("evil") is None, "only the authenticated body comes out", o.out)
        t.check(status(o, "DROPPED") == [["body", NS_CLIENT]], "DROPPED body jabber:client",
                o.status_text)
        t.check("dropped the unprotected <body/>" in o.err_text, "a warning says so", o.err_text)
    r = seal("alice", ORIGINAL, "--mode", "crypt")
    refused(open_("bob", r.out), EXIT_CRYPTO, "crypt without --allow-unsigned", "not signed")

    # gpg reads what we seal: bob decrypts, alice too (encrypted to self), signature good.
    r = seal("alice", ORIGINAL)
    data = openpgp_bytes(r.out)
    for who in ("bob", "alice"):
        p = gpg(who, "--status-fd", "2", "--decrypt", input=data, check=False)
        t.check(p.returncode == 0 and b"GOODSIG" in p.stderr, "gpg (%s) decrypts and verifies"
                % who, p.stderr.decode())
        plain = p.stdout.decode()
        t.check(plain.startswith("<signcrypt xmlns=\"urn:xmpp:openpgp:0\"><to jid=\"bob@example.org\""
                                 "/><time stamp=\"") and "<rpad>" in plain and
                "<payload><thread xmlns=\"jabber:client\">th1</thread><body xmlns=\"jabber:client\">"
                "Hi Bob &amp; co &lt;3</body>" in plain,
                "gpg (%s) shows our <signcrypt/>" % who, plain)
    r = seal("alice", ORIGINAL, "--mode", "sign")
    p = gpg("bob", "--status-fd", "2", "--decrypt", input=openpgp_bytes(r.out), check=False)
    t.check(p.returncode == 0 and b"GOODSIG" in p.stderr and
            p.stdout.startswith(b"<sign xmlns=\"urn:xmpp:openpgp:0\">") and b"<rpad>" not in
            p.stdout, "gpg verifies our <sign/>", p.stdout + p.stderr)

    # A message shaped as Profanity 0.13 sends it: <time/> with an offset without its colon
    # (+0000, not XEP-0082, read as a concession) and a clear fallback <body/> beside
    # <openpgp/>, which is dropped: only the authenticated payload's body comes out.
    s = gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"],
                                           stamp().replace("Z", "+0000"), body="from profanity"))
    s = s.replace("<openpgp ", "<body>This message is encrypted (XEP-0373: OpenPGP for XMPP)."
                  "</body><openpgp ", 1)
    o = open_("bob", s)
    if t.check_rc(o, EXIT_OK, "open a Profanity-shaped message (+0000, fallback body)"):
        bodies = [e.text for e in parse(o.out).findall(q("body"))]
        t.check(bodies == ["from profanity"], "Profanity-shaped: only the sealed body", o.out)
        t.check(["body", NS_CLIENT] in status(o, "DROPPED"), "Profanity-shaped: DROPPED body",
                o.status_text)

    # We read what gpg makes.
    s = gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"], stamp()))
    o = open_("bob", s)
    if t.check_rc(o, EXIT_OK, "open gpg's signcrypt"):
        e = parse(o.out)
        t.check(e.findtext(q("body")) == "hello from gpg" and e.find(q("thread")) is None,
                "gpg's signcrypt: the body; the clear <thread/> dropped", o.out)
        t.check(status(o, "DROPPED") == [["thread", NS_CLIENT]], "DROPPED thread jabber:client",
                o.status_text)
    # Base64 wrapped in lines of 64 (as some encoders write it) opens the same.
    e = parse(s.encode())
    text = e.findtext(q("openpgp", NS_OX))
    e.find(q("openpgp", NS_OX)).text = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    t.check_rc(open_("bob", ET.tostring(e)), EXIT_OK, "open gpg's signcrypt, base64 in lines")
    o = open_("bob", s, "-i", "alice@example.org")
    t.check_rc(o, EXIT_OK, "open gpg's signcrypt with -i alice")
    o = open_("bob", s, "-i", fpr["alice"])
    t.check_rc(o, EXIT_OK, "open gpg's signcrypt with -i FPR")
    s = gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"], stamp(-3 * 86400)))
    t.check_rc(open_("bob", s), EXIT_OK, "3 days old: within the default --max-age")
    refused(open_("bob", s, "--max-age", "3600"), EXIT_CRYPTO, "--max-age 3600", "max-age")

    # A stanza without from: seal needs -i, open needs -i.
    nofrom = ("<message xmlns='jabber:client' to='bob@example.org'><body>anonymous?</body>"
              "</message>")
    refused(seal("alice", nofrom), EXIT_INPUT, "seal: no from and no -i", "-i")
    r = seal("alice", nofrom, "-i", "alice@example.org")
    t.check_rc(r, EXIT_OK, "seal: no from, -i alice")
    refused(open_("bob", r.out), EXIT_INPUT, "open: no from and no -i", "-i")
    o = open_("bob", r.out, "-i", "alice@example.org")
    t.check_rc(o, EXIT_OK, "open: no from, -i alice")
    t.check(b"anonymous?" in o.out, "open: no from, -i alice: body back", o.out)
    refused(open_("bob", r.out, "-i", "carol@example.org"), EXIT_CRYPTO, "open: no from, -i carol")
    refused(seal("alice", ORIGINAL, "--mode", "sign", "-r", "bob@example.org"), EXIT_INPUT,
            "seal: --mode sign with -r")
    refused(seal("alice", ORIGINAL, "--mode", "crypt", "-i", "alice@example.org"), EXIT_INPUT,
            "seal: --mode crypt with -i")

    # Refusals.
    sealed = seal("alice", ORIGINAL).out
    e = parse(sealed)
    raw = bytearray(base64.b64decode(e.findtext(q("openpgp", NS_OX))))
    raw[len(raw) // 2] ^= 0x01
    e.find(q("openpgp", NS_OX)).text = base64.b64encode(bytes(raw)).decode()
    refused(open_("bob", ET.tostring(e)), EXIT_CRYPTO, "tampered base64")
    e = parse(seal("alice", ORIGINAL, "--mode", "sign").out)
    raw = bytearray(base64.b64decode(e.findtext(q("openpgp", NS_OX))))
    raw[len(raw) // 2] ^= 0x01
    e.find(q("openpgp", NS_OX)).text = base64.b64encode(bytes(raw)).decode()
    refused(open_("bob", ET.tostring(e)), EXIT_CRYPTO, "tampered <sign/>")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", ["carol@example.org"],
                                                            stamp()))),
            EXIT_CRYPTO, "wrong <to/>", "<to/>")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", [], stamp()))),
            EXIT_CRYPTO, "no <to/>", "<to/>")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"],
                                                            stamp(-8 * 86400)))),
            EXIT_CRYPTO, "stale <time/>", "older")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"],
                                                            stamp(3600)))),
            EXIT_CRYPTO, "future <time/>", "future")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"],
                                                            stamp()), sign=False)),
            EXIT_CRYPTO, "unsigned <signcrypt/>", "without a signature")
    refused(open_("bob", gpg_stanza("alice", "bob", content("crypt", [], stamp()), sign=False)),
            EXIT_CRYPTO, "gpg's unsigned <crypt/>", "not signed")
    o = open_("bob", gpg_stanza("alice", "bob", content("crypt", [], stamp()), sign=False),
              "--allow-unsigned")
    t.check_rc(o, EXIT_OK, "gpg's unsigned <crypt/> with --allow-unsigned")
    refused(open_("bob", sealed, "-i", fpr["carol"]), EXIT_CRYPTO, "wrong signer (-i carol)",
            "not by")
    refused(open_("bob", sealed, "-i", "carol@example.org"), EXIT_CRYPTO,
            "wrong signer (-i carol JID)", "not by")
    # Carol signs a stanza claiming to be from alice: her key does not name alice.
    refused(open_("bob", gpg_stanza("carol", "bob", content("signcrypt", ["bob@example.org"],
                                                            stamp()), sender="alice")),
            EXIT_CRYPTO, "signer's User ID is not the sender")
    # Carol's key is signed by nobody bob trusts: not valid for carol either.
    refused(open_("bob", gpg_stanza("carol", "bob", content("signcrypt", ["bob@example.org"],
                                                            stamp()))),
            EXIT_CRYPTO, "signer's User ID not valid")
    refused(open_("carol", sealed), EXIT_CRYPTO, "not encrypted to us (carol)")
    # A <sign/> moved into an encrypted message, a <signcrypt/> only signed.
    refused(open_("bob", gpg_stanza("alice", "bob", content("sign", ["bob@example.org"],
                                                            stamp()))),
            EXIT_CRYPTO, "<sign/> in an encrypted message")

    # Keys found by JID in the one gpg run that seals: the XEP-0373 User ID xmpp:JID exactly;
    # a key whose User ID is "Name <xmpp:JID>" is found by a keyring search instead.
    g.new("dave")
    gpg("dave", "--quick-gen-key", "Dave <xmpp:dave@example.org>", "ed25519", "sign", "never")
    out = gpg("dave", "--with-colons", "--list-keys", "dave").stdout.decode()
    fpr["dave"] = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
    gpg("dave", "--quick-add-key", fpr["dave"], "cv25519", "encr", "never")
    introduce("alice", "dave")
    r = seal("alice", message("alice", "dave", "<body>to dave</body>"))
    t.check_rc(r, EXIT_OK, "seal to a 'Name <xmpp:JID>' key by JID")
    if r.rc == EXIT_OK:
        d = gpg("dave", "--decrypt", input=openpgp_bytes(r.out), check=False)
        t.check(b"to dave" in d.stdout, "dave's gpg decrypts it",
                d.stderr[-300:])
    refused(seal("alice", message("alice", "carol", "<body>x</body>")), EXIT_REFUSED,
            "seal to a key alice has not certified", "validity")
    # The same key named by a key file: the user vouches for it (gpg --recipient-file).
    carol_file = t.path("carol.asc")
    with open(carol_file, "wb") as f:
        f.write(gpg("carol", "--armor", "--export", fpr["carol"]).stdout)
    r = seal("alice", message("alice", "carol", "<body>to carol</body>"), "-r", carol_file)
    t.check_rc(r, EXIT_OK, "seal to carol's key file")
    if r.rc == EXIT_OK:
        o = open_("carol", r.out)
        t.check_rc(o, EXIT_OK, "carol opens what was sealed to her key file")
        t.check(b"to carol" in o.out, "carol reads the body", o.out[:200])
    refused(seal("alice", message("alice", "bob", "<body>x</body>"), "-i", carol_file),
            EXIT_INPUT, "seal: a key file as signer", "secret key in GnuPG")
    # open -i FILE: the signer must be a key in the file.
    r = seal("alice", ORIGINAL)
    alice_file = t.path("alice.asc")
    with open(alice_file, "wb") as f:
        f.write(gpg("alice", "--armor", "--export", fpr["alice"]).stdout)
    t.check_rc(open_("bob", r.out, "-i", alice_file), EXIT_OK, "open with -i the signer's key file")
    refused(open_("bob", r.out, "-i", carol_file), EXIT_CRYPTO, "open with -i another key file",
            "not by")
    refused(seal("alice", message("alice", "erin", "<body>x</body>")), EXIT_REFUSED,
            "seal to a JID without a key", "no OpenPGP key")
    refused(seal("carol", message("alice", "bob", "<body>x</body>")), EXIT_REFUSED,
            "seal signed by a JID without a secret key here", "secret key")

    # Streams: any number of stanzas in one run, each its own object, one line out each.
    first = message("alice", "bob", "<body>first</body>")
    second = message("alice", "bob", "<body>second</body>")
    r = seal("alice", first + "\n" + second)
    t.check_rc(r, EXIT_OK, "stream: seal two messages")
    lines = r.out.decode().splitlines()
    t.check(len(lines) == 2 and len(status(r, "SEALED")) == 2, "stream: two sealed lines",
            r.out[:300])
    if len(lines) == 2:
        # open goes on past a refused stanza: the others come out, the refusal is one error
        # line and one ERROR status, and the exit status is the refusal's.
        e = parse(lines[0].encode())
        raw = bytearray(base64.b64decode(e.findtext(q("openpgp", NS_OX))))
        raw[len(raw) // 2] ^= 0x01
        e.find(q("openpgp", NS_OX)).text = base64.b64encode(bytes(raw)).decode()
        tampered = ET.tostring(e).decode()
        o = open_("bob", "\n".join([lines[0], tampered, lines[1]]))
        t.check_rc(o, EXIT_CRYPTO, "stream: open with a tampered stanza between two good ones")
        errors = [l for l in o.err_text.splitlines() if l.startswith("esession: error: ")]
        t.check(len(errors) == 1, "stream: one error line, for the tampered stanza", o.err_text)
        out = o.out.decode().splitlines()
        t.check(len(out) == 2 and "first" in out[0] and "second" in out[1],
                "stream: the good stanzas opened, in order", o.out[:400])
        t.check(len(status(o, "OPENED")) == 2 and len(status(o, "ERROR")) == 1,
                "stream: two OPENED, one ERROR", o.status_text)
        # The sender's key listing is made once for the run, not once a stanza: a gpg that
        # logs its runs sees one listing and three decryptions.
        wrap = t.path("wrap")
        os.makedirs(wrap, exist_ok=True)
        log = t.path("gpg-runs.log")
        real = shutil.which("gpg")
        with open(os.path.join(wrap, "gpg"), "w") as f:
            f.write("#!/bin/sh\necho \"$*\" >> '%s'\nexec '%s' \"$@\"\n" % (log, real))
        os.chmod(os.path.join(wrap, "gpg"), 0o755)
        wenv = dict(env, PATH=wrap + os.pathsep + env.get("PATH", os.defpath))
        o = t.run(None, "--gnupg-home", homes["bob"], "open", "--format", "ox",
                  input="\n".join([lines[0], lines[1], lines[0]]).encode(), env=wenv,
                  timeout=120)
        t.check_rc(o, EXIT_OK, "stream: three stanzas through a logging gpg")
        runs = open(log).read().splitlines() if os.path.exists(log) else []
        t.check(len(runs) == 4 and sum("--decrypt" in r for r in runs) == 3,
                "stream: one key listing and three decryptions", "\n".join(runs))
        # A long-running open sees the keyring change between stanzas: bob disables alice's
        # key, and her next stanza is refused.
        p = subprocess.Popen([t.esession, "--gnupg-home", homes["bob"], "open", "--format", "ox"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        try:
            p.stdin.write(lines[0].encode() + b"\n")
            p.stdin.flush()
            got = p.stdout.readline()
            t.check(b"first" in got, "stream: the first stanza opened before the change", got)
            gpg("bob", "--edit-key", fpr["alice"], "disable", "quit")
            p.stdin.write(lines[1].encode() + b"\n")
            p.stdin.close()
            rest, err = p.stdout.read(), p.stderr.read()
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
        t.check(rc == EXIT_CRYPTO and rest == b"" and b"esession: error: " in err,
                "stream: the keyring change is seen by the next stanza (rc %s)" % rc,
                rest + err)
        gpg("bob", "--edit-key", fpr["alice"], "enable", "quit")
    r = seal("alice", first + "<presence xmlns='jabber:client'/>" + second)
    t.check_rc(r, EXIT_INPUT, "stream: seal stops at a bad stanza")
    t.check(len(r.out.decode().splitlines()) == 1, "stream: what came before is sealed", r.out)
    refused(seal("alice", ""), EXIT_INPUT, "seal: empty input", "no stanza")
    refused(open_("bob", ""), EXIT_INPUT, "open: empty input", "no stanza")

    # Malformed input: exit 2.
    refused(open_("bob", "<iq xmlns='jabber:client' type='get' id='1'/>"), EXIT_INPUT,
            "open: not a message")
    refused(seal("alice", "<presence xmlns='jabber:client'/>"), EXIT_INPUT, "seal: not a message")
    refused(open_("bob", message("alice", "bob", "<body>x</body>")), EXIT_INPUT,
            "no <openpgp/>", "openpgp")
    refused(open_("bob", message("alice", "bob", "<openpgp xmlns='%s'>!!!</openpgp>" % NS_OX)),
            EXIT_INPUT, "bad base64")
    refused(open_("bob", gpg_stanza("alice", "bob", "<signcrypt xmlns='%s'><to jid='bob@example.org'"
                                    "/><time stamp='%s'/></signcrypt>" % (NS_OX, stamp()))),
            EXIT_INPUT, "no <payload/>", "payload")
    refused(open_("bob", gpg_stanza("alice", "bob", content("signcrypt", ["bob@example.org"],
                                                            "yesterday"))),
            EXIT_INPUT, "bad <time/> stamp", "XEP-0082")
    refused(seal("alice", message("alice", "bob", "<store xmlns='urn:xmpp:hints'/>")), EXIT_INPUT,
            "seal: nothing to seal")
    refused(seal("alice", "<message xmlns='jabber:client'><body>x</body></message>"), EXIT_INPUT,
            "seal: signcrypt without to")
    refused(seal("alice", ORIGINAL, "--mode", "bogus"), EXIT_INPUT, "seal: unknown --mode")
finally:
    g.close()
t.finish()
