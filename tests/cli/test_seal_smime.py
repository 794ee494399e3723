#!/usr/bin/env python3
"""cli.seal-smime: `esession seal --format smime` / `esession open --format smime` (RFC 3923).

    test_seal_smime.py ESESSION [ESESSION_COUNTERS]

Certificates (a CA, then alice, bob and eve with XmppAddr names) are made with the openssl CLI.
Checks: message, presence and iq stanzas round-trip; `openssl cms -decrypt | openssl cms -verify`
on the <e2e/> content gives the Message/CPIM object with From/To/DateTime and the stanza; we
open an <e2e/> that `openssl cms -sign | openssl cms -encrypt` made from a CPIM text (also the
text/plain form of RFC 3923 §3, §4's PIDF presence, and an <e2e/> holding a MIME entity); `gpgsm --decrypt` reads
ours (skipped, saying why, when gpgsm cannot be driven); tampered, wrong-recipient, From and To
mismatch, stale and future DateTime, unsigned, wrong-signer and untrusted objects are refused
with exit 1, malformed ones with exit 2, each with one error line and nothing on stdout.
Signed-only objects (--mode sign; openssl cms -verify reads ours, we open openssl's, modified
and wrong-signer ones refused). Streams: three stanzas sealed in one run and opened in one run with a tampered one among
them (refused, answered with --error-reply, the others opened); seal stopping at a bad
stanza; empty input.
"""

import base64
import datetime
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from clitest import EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, Result, Test
from clitest import read_bytes as read, write_bytes as write

t = Test("cli.seal-smime")
env = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
           TMPDIR=t.dir)
env.pop("XDG_DATA_HOME", None)

if not shutil.which("openssl"):
    t.skip("the openssl command is not installed")


def sh(*args, input=None, check=True):
    p = subprocess.run(list(args), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=120)
    if check and p.returncode != 0:
        t.check(False, "%s failed" % " ".join(args), p.stderr.decode(errors="replace"))
        t.finish()
    return p


def run(*args, input=b""):
    """Runs esession with --status-fd (a pipe)."""
    return t.run(None, *args, input=input, status=True, env=env, timeout=120)


def status(r, keyword):
    return [l.split(" ", 2)[2] if l.count(" ") >= 2 else ""
            for l in r.status_text.splitlines() if l.split(" ")[1:2] == [keyword]]




# --- certificates ---
sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", t.path("ca.key"),
   "-out", t.path("ca.crt"), "-subj", "/CN=Test-CA", "-days", "2")
for n in ("alice", "bob", "eve"):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", t.path(n + ".key"),
       "-out", t.path(n + ".crt"), "-subj", "/CN=" + n, "-days", "2", "-CA", t.path("ca.crt"),
       "-CAkey", t.path("ca.key"), "-addext",
       "subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:%s@example.com" % n,
       "-addext", "basicConstraints=CA:FALSE",
       "-addext", "keyUsage=digitalSignature,keyEncipherment")
    write(t.path(n + ".pem"), read(t.path(n + ".crt")) + read(t.path(n + ".key")))
# eve's self-signed twin: right name, no path to the CA.
sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", t.path("self.key"),
   "-out", t.path("self.crt"), "-subj", "/CN=alice", "-days", "2")
write(t.path("self.pem"), read(t.path("self.crt")) + read(t.path("self.key")))

SM = ["--format", "smime"]
CA = ["--ca-file", t.path("ca.crt")]
BOB = ["--identity", t.path("bob.pem")]


def seal(stanza, *extra, signer="alice.pem", to=("bob.crt",)):
    args = ["seal", *SM, "-i", t.path(signer)]
    for r in to:
        args += ["-r", t.path(r)]
    return run(*args, *extra, input=stanza.encode())


def e2e_text(xml):
    m = re.search(rb"<e2e xmlns=\"urn:ietf:params:xml:ns:xmpp-e2e\">([^<]*)</e2e>", xml)
    if not m:
        return b""
    # Our serializer writes line ends as character references (one stanza per line).
    return m.group(1).replace(b"&#xA;", b"\n").replace(b"&#xD;", b"\r")


def e2e_of(xml):
    """The DER EnvelopedData of an <e2e/> (the body of its application/pkcs7-mime entity)."""
    text = e2e_text(xml)
    return base64.b64decode(text.split(b"\n\n", 1)[-1])


def with_mime(outer, mime):
    return outer.replace(b"<e2e/>", b"<e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'>" + mime +
                         b"</e2e>")


def split_signed(entity):
    """The two parts of a multipart/signed entity, as transmitted."""
    b = re.search(rb'boundary="?([^";\r\n]+)"?', entity).group(1)
    chunks = re.split(rb"\r?\n--" + re.escape(b), entity.split(b"--" + b, 1)[1])
    return [c.split(b"\n", 1)[1] for c in chunks[:2]]


