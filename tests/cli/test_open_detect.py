#!/usr/bin/env python3
"""cli.open-detect: `esession open` without --format tells the format from the input (issue 13,
defect 10).

    test_open_detect.py ESESSION [ESESSION_COUNTERS]

Checks, each with the FORMAT status line it gives and what comes out:
- files: OpenPGP messages that gpg made, binary and ASCII-armored, from a file and from a pipe
  (the bytes detection read are not lost: a 3 MiB message comes out whole); CMS objects that
  openssl cms made (DER, and BER from -stream), from a file and from a pipe, with and without
  --file; an aesgcm file opened with its key alone (the key names the format);
- stanzas: an ox stanza sealed here, one shaped as Profanity sends it (a clear fallback <body/>,
  <encryption/> and hints beside <openpgp/>, <time stamp='...+0000'/> in the signed content),
  an smime stanza, and a stream of two ox stanzas;
- --format still overrides (an ox stanza and a CMS file opened with it);
- refusals with exit status 2, one error line (its hint) and nothing on standard output: an
  aesgcm file without its key, a file of garbage, an empty input, CMS as openssl's default
  S/MIME output and as PEM (the conversion the hint gives then opens), OpenPGP armor that is not
  a message, a stanza with neither <openpgp/> nor <e2e/>, one with both, stanzas with --file;
  in a stream, a later stanza of another format (unsealed; ox after smime) is refused on its
  own and the others opened; a stanza on a pipe the writer holds open is opened at once;
- a 64 MiB CMS stream (ESESSION_BIG_SIZE) through seal | open without --format, in constant
  memory (peak RSS under 64 MiB, where /usr/bin/time exists).
The gpg and openssl parts skip, saying why, when the tool is not installed.
"""

import base64
import datetime
import hashlib
import os
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET

from clitest import EXIT_INPUT, EXIT_OK, GnuPGHomes, Test, memory_bound
from clitest import read_bytes as read, write_bytes as write

NS_OX = "urn:xmpp:openpgp:0"
NS_E2E = "urn:ietf:params:xml:ns:xmpp-e2e"
NS_CLIENT = "jabber:client"

t = Test("cli.open-detect")
env = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
           TMPDIR=t.dir)
env.pop("XDG_DATA_HOME", None)
env.pop("GNUPGHOME", None)
have_gpg = bool(shutil.which("gpg") and shutil.which("gpgconf"))
have_openssl = bool(shutil.which("openssl"))
ox = None  # an ox stanza sealed in the gpg part


def run(*args, input=b"", env_=None):
    """esession with --status-fd; |input| is bytes (a pipe) or a path (a regular file)."""
    return t.run(None, *args, input=input, status=True, env=env_ or env, timeout=120)


def status(r, keyword):
    return [l.split(" ", 2)[2] if l.count(" ") >= 2 else ""
            for l in r.status_text.splitlines() if l.split(" ")[1:2] == [keyword]]


def opened(r, what, fmt, want_out=None):
    """|r| opened a |fmt| object without --format."""
    if not t.check_rc(r, EXIT_OK, what):
        return False
    t.check(status(r, "FORMAT") == [fmt], what + ": FORMAT " + fmt, r.status_text)
    t.check(len(status(r, "OPENED")) == 1 and status(r, "OPENED")[0].split()[0] == fmt,
            what + ": OPENED " + fmt, r.status_text)
    if want_out is not None:
        t.check(r.out == want_out, what + ": the plaintext", r.out[:200])
    return True