def with_e2e(outer, der):
    return outer.replace(b"<e2e/>", b"<e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'>" +
                         base64.b64encode(der) + b"</e2e>")


def refused(r, rc, what):
    t.check_rc(r, rc, what)
    t.check(r.out == b"", what + ": nothing on stdout", r.describe())
    errs = [l for l in r.err_text.splitlines() if l.startswith("esession: error")]
    t.check(len(errs) == 1, what + ": one error line", r.describe())


# --- round trips ---
MSG = ("<message from='alice@example.com/home' to='bob@example.com/phone' type='chat' id='m1'>"
       "<thread>t-1</thread><body>Wherefore art thou, Romeo?</body>"
       "<active xmlns='http://jabber.org/protocol/chatstates'/></message>")
PRES = ("<presence from='alice@example.com/home' to='bob@example.com' id='p1'>"
        "<show>away</show><status>on the balcony</status></presence>")
IQ = ("<iq from='alice@example.com/home' to='bob@example.com/phone' type='get' id='q1'>"
      "<query xmlns='jabber:iq:version'/></iq>")
sealed_msg = None
for name, stanza, payload in (("message", MSG, b"<body>Wherefore art thou, Romeo?</body>"),
                              ("presence", PRES, b"<status>on the balcony</status>"),
                              ("iq", IQ, b"<query xmlns=\"jabber:iq:version\"/>")):
    r = seal(stanza)
    t.check_rc(r, EXIT_OK, "seal a %s" % name)
    t.check(len(status(r, "SEALED")) == 1 and status(r, "SEALED")[0].startswith("smime "),
            "SEALED smime <bytes> (%s)" % name, r.status_text)
    t.check(payload not in r.out and b"<e2e xmlns=\"urn:ietf:params:xml:ns:xmpp-e2e\">" in r.out,
            "the %s payload is inside <e2e/> only" % name, r.out_text)
    t.check(r.out.count(b"\n") == 1 and r.out.startswith(b"<" + name.encode()),
            "one %s stanza on one line of stdout (line ends in <e2e/> as &#xA;)" % name,
            r.out_text)
    t.check(re.match(rb"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; "
                     rb"name=smime.p7m\nContent-Transfer-Encoding: base64\n\n"
                     rb"([A-Za-z0-9+/]{76}\n)*[A-Za-z0-9+/=]{1,76}\n$", e2e_text(r.out)),
            "the <e2e/> holds an application/pkcs7-mime entity, base64 in lines of 76 (%s)" % name,
            r.out_text)
    o = run(*CA, "open", *SM, *BOB, input=r.out)
    t.check_rc(o, EXIT_OK, "open the %s" % name)
    t.check(payload in o.out and b"<e2e" not in o.out, "the %s payload is back" % name,
            o.out_text)
    t.check(status(o, "SIGNATURE") == ["good CN=alice"], "SIGNATURE good CN=alice (%s)" % name,
            o.status_text)
    t.check(status(o, "OPENED") == status(r, "SEALED"), "OPENED smime <bytes> (%s)" % name,
            o.status_text)
    if name == "message":
        sealed_msg = r.out
        t.check(b"<thread>t-1</thread><e2e" in r.out and b"id=\"m1\"" in r.out and
                b"type=\"chat\"" in r.out, "the outer message keeps id, type and <thread/>",
                r.out_text)
        t.check(o.out.count(b"<thread>") == 1 and b"chatstates" in o.out and
                b"to=\"bob@example.com/phone\"" in o.out, "the opened message is whole",
                o.out_text)
        # The signer is also a recipient, and -i names the signer exactly.
        o2 = run("open", *SM, "--identity", t.path("alice.pem"), "-i", t.path("alice.crt"),
                 input=r.out)
        t.check(o2.rc == EXIT_OK and payload in o2.out, "the sender opens her own", o2.describe())

# --- unauthenticated children and attributes of the outer stanza are dropped ---
if sealed_msg:
    forged = sealed_msg.replace(b"<e2e ", b"<body>INJECTED</body><x xmlns='urn:evil'/><e2e ", 1)
    forged = forged.replace(b"<message ", b"<message evil='1' ", 1)
    o = run(*CA, "open", *SM, *BOB, input=forged)
    t.check_rc(o, EXIT_OK, "open a message with clear children added on the way")
    t.check(b"INJECTED" not in o.out and b"urn:evil" not in o.out and b"evil=" not in o.out and
            b"Romeo" in o.out, "only the protected payload and routing attributes come out",
            o.out_text)
    t.check(sorted(status(o, "DROPPED")) == ["body jabber:client", "x urn:evil"],
            "a DROPPED status line for each added child", o.status_text)
    t.check(o.err_text.count("dropped the unprotected") == 2, "a warning for each", o.err_text)

# --- openssl reads ours ---
write(t.path("ours.der"), e2e_of(sealed_msg))
write(t.path("ours.p7m"), e2e_text(sealed_msg))
inner = sh("openssl", "cms", "-decrypt", "-in", t.path("ours.p7m"), "-recip", t.path("bob.crt"),
           "-inkey", t.path("bob.key")).stdout
write(t.path("inner.txt"), inner)
head = inner.split(b"\r\n\r\n", 1)[0]
t.check(b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; "
        b"micalg=sha-256; boundary=" in head and b"\n" not in inner.replace(b"\r\n", b""),
        "inside the EnvelopedData: multipart/signed, micalg=sha-256, CRLF line ends",
        inner.decode(errors="replace"))
parts = split_signed(inner)
t.check(parts[0].startswith(b"Content-Type: Message/CPIM\r\n") and
        parts[1].startswith(b"Content-Type: application/pkcs7-signature"),
        "part 1 is the Message/CPIM entity, part 2 application/pkcs7-signature",
        inner.decode(errors="replace"))
# Not -binary: openssl then rewrites part 1's CRLFs as LFs before checking the signature.
v = sh("openssl", "cms", "-verify", "-in", t.path("inner.txt"), "-CAfile", t.path("ca.crt"),
       check=False)
cpim = v.stdout.decode(errors="replace")
t.check(v.returncode == 0 and v.stdout == parts[0],
        "openssl cms -decrypt | cms -verify reads ours (S/MIME) and gives part 1",
        v.stderr.decode(errors="replace"))
t.check(cpim.startswith("Content-Type: Message/CPIM\r\n\r\n"), "a Message/CPIM entity", cpim)
t.check("\r\nFrom: <im:alice@example.com>\r\n" in cpim and
        "\r\nTo: <im:bob@example.com>\r\n" in cpim, "CPIM From/To are im: bare JIDs", cpim)
m = re.search(r"\r\nDateTime: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\r\n", cpim)
when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ") if m else None
now = datetime.datetime.utcnow()
t.check(when is not None and abs((now - when).total_seconds()) < 120,
        "CPIM DateTime is now (UTC, milliseconds)", cpim)
t.check("\r\n\r\nContent-Type: application/xmpp+xml\r\n\r\n<xmpp xmlns=\"jabber:client\"><message"
        in cpim and "Wherefore art thou, Romeo?" in cpim, "the body is application/xmpp+xml",
        cpim)

# --- gpgsm reads ours ---
gpgsm = shutil.which("gpgsm")
if not gpgsm:
    t.log("SKIP gpgsm part: gpgsm is not installed")
else:
    sh("openssl", "pkcs12", "-export", "-in", t.path("bob.crt"), "-inkey", t.path("bob.key"),
       "-certfile", t.path("ca.crt"), "-out", t.path("bob.p12"), "-passout", "pass:p12 secret", "-keypbe", "PBE-SHA1-3DES",
       "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1")
    gh = t.path("gnupg")
    os.mkdir(gh, 0o700)
    genv = dict(env, GNUPGHOME=gh)
    gargs = [gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    imp = subprocess.run(gargs + ["--import", t.path("bob.p12")], input=b"p12 secret\n",
                         env=genv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if imp.returncode != 0:
        t.log("SKIP gpgsm part: gpgsm --import of a PKCS#12 failed: %s" % imp.stderr[-300:])
    else:
        # The signer is a recipient too. When DER's SET OF order puts her recipient info first,
        # gpgsm 2.2 reports that it has no secret key for it, decrypts with bob's all the same,
        # and exits 2: the plaintext is what counts.
        subprocess.run(gargs + ["--import", t.path("alice.crt")], env=genv,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        # gpgsm speaks CMS, not MIME: it gets the DER of the application/pkcs7-mime body.
        g = subprocess.run(gargs + ["--decrypt", t.path("ours.der")], input=b"p12 secret\n",
                           env=genv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        t.check(g.stdout == inner, "gpgsm --decrypt reads ours (exit %d)" % g.returncode,
                g.stderr.decode(errors="replace")[-500:])
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=genv, timeout=30)


# --- we read openssl's ---
def cpim_text(frm="alice@example.com", to="bob@example.com", when=None, body=None,
              name="Juliet Capulet ", scheme="im"):
    when = when or datetime.datetime.utcnow()
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + "%02dZ" % (when.microsecond // 10000)
    if body is None:
        body = ("Content-Type: application/xmpp+xml\r\n\r\n<xmpp xmlns='jabber:client'>"
                "<message><body>from openssl</body></message></xmpp>")
    return ("Content-type: Message/CPIM\r\n\r\nFrom: %s<%s:%s>\r\nTo: <%s:%s>\r\n"
            "DateTime: %s\r\nSubject: Imploring\r\n\r\n%s"
            % (name, scheme, frm, scheme, to, stamp, body)).encode()


def openssl_object(text, signer="alice", to="bob", sign=True):
    write(t.path("cpim.txt"), text)
    data = text
    if sign:
        data = sh("openssl", "cms", "-sign", "-binary", "-nodetach", "-in", t.path("cpim.txt"),
                  "-signer", t.path(signer + ".crt"), "-inkey", t.path(signer + ".key"),
                  "-outform", "DER").stdout
    return sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER",
              t.path(to + ".crt"), input=data).stdout


OUTER = b"<message from='alice@example.com/x' to='bob@example.com/y' id='o1'><e2e/></message>"
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text())))
t.check(r.rc == EXIT_OK and b"<body>from openssl</body>" in r.out and b"id=\"o1\"" in r.out,
        "open openssl's (xmpp+xml body)", r.describe())