def refused(r, what, contains, rc=EXIT_INPUT, hint=None):
    t.check_rc(r, rc, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", what + ": nothing on standard output", r.out[:200])
    t.check(not status(r, "OPENED"), what + ": no OPENED", r.status_text)
    if hint:
        t.check(hint in r.err_text, what + ": the hint mentions %r" % hint, r.err_text)


def sh(*args, input=None, env_=None):
    p = subprocess.run(list(args), input=input, capture_output=True, env=env_ or env, timeout=120)
    if p.returncode != 0:
        t.check(False, "%s failed" % " ".join(args), p.stderr.decode(errors="replace"))
        t.finish()
    return p.stdout


def stamp(z="Z"):
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + z


# --- no tool needed: aesgcm, garbage, stanzas that are neither ---
plain = os.urandom(200000)
write(t.path("plain"), plain)
# An aesgcm file is ciphertext from its first byte. Detection refuses whatever no format
# defines; keep a file whose first byte cannot begin a sealed object, stanzas or text (the
# others are what the checks below cover).
for attempt in range(64):
    for f in ("a.enc", "a.key"):
        if os.path.exists(t.path(f)):
            os.unlink(t.path(f))
    r = run("seal", "--file", "--format", "aesgcm", "--key-out", t.path("a.key"), "-o",
            t.path("a.enc"), t.path("plain"))
    if not t.check_rc(r, EXIT_OK, "seal aesgcm"):
        t.finish()
    first = read(t.path("a.enc"))[0]
    if first < 0x80 and (first < 0x20 or first > 0x7e) and first not in b"0\t\r\n":
        break
r = run("open", "--file", t.path("a.enc"))
refused(r, "an aesgcm file without its key", "cannot tell the format of " + t.path("a.enc"),
        hint="--key-file")
r = run("open", input=t.path("a.enc"))
refused(r, "an aesgcm file on standard input, without --file or its key",
        "cannot tell the format of standard input", hint="--key-file")
r = run("open", "--key-file", t.path("a.key"), "-o", t.path("a.out"), t.path("a.enc"))
if opened(r, "an aesgcm file with its key alone", "aesgcm"):
    t.check(read(t.path("a.out")) == plain, "aesgcm: the plaintext")
r = run("open", "--key-file", t.path("a.key"), input=read(t.path("a.enc")))
opened(r, "an aesgcm file from a pipe with its key alone", "aesgcm", plain)

write(t.path("garbage"), b"This is not sealed.\n" * 10)
refused(run("open", "--file", t.path("garbage")), "a text file",
        "cannot tell the format of %s: not an OpenPGP message, a CMS object or stanzas (it "
        "begins with 'This is not sealed.')" % t.path("garbage"))
refused(run("open", input=b"\x00\x01\x02\x03" * 100), "binary garbage on a pipe",
        "its first bytes are 00 01 02 03 00 01 02 03")
refused(run("open", input=b""), "an empty input", "it is empty")
refused(run("open", "--file", input=b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ\n"),
        "OpenPGP armor of a key", "OpenPGP armor, but not of a message")

NEITHER = (b"<message xmlns='jabber:client' from='a@example.org/x' to='b@example.org/y'>"
           b"<body>hi</body><x xmlns='urn:other'/></message>")
refused(run("open", input=NEITHER), "a stanza with neither <openpgp/> nor <e2e/>",
        "no <openpgp xmlns='urn:xmpp:openpgp:0'/> (ox) or <e2e xmlns='%s'/> (smime) among its "
        "children; it has <body/> in jabber:client, <x/> in urn:other" % NS_E2E,
        hint="--format ox or --format smime")
BOTH = (b"<message xmlns='jabber:client' from='a@example.org/x' to='b@example.org/y'>"
        b"<openpgp xmlns='urn:xmpp:openpgp:0'>AAAA</openpgp>"
        b"<e2e xmlns='urn:ietf:params:xml:ns:xmpp-e2e'>AAAA</e2e></message>")
refused(run("open", input=BOTH), "a stanza with both <openpgp/> and <e2e/>",
        "it has both", hint="--format ox or --format smime")
refused(run("open", "--file", input=BOTH), "stanzas with --file", "as stanzas do",
        hint="without --file")
refused(run("open", input=b"  \n<message><body>not closed"), "a truncated first stanza",
        "input: ")

# --- gpg: OpenPGP files, ox stanzas ---
t.log("gpg part")
if not have_gpg:
    t.log("SKIP the OpenPGP and ox part: gpg is not installed")
else:
    g = GnuPGHomes(t, "eod")
    genv = dict(g.env)

    def make_home(who):
        g.new(who)
        g.gpg(who, "--quick-gen-key", "xmpp:%s@example.org" % who, "ed25519", "sign", "never")
        out = g.gpg(who, "--with-colons", "--list-keys").stdout.decode()
        f = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
        g.gpg(who, "--quick-add-key", f, "cv25519", "encr", "never")
        return f

    try:
        fpr = {w: make_home(w) for w in ("alice", "bob")}
        for a, b in (("alice", "bob"), ("bob", "alice")):
            g.gpg(a, "--import", input=g.gpg(b, "--export", fpr[b]).stdout)
            g.gpg(a, "--quick-lsign-key", fpr[b])
        BOBG = ["--gnupg-home", g.homes["bob"]]

        big_plain = os.urandom(3 << 20)
        enc = g.gpg("alice", "--sign", "-u", fpr["alice"], "--encrypt", "-r", fpr["bob"],
                    input=big_plain).stdout
        write(t.path("m.gpg"), enc)
        asc = g.gpg("alice", "--armor", "--encrypt", "-r", fpr["bob"], input=plain).stdout
        write(t.path("m.asc"), b"\n" + asc)  # a blank line before the armor
        t.check(asc.startswith(b"-----BEGIN PGP MESSAGE-----"), "gpg --armor wrote armor")

        r = run(*BOBG, "open", "-o", t.path("m.out"), t.path("m.gpg"), env_=genv)
        if opened(r, "a binary OpenPGP file (no --file)", "openpgp"):
            t.check(read(t.path("m.out")) == big_plain, "OpenPGP file: the plaintext")
            t.check(status(r, "SIGNATURE") == ["good " + fpr["alice"]], "SIGNATURE good",
                    r.status_text)
        r = run(*BOBG, "open", "--file", input=enc, env_=genv)
        opened(r, "a 3 MiB binary OpenPGP message from a pipe", "openpgp", big_plain)
        r = run(*BOBG, "open", "--file", input=t.path("m.asc"), env_=genv)
        opened(r, "an armored OpenPGP file on standard input", "openpgp", plain)
        r = run(*BOBG, "open", input=read(t.path("m.asc")), env_=genv)
        opened(r, "an armored OpenPGP message from a pipe", "openpgp", plain)
        # The override: --format still chooses.
        r = run(*BOBG, "open", "--file", "--format", "openpgp", input=enc, env_=genv)
        t.check(r.rc == EXIT_OK and r.out == big_plain and not status(r, "FORMAT"),
                "--format openpgp: opened, no FORMAT line", r.describe())

        # ox stanzas.
        MSG = ("<message xmlns='jabber:client' from='alice@example.org/phone' "
               "to='bob@example.org/laptop' type='chat' id='m1'><body>Hi Bob</body></message>")
        s = run("--gnupg-home", g.homes["alice"], "seal", "--format", "ox", input=MSG.encode(),
                env_=genv)
        if t.check_rc(s, EXIT_OK, "seal ox"):
            ox = s.out
            r = run(*BOBG, "open", input=ox, env_=genv)
            if opened(r, "an ox stanza", "ox"):
                t.check(ET.fromstring(r.out).findtext("{%s}body" % NS_CLIENT) == "Hi Bob",
                        "ox: the body", r.out)
            r = run(*BOBG, "open", input=ox + ox, env_=genv)
            if t.check_rc(r, EXIT_OK, "two ox stanzas"):
                t.check(status(r, "FORMAT") == ["ox"] and len(status(r, "OPENED")) == 2 and
                        r.out.count(b"Hi Bob") == 2, "two ox stanzas: one FORMAT, both opened",
                        r.out + r.status)
            r = run(*BOBG, "open", "--format", "ox", input=ox, env_=genv)
            t.check(r.rc == EXIT_OK and b"Hi Bob" in r.out and not status(r, "FORMAT"),
                    "--format ox: opened, no FORMAT line", r.describe())
            # A bridge's pipe: the first stanza is opened (and detection has passed the input
            # on) while the writer still holds the pipe open.
            p = subprocess.Popen([t.esession, "-q", *BOBG, "open"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=genv)
            p.stdin.write(ox.rstrip(b"\n") + b"\n")
            p.stdin.flush()
            line = []
            reader = threading.Thread(target=lambda: line.append(p.stdout.readline()),
                                      daemon=True)
            reader.start()
            reader.join(timeout=60)
            t.check(line and b"Hi Bob" in line[0],
                    "a stanza on a pipe held open: opened before the input ends", line)
            p.stdin.write(ox)
            p.stdin.close()
            rest = p.stdout.read()
            t.check(p.wait(timeout=60) == 0 and rest.count(b"Hi Bob") == 1,
                    "a stanza on a pipe held open: the next one too", rest)
            p.stderr.close()
            p.stdout.close()
            # A stanza of another kind later in the stream is refused on its own.
            r = run(*BOBG, "open", input=ox + b"\n" + NEITHER + b"\n" + ox, env_=genv)
            t.check_rc(r, EXIT_INPUT, "ox, an unsealed stanza, ox: the first refusal's status")
            t.check(r.out.count(b"Hi Bob") == 2 and r.out.count(b"\n") == 2,
                    "ox, unsealed, ox: the two ox stanzas opened", r.out)
            t.check("no <openpgp xmlns='urn:xmpp:openpgp:0'/> (ox) or" in r.err_text,
                    "ox, unsealed, ox: the unsealed one named", r.err_text)

        # A message shaped as Profanity sends it: a clear fallback <body/>, the EME and hints
        # beside <openpgp/>, and <time stamp='...+0000'/> in the signed content.
        content = ("<signcrypt xmlns='urn:xmpp:openpgp:0'><to jid='bob@example.org'/>"
                   "<time stamp='%s'/><rpad>pad</rpad><payload>"
                   "<body xmlns='jabber:client'>from profanity</body></payload></signcrypt>"
                   % stamp("+0000"))
        data = g.gpg("alice", "--sign", "-u", fpr["alice"], "--encrypt", "-r", fpr["bob"],
                     input=content.encode()).stdout
        prof = ("<message xmlns='jabber:client' type='chat' id='p1' to='bob@example.org' "
                "from='alice@example.org/profanity'><body>This message was encrypted with "
                "OpenPGP for XMPP (XEP-0373)</body><openpgp xmlns='urn:xmpp:openpgp:0'>%s"
                "</openpgp><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/>"
                "<store xmlns='urn:xmpp:hints'/></message>" % base64.b64encode(data).decode())
        r = run(*BOBG, "open", input=prof.encode(), env_=genv)
        if opened(r, "a Profanity-shaped ox stanza", "ox"):
            bodies = [e.text for e in ET.fromstring(r.out).findall("{%s}body" % NS_CLIENT)]
            t.check(bodies == ["from profanity"], "Profanity-shaped: only the sealed body", r.out)
            t.check(status(r, "DROPPED") == ["body jabber:client"],
                    "Profanity-shaped: the fallback body DROPPED", r.status_text)
    finally:
        g.close()

# --- openssl: CMS files, smime stanzas ---
t.log("openssl part")
if not have_openssl:
    t.log("SKIP the CMS and smime part: the openssl command is not installed")
else:
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", t.path("ca.key"),
       "-out", t.path("ca.crt"), "-subj", "/CN=Test-CA", "-days", "2")
    for n in ("alice", "bob"):
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
           t.path(n + ".key"), "-out", t.path(n + ".crt"), "-subj", "/CN=" + n, "-days", "2",
           "-CA", t.path("ca.crt"), "-CAkey", t.path("ca.key"), "-addext",
           "subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:%s@example.com" % n,
           "-addext", "basicConstraints=CA:FALSE",
           "-addext", "keyUsage=digitalSignature,keyEncipherment")
        write(t.path(n + ".pem"), read(t.path(n + ".crt")) + read(t.path(n + ".key")))
    BOB = ["--ca-file", t.path("ca.crt"), "open", "--identity", t.path("bob.pem")]

    signed = sh("openssl", "cms", "-sign", "-binary", "-nodetach", "-in", t.path("plain"),
                "-signer", t.path("alice.crt"), "-inkey", t.path("alice.key"), "-outform", "DER")
    write(t.path("signed.der"), signed)
    der = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-inform", "DER", "-outform",
             "DER", "-in", t.path("signed.der"), t.path("bob.crt"))
    write(t.path("c.cms"), der)
    ber = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-stream", "-inform", "DER",
             "-outform", "DER", "-in", t.path("signed.der"), t.path("bob.crt"))
    t.check(ber[:2] == b"\x30\x80", "openssl -stream wrote BER (indefinite length)", ber[:4])
    r = run(*BOB, "-o", t.path("c.out"), t.path("c.cms"))
    if opened(r, "a CMS file (DER, no --file)", "cms"):
        t.check(read(t.path("c.out")) == plain, "CMS file: the plaintext")
        t.check(status(r, "SIGNATURE") == ["good CN=alice"], "CMS: SIGNATURE good", r.status_text)
    opened(run(*BOB, "--file", input=der), "a CMS object from a pipe", "cms", plain)
    opened(run(*BOB, input=ber), "a BER CMS object (-stream) from a pipe", "cms", plain)
    r = run(*BOB, "--file", "--format", "cms", input=der)
    t.check(r.rc == EXIT_OK and r.out == plain and not status(r, "FORMAT"),
            "--format cms: opened, no FORMAT line", r.describe())

    # openssl cms writes S/MIME unless told -outform DER; and PEM with -outform PEM.
    smime_out = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-inform", "DER",
                   "-in", t.path("signed.der"), t.path("bob.crt"))
    write(t.path("c.p7m"), smime_out)
    refused(run(*BOB, "--file", t.path("c.p7m")), "openssl's default S/MIME output",
            "is an S/MIME message", hint="-inform SMIME -outform DER")
    sh("openssl", "cms", "-cmsout", "-inform", "SMIME", "-outform", "DER", "-in",
       t.path("c.p7m"), "-out", t.path("c.p7m.der"))
    opened(run(*BOB, t.path("c.p7m.der")), "the S/MIME output converted as the hint says", "cms",
           plain)
    pem = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-inform", "DER", "-outform",
             "PEM", "-in", t.path("signed.der"), t.path("bob.crt"))
    write(t.path("c.pem"), pem)
    refused(run(*BOB, input=pem), "CMS in PEM", "is CMS in PEM", hint="-inform PEM -outform DER")
    sh("openssl", "cms", "-cmsout", "-inform", "PEM", "-outform", "DER", "-in", t.path("c.pem"),
       "-out", t.path("c.pem.der"))
    opened(run(*BOB, t.path("c.pem.der")), "the PEM converted as the hint says", "cms", plain)

    # smime stanzas.
    MSG = ("<message from='alice@example.com/home' to='bob@example.com/phone' type='chat' "
           "id='m1'><body>Wherefore art thou?</body></message>")
    s = run("seal", "--format", "smime", "-i", t.path("alice.pem"), "-r", t.path("bob.crt"),
            input=MSG.encode())
    if t.check_rc(s, EXIT_OK, "seal smime"):
        r = run(*BOB, input=s.out)
        if opened(r, "an smime stanza", "smime"):
            t.check(b"Wherefore art thou?" in r.out and b"<e2e" not in r.out, "smime: the body",
                    r.out)
        r = run(*BOB, "--format", "smime", input=s.out)
        t.check(r.rc == EXIT_OK and b"Wherefore" in r.out and not status(r, "FORMAT"),
                "--format smime: opened, no FORMAT line", r.describe())
        # The first stanza chose smime: an ox stanza after it is refused on its own.
        if ox:
            r = run(*BOB, input=s.out + ox + s.out)
            t.check_rc(r, EXIT_INPUT, "smime, ox, smime: the ox stanza's status")
            t.check(r.out.count(b"Wherefore") == 2 and r.out.count(b"\n") == 2,
                    "smime, ox, smime: the two smime stanzas opened", r.out)
            t.check("the <message/> stanza is ox, not smime as the first stanza of the input"
                    in r.err_text, "smime, ox, smime: the ox one named", r.err_text)

    # A big CMS stream through pipes, without --format: detection passes it on in constant
    # memory.
    big = int(os.environ.get("ESESSION_BIG_SIZE", str(64 << 20)))
    rss_file = t.path("open.rss")
    timer = ["/usr/bin/time", "-f", "%M", "-o", rss_file] \
        if os.access("/usr/bin/time", os.X_OK) else []
    if not timer:
        t.log("SKIP the RSS check: /usr/bin/time is not installed")
    ps = subprocess.Popen([t.esession, "-q", "seal", "--file", "--format", "cms", "-r",
                           t.path("bob.crt"), "-i", t.path("alice.pem")],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    po = subprocess.Popen(timer + [t.esession, "-q", *BOB], stdin=ps.stdout,
                          stdout=subprocess.PIPE, env=env)
    ps.stdout.close()
    h_in, h_out = hashlib.sha256(), hashlib.sha256()

    def feed():
        block = os.urandom(1 << 20)
        left = big
        while left > 0:
            chunk = block[:min(left, len(block))]
            h_in.update(chunk)
            ps.stdin.write(chunk)
            left -= len(chunk)
        ps.stdin.close()

    th = threading.Thread(target=feed)
    th.start()
    got = 0
    while True:
        b = po.stdout.read(1 << 20)
        if not b:
            break
        got += len(b)
        h_out.update(b)
    th.join()
    rc_s, rc_o = ps.wait(), po.wait()
    t.check(rc_s == 0 and rc_o == 0, "big stream: exit statuses %s %s" % (rc_s, rc_o))
    t.check(got == big and h_in.digest() == h_out.digest(), "big stream: the same bytes out")
    if timer:
        rss = int(read(rss_file).split()[-1]) << 10
        t.log("open: peak RSS %.1f MiB" % (rss / (1 << 20)))
        t.check(rss < memory_bound(64 << 20), "big stream: open's peak RSS %d < 64 MiB" % rss)

t.finish()