plain_body = "Content-type: text/plain; charset=utf-8\r\nContent-ID: <1@example.com>\r\n\r\nHi"
r = run(*CA, "open", *SM, *BOB,
        input=with_e2e(OUTER, openssl_object(cpim_text(body=plain_body))))
t.check(r.rc == EXIT_OK and b"<body>Hi</body>" in r.out, "open openssl's (text/plain body, §3)",
        r.describe())
# RFC 3923 §4: presence as a PIDF document (RFC 3863) in the CPIM wrapper, pres: URIs.
PIDF = ("Content-Type: application/pidf+xml\r\nContent-ID: <7891234@example.com>\r\n\r\n"
        "<?xml version='1.0' encoding='UTF-8'?>\n<presence xmlns='urn:ietf:params:xml:ns:pidf' "
        "xmlns:im='urn:ietf:params:xml:ns:pidf:im' entity='pres:alice@example.com'>"
        "<tuple id='hr0zny'><status><basic>%s</basic><im:im>%s</im:im></status>"
        "<note xml:lang='en'>retired to the chamber</note>"
        "<timestamp>2003-12-09T11:45:36.66Z</timestamp></tuple></presence>")
POUTER = b"<presence from='alice@example.com/x' to='bob@example.com' id='p9'><e2e/></presence>"
for basic, im, want_type, want_show in (("open", "away", None, "away"),
                                        ("open", "busy", None, "dnd"),
                                        ("closed", "away", "unavailable", None)):
    what = "open a PIDF presence (%s, %s)" % (basic, im)
    r = run(*CA, "open", *SM, *BOB, input=with_e2e(POUTER, openssl_object(
        cpim_text(body=PIDF % (basic, im), scheme="pres"))))
    if t.check_rc(r, EXIT_OK, what):
        e = ET.fromstring(r.out.decode().splitlines()[0])
        t.check(e.tag == "{jabber:client}presence" and e.get("type") == want_type and
                e.findtext("{jabber:client}show") == want_show and
                e.findtext("{jabber:client}status") == "retired to the chamber" and
                e.get("id") == "p9", what + ": type, show and status", r.out)
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(
    cpim_text(body=PIDF % ("open", "away")))))
refused(r, EXIT_INPUT, "a PIDF document in a <message/>")
r = run(*CA, "open", *SM, *BOB, input=with_e2e(POUTER, openssl_object(
    cpim_text(body=PIDF % ("maybe", "away"), scheme="pres"))))
refused(r, EXIT_INPUT, "a PIDF <basic/> neither open nor closed")

der = openssl_object(cpim_text())
mime = (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(der))
r = run(*CA, "open", *SM, *BOB, input=OUTER.replace(
    b"<e2e/>", b"<e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'><![CDATA[" + mime + b"]]></e2e>"))
t.check(r.rc == EXIT_OK and b"<body>from openssl</body>" in r.out,
        "open an <e2e/> holding an application/pkcs7-mime entity", r.describe())


# The standard S/MIME pipelines (default output: MIME, not DER), whole into <e2e/>.
def openssl_smime(text, signer="alice", to="bob", detach=True):
    write(t.path("cpim.txt"), text)
    signed = sh("openssl", "cms", "-sign", *([] if detach else ["-nodetach"]), "-signer",
                t.path(signer + ".crt"), "-inkey", t.path(signer + ".key"), "-in",
                t.path("cpim.txt")).stdout
    return with_mime(OUTER, sh("openssl", "cms", "-encrypt", "-aes256", t.path(to + ".crt"),
                               input=signed).stdout)


r = run(*CA, "open", *SM, *BOB, input=openssl_smime(cpim_text()))
t.check(r.rc == EXIT_OK and b"<body>from openssl</body>" in r.out and
        status(r, "SIGNATURE") == ["good CN=alice"],
        "open openssl's S/MIME (cms -sign | cms -encrypt: multipart/signed)", r.describe())
r = run(*CA, "open", *SM, *BOB, input=openssl_smime(cpim_text(), detach=False))
t.check(r.rc == EXIT_OK and b"<body>from openssl</body>" in r.out,
        "open openssl's S/MIME with -nodetach (pkcs7-mime signed-data)", r.describe())
r = run(*CA, "open", *SM, *BOB, input=openssl_smime(cpim_text(), signer="self"))
refused(r, EXIT_CRYPTO, "S/MIME: signer without a path to the CA")
r = run(*CA, "open", *SM, *BOB, input=openssl_smime(cpim_text(), signer="eve"))
refused(r, EXIT_CRYPTO, "S/MIME: eve signs From alice")
r = run(*CA, "open", *SM, *BOB, input=openssl_smime(cpim_text(to="carol@example.com"),
                                                    detach=False))
refused(r, EXIT_CRYPTO, "S/MIME -nodetach: protected To mismatch")


def reencrypt(entity):
    """Our stanza with |entity| (a signed layer) encrypted to bob by openssl."""
    write(t.path("entity.txt"), entity)
    mime = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-in", t.path("entity.txt"),
              t.path("bob.crt")).stdout
    return with_mime(sealed_msg.split(b"<e2e")[0] + b"<e2e/></message>", mime)


r = run(*CA, "open", *SM, *BOB, "--max-age", "3600", input=reencrypt(inner))
t.check(r.rc == EXIT_OK and b"Romeo" in r.out, "our multipart/signed, encrypted by openssl",
        r.describe())
r = run(*CA, "open", *SM, *BOB, "--max-age", "3600",
        input=reencrypt(inner.replace(b"\r\n", b"\n")))
t.check(r.rc == EXIT_OK and b"Romeo" in r.out,
        "multipart/signed with LF line ends (signature over the CRLF form)", r.describe())
r = run(*CA, "open", *SM, *BOB, "--max-age", "3600",
        input=reencrypt(inner.replace(b"Romeo", b"Tybalt")))
refused(r, EXIT_CRYPTO, "tampered multipart/signed part 1")
t.check(status(r, "SIGNATURE") == ["bad CN=alice"], "tampered part 1: SIGNATURE bad CN=alice",
        r.status_text)
r = run(*CA, "open", *SM, *BOB, "--max-age", "3600",
        input=reencrypt(inner.replace(b"Content-Type: application/pkcs7-signature;",
                                      b"Content-Type: text/plain;")))
refused(r, EXIT_CRYPTO, "multipart/signed with a text/plain signature part")

# --- refusals ---
bad = bytearray(e2e_of(sealed_msg))
bad[len(bad) // 2] ^= 0x01
r = run(*CA, "open", *SM, *BOB, input=with_e2e(
    b"<message from='alice@example.com/home' to='bob@example.com/phone'><e2e/></message>",
    bytes(bad)))
refused(r, EXIT_CRYPTO, "tampered")
r = run(*CA, "open", *SM, "--identity", t.path("eve.pem"), input=sealed_msg)
refused(r, EXIT_CRYPTO, "not for us (wrong recipient)")
r = run(*CA, "open", *SM, *BOB,
        input=sealed_msg.replace(b"from=\"alice@example.com/home\"", b"from=\"eve@example.com/x\""))
refused(r, EXIT_CRYPTO, "From mismatch (re-addressed sender)")
r = run(*CA, "open", *SM, *BOB,
        input=sealed_msg.replace(b"to=\"bob@example.com/phone\"", b"to=\"carol@example.com\""))
refused(r, EXIT_CRYPTO, "To mismatch (forwarded)")
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(to="carol@example.com"))))
refused(r, EXIT_CRYPTO, "To mismatch (protected To)")
old = datetime.datetime.utcnow() - datetime.timedelta(days=8)
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(when=old))))
refused(r, EXIT_CRYPTO, "stale DateTime (8 days, default --max-age)")
r = run(*CA, "open", *SM, *BOB, "--max-age", "864000",
        input=with_e2e(OUTER, openssl_object(cpim_text(when=old))))
t.check(r.rc == EXIT_OK, "--max-age 864000 accepts 8 days", r.describe())
hour_ago = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
r = run(*CA, "open", *SM, *BOB, "--max-age", "300",
        input=with_e2e(OUTER, openssl_object(cpim_text(when=hour_ago))))
refused(r, EXIT_CRYPTO, "stale DateTime (--max-age 300, RFC 3923's five minutes)")
ahead = datetime.datetime.utcnow() + datetime.timedelta(hours=1)
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(when=ahead))))
refused(r, EXIT_CRYPTO, "DateTime in the future")


# --- --error-reply: RFC 3923 §7's error stanza on stdout, the same exit status ---
def error_reply(r, what, defined, app, alt=None):
    t.check_rc(r, EXIT_CRYPTO, what)
    lines = r.out.decode().splitlines()
    t.check(len(lines) == 1, what + ": one stanza on stdout", r.describe())
    if len(lines) != 1:
        return
    e = ET.fromstring(lines[0])
    t.check(e.tag == "{jabber:client}message" and e.get("type") == "error" and
            e.get("to", "").startswith("alice@example.com/") and
            e.get("from", "").startswith("bob@example.com/"),
            what + ": a message error back to the sender", lines[0][:300])
    err = e.find("{jabber:client}error")
    conds = [c.tag for c in err] if err is not None else []
    want = [["{urn:ietf:params:xml:ns:xmpp-stanzas}" + d, "{urn:ietf:params:xml:ns:xmpp-e2e}" + a]
            for d, a in [(defined, app)] + ([alt] if alt else [])]
    t.check(conds in want, what + ": <%s/> with <%s/>" % (defined, app) +
            (" (or <%s/> with <%s/>)" % alt if alt else ""), conds)
    t.check(e.find("{urn:ietf:params:xml:ns:xmpp-e2e}e2e") is not None,
            what + ": the <e2e/> echoed", lines[0][:300])


r = run(*CA, "open", *SM, *BOB, "--error-reply", input=with_e2e(
    b"<message from='alice@example.com/home' to='bob@example.com/phone'><e2e/></message>",
    bytes(bad)))
# CBC has no integrity of its own: a flipped bit mostly decrypts, to a signature that fails.
error_reply(r, "--error-reply, tampered", "not-acceptable", "signature-unverified",
            ("bad-request", "decryption-failed"))
r = run(*CA, "open", *SM, "--identity", t.path("eve.pem"), "--error-reply", input=sealed_msg)
error_reply(r, "--error-reply, not for us", "bad-request", "decryption-failed")
r = run(*CA, "open", *SM, *BOB, "--max-age", "300", "--error-reply",
        input=with_e2e(OUTER, openssl_object(cpim_text(when=hour_ago))))
error_reply(r, "--error-reply, stale DateTime", "not-acceptable", "bad-timestamp")
r = run(*CA, "open", *SM, *BOB, "--error-reply", input=with_e2e(OUTER, openssl_object(
    cpim_text(), signer="eve")))
error_reply(r, "--error-reply, eve signed alice's message", "not-acceptable",
            "signature-unverified")
r = run(*CA, "open", *SM, *BOB, "--error-reply", input=with_e2e(OUTER, openssl_object(
    cpim_text(to="carol@example.com"))))
refused(r, EXIT_CRYPTO, "--error-reply, protected To mismatch: not a §7 case, no reply")
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(), sign=False)))
refused(r, EXIT_CRYPTO, "unsigned")
t.check(status(r, "SIGNATURE") == ["none"], "unsigned: SIGNATURE none", r.status_text)
r = run("open", *SM, *BOB, "-i", t.path("eve.crt"), input=sealed_msg)
refused(r, EXIT_CRYPTO, "wrong signer (-i eve)")
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(), signer="self")))
refused(r, EXIT_CRYPTO, "signer without a path to the CA")
r = run(*CA, "open", *SM, *BOB, input=with_e2e(OUTER, openssl_object(cpim_text(), signer="eve")))
refused(r, EXIT_CRYPTO, "signer's certificate names someone else (eve signs From alice)")
r = run("--ca-file", t.path("self.crt"), "open", *SM, *BOB,
        input=with_e2e(OUTER, openssl_object(cpim_text(), signer="self")))
refused(r, EXIT_CRYPTO, "signer's certificate names no XMPP address (CA trust)")
r = run("open", *SM, *BOB, "-i", t.path("self.crt"),
        input=with_e2e(OUTER, openssl_object(cpim_text(), signer="self")))
t.check(r.rc == EXIT_OK and b"from openssl" in r.out,
        "-i accepts a certificate without an XMPP address", r.describe())
r = run(*CA, "open", *SM, *BOB, input=sealed_msg.replace(b"from=\"alice@example.com/home\"",
                                                        b"from=\"Alice@Example.com/home\""))
t.check(r.rc == EXIT_OK, "JIDs compare without case", r.describe())
r = run(*CA, "open", *SM, *BOB, "--allow-unsigned", input=sealed_msg)
refused(r, EXIT_INPUT, "--allow-unsigned is refused for stanzas")

# --- identity files: every form load_x509_identity reads, and its refusals ---
def run_pass(passphrase, *args, input=b""):
    """Runs esession with --passphrase-fd 4 reading |passphrase|."""
    pr, pw = os.pipe()
    os.write(pw, passphrase + b"\n")
    os.close(pw)
    p = subprocess.Popen([t.esession, "--passphrase-fd", str(pr)] + list(args),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         pass_fds=[pr], env=env)
    os.close(pr)
    out, err = p.communicate(input, timeout=120)
    return Result(list(args), p.returncode, out, err, b"")


write(t.path("bob-keyfirst.pem"), read(t.path("bob.key")) + read(t.path("bob.crt")))
r = run(*CA, "open", *SM, "--identity", t.path("bob-keyfirst.pem"), input=sealed_msg)
t.check(r.rc == EXIT_OK and b"Romeo" in r.out, "identity PEM with the key first", r.describe())
sh("openssl", "pkcs12", "-export", "-in", t.path("bob.crt"), "-inkey", t.path("bob.key"),
   "-out", t.path("bob-nopass.p12"), "-passout", "pass:")
r = run(*CA, "open", *SM, "--identity", t.path("bob-nopass.p12"), input=sealed_msg)
t.check(r.rc == EXIT_OK and b"Romeo" in r.out, "identity PKCS#12 (AES, no passphrase)",
        r.describe())
sh("openssl", "pkey", "-in", t.path("bob.key"), "-aes256", "-passout", "pass:pem secret",
   "-out", t.path("bob-p8.key"))
write(t.path("bob-p8.pem"), read(t.path("bob.crt")) + read(t.path("bob-p8.key")))
r = run_pass(b"pem secret", *CA, "open", *SM, "--identity", t.path("bob-p8.pem"),
             input=sealed_msg)
t.check(r.rc == EXIT_OK and b"Romeo" in r.out, "identity PEM with an encrypted PKCS#8 key",
        r.describe())
r = run_pass(b"wrong", *CA, "open", *SM, "--identity", t.path("bob-p8.pem"), input=sealed_msg)
refused(r, EXIT_CRYPTO, "identity PEM, wrong passphrase")
sh("openssl", "rsa", "-in", t.path("bob.key"), "-aes128", "-traditional", "-passout",
   "pass:pem secret", "-out", t.path("bob-trad.key"))
write(t.path("bob-trad.pem"), read(t.path("bob.crt")) + read(t.path("bob-trad.key")))
r = run_pass(b"pem secret", "seal", *SM, "-i", t.path("bob-trad.pem"), "-r", t.path("alice.crt"),
             input=MSG.encode())
t.check(r.rc == EXIT_OK and b"<e2e" in r.out,
        "identity PEM with a traditional encrypted key (DEK-Info AES-128-CBC)", r.describe())
write(t.path("mixed.pem"), read(t.path("alice.crt")) + read(t.path("bob.key")))
r = seal(MSG, signer="mixed.pem")
refused(r, EXIT_INPUT, "identity PEM whose key is not the certificate's")
t.check("does not belong to the certificate" in r.err_text, "says the key does not belong",
        r.describe())
write(t.path("nokey.pem"), read(t.path("alice.crt")))
r = seal(MSG, signer="nokey.pem")
refused(r, EXIT_INPUT, "identity PEM without a key")
write(t.path("twokeys.pem"), read(t.path("alice.pem")) + read(t.path("bob.key")))
r = seal(MSG, signer="twokeys.pem")
refused(r, EXIT_INPUT, "identity PEM with two keys")

# --- malformed ---
r = run(*CA, "open", *SM, *BOB, input=OUTER.replace(
    b"<e2e/>", b"<e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'>not base64!</e2e>"))
refused(r, EXIT_INPUT, "<e2e/> that is not base64")
r = run(*CA, "open", *SM, *BOB, input=b"<message to='bob@example.com'><body>x</body></message>")
refused(r, EXIT_INPUT, "no <e2e/>")
r = run(*CA, "open", *SM, *BOB,
        input=with_e2e(OUTER, openssl_object(b"Content-Type: text/plain\r\n\r\nhello")))
refused(r, EXIT_INPUT, "not a Message/CPIM object")
r = seal("<message to='bob@example.com'><body>x</body></message>")
refused(r, EXIT_INPUT, "seal without from")
r = seal("<foo xmlns='urn:example'/>")
refused(r, EXIT_INPUT, "seal something that is not a stanza")

# --- signed only (RFC 3923: "sign and/or encrypt") ---
r = seal(MSG, "--mode", "sign", to=())
t.check_rc(r, EXIT_OK, "seal --mode sign")
signed_line = r.out
# The <e2e/> text as an XML parser gives it (the clear part has markup, escaped).
entity = ET.fromstring(signed_line).findtext("{urn:ietf:params:xml:ns:xmpp-e2e}e2e").encode()
t.check(entity.startswith(b"MIME-Version: 1.0\r\nContent-Type: multipart/signed") and
        b"Wherefore art thou, Romeo?" in entity,
        "--mode sign: the multipart/signed entity itself in <e2e/>, CRLF kept", entity[:300])
v = sh("openssl", "cms", "-verify", "-CAfile", t.path("ca.crt"), input=entity, check=False)
t.check(v.returncode == 0 and v.stdout.startswith(b"Content-Type: Message/CPIM"),
        "openssl cms -verify reads our signed-only object", v.stderr.decode(errors="replace"))
o = run(*CA, "open", *SM, *BOB, input=signed_line)
t.check(o.rc == EXIT_OK and b"<body>Wherefore art thou, Romeo?</body>" in o.out and
        b"not encrypted" in o.err and status(o, "SIGNATURE") == ["good CN=alice"],
        "open our signed-only object (good signature, a warning)", o.describe())
refused(run(*CA, "open", *SM, *BOB, input=signed_line.replace(b"Romeo", b"Rameo")), EXIT_CRYPTO,
        "signed only, content modified")
refused(run(*CA, "open", *SM, *BOB, "-i", t.path("eve.crt"), input=signed_line), EXIT_CRYPTO,
        "signed only, wrong signer (-i eve)")
write(t.path("cpim.txt"), cpim_text())
for detach, form in ((True, "escaped"), (True, "CDATA"), (False, "escaped")):
    made = sh("openssl", "cms", "-sign", *([] if detach else ["-nodetach"]), "-signer",
              t.path("alice.crt"), "-inkey", t.path("alice.key"), "-in", t.path("cpim.txt")).stdout
    if form == "CDATA":  # the parser turns CRLF into LF: the signature covers the CRLF form
        text = b"<![CDATA[" + made + b"]]>"
    else:
        text = made.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b"\r", b"&#xD;")
    o = run(*CA, "open", *SM, *BOB, input=with_mime(OUTER, text))
    t.check(o.rc == EXIT_OK and b"<body>from openssl</body>" in o.out,
            "open openssl's signed-only object (%s, %s)" % (
                "multipart/signed" if detach else "signed-data", form), o.describe())
refused(seal(MSG, "--mode", "sign"), EXIT_INPUT, "seal --mode sign with -r")
refused(seal(MSG, "--mode", "crypt"), EXIT_INPUT, "seal --mode crypt (unauthenticated CBC)")

# --- streams: any number of stanzas in one run, each its own object, one line out each ---
r = seal(MSG + "\n" + PRES + "\n" + IQ)
t.check_rc(r, EXIT_OK, "stream: seal three stanzas")
lines = r.out.splitlines()
t.check(len(lines) == 3 and len(status(r, "SEALED")) == 3, "stream: three sealed lines",
        r.describe())
if len(lines) == 3:
    # open goes on past a refused stanza; --error-reply answers it in its place.
    tampered = with_e2e(b"<message from='alice@example.com/home' to='bob@example.com/phone'>"
                        b"<e2e/></message>", bytes(bad))
    r = run(*CA, "open", *SM, *BOB, "--error-reply",
            input=b"\n".join([lines[0], tampered, lines[1], lines[2]]))
    t.check_rc(r, EXIT_CRYPTO, "stream: open with a tampered stanza among good ones")
    out = r.out.decode().splitlines()
    t.check(len(out) == 4 and "Romeo" in out[0] and 'type="error"' in out[1] and
            "balcony" in out[2] and "jabber:iq:version" in out[3],
            "stream: three opened and one error reply, in order", r.describe())
    errs = [l for l in r.err_text.splitlines() if l.startswith("esession: error")]
    t.check(len(errs) == 1 and len(status(r, "OPENED")) == 3 and len(status(r, "ERROR")) == 1,
            "stream: one error line, three OPENED, one ERROR", r.describe())
r = seal(MSG + "<message to='bob@example.com'><body>x</body></message>" + MSG)
t.check_rc(r, EXIT_INPUT, "stream: seal stops at a stanza without from")
t.check(len(r.out.splitlines()) == 1, "stream: what came before is sealed", r.describe())
refused(seal(""), EXIT_INPUT, "seal: empty input")
refused(run(*CA, "open", *SM, *BOB, input=b""), EXIT_INPUT, "open: empty input")

t.finish()
