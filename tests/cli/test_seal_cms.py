#!/usr/bin/env python3
"""cli.seal-cms: `esession seal --file --format cms` and `esession open --file --format cms`.

    test_seal_cms.py ESESSION [ESESSION_COUNTERS]

Certificates are made with the openssl CLI. Checks: `openssl cms -decrypt` (and `-verify`)
reads what we seal, signed or not; `gpgsm --decrypt` reads it and we read `gpgsm --encrypt`'s
(skipped, saying why, when gpgsm cannot be driven); we open what `openssl cms -sign | openssl cms -encrypt` made, from files and
pipes, with a PEM or PKCS#12 identity; tampered, truncated, wrong-recipient, unsigned (without
--allow-unsigned) and wrong-signer objects are refused with their documented exit status and
SIGNATURE line, and release nothing (no destination file, empty standard output, an existing
destination untouched). The big stream runs generator | seal | open | hash through pipes with
ESESSION_BIG_SIZE bytes (default 512 MiB) and checks the peak RSS of both stays under 64 MiB.
"""

import hashlib
import os
import shutil
import subprocess
import threading

from clitest import EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, Result, Test, memory_bound
from clitest import read_bytes as read, write_bytes as write

RSS_LIMIT = memory_bound(64 << 20)

t = Test("cli.seal-cms")
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


def run(*args, input=b"", passphrase=None, timeout=120):
    """Runs esession with --status-fd; |passphrase| goes through --passphrase-fd."""
    argv = list(args)
    keep = []
    sr, sw = os.pipe()
    keep.append(sw)
    pre = ["--status-fd", str(sw)]
    pw = None
    if passphrase is not None:
        pr, pw = os.pipe()
        keep.append(pr)
        pre += ["--passphrase-fd", str(pr)]
    stdin, fin = subprocess.PIPE, None
    if isinstance(input, str):
        fin = open(input, "rb")
        stdin = fin
    p = subprocess.Popen([t.esession] + pre + argv, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, pass_fds=keep, env=env)
    for fd in keep:
        os.close(fd)
    if pw is not None:
        os.write(pw, passphrase + b"\n")
        os.close(pw)
    try:
        out, err = p.communicate(input if stdin == subprocess.PIPE else None, timeout=timeout)
    finally:
        if fin:
            fin.close()
    with os.fdopen(sr, "rb") as f:
        st = f.read()
    return Result(pre + argv, p.returncode, out, err, st)


def status(r, keyword):
    return [l.split(" ", 2)[2] if l.count(" ") >= 2 else ""
            for l in r.status_text.splitlines() if l.split(" ")[1:2] == [keyword]]


# --- certificates and identities ---
for n in ("alice", "bob", "eve"):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", t.path(n + ".key"),
       "-out", t.path(n + ".crt"), "-subj", "/CN=" + n, "-days", "2")
    write(t.path(n + ".pem"), read(t.path(n + ".crt")) + read(t.path(n + ".key")))
sh("openssl", "x509", "-in", t.path("bob.crt"), "-outform", "DER", "-out", t.path("bob.der"))
# PBE-SHA1-3DES: what gpgsm 2.2 reads (it does not know PBES2, OpenSSL 3's default).
sh("openssl", "pkcs12", "-export", "-in", t.path("bob.crt"), "-inkey", t.path("bob.key"),
   "-out", t.path("bob.p12"), "-passout", "pass:p12 secret", "-keypbe", "PBE-SHA1-3DES",
   "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1")

plain = os.urandom(300000)
write(t.path("plain"), plain)
CMS = ["--file", "--format", "cms"]
BOB = ["--identity", t.path("bob.pem")]

# --- seal: openssl reads ours ---
r = run("seal", *CMS, "-r", t.path("bob.der"), "-r", t.path("eve.crt"), "-i", t.path("alice.pem"),
        "-o", t.path("signed.cms"), t.path("plain"))
t.check_rc(r, EXIT_OK, "seal signed")
t.check(status(r, "SEALED") == ["cms %d" % len(plain)], "SEALED cms <bytes>", r.status_text)
inner = sh("openssl", "cms", "-decrypt", "-inform", "DER", "-in", t.path("signed.cms"),
           "-recip", t.path("bob.crt"), "-inkey", t.path("bob.key")).stdout
write(t.path("inner.der"), inner)
v = sh("openssl", "cms", "-verify", "-inform", "DER", "-in", t.path("inner.der"), "-CAfile",
       t.path("alice.crt"), check=False)
t.check(v.returncode == 0 and v.stdout == plain, "openssl cms -decrypt | -verify reads ours",
        v.stderr.decode(errors="replace"))
eve_inner = sh("openssl", "cms", "-decrypt", "-inform", "DER", "-in", t.path("signed.cms"),
               "-recip", t.path("eve.crt"), "-inkey", t.path("eve.key"), check=False)
t.check(eve_inner.returncode == 0 and eve_inner.stdout == inner, "the second recipient decrypts")

r = run("seal", *CMS, "-r", t.path("bob.crt"), input=plain)
t.check_rc(r, EXIT_OK, "seal unsigned, pipes")
t.check("not signed" in r.err_text, "seal without -i warns", r.describe())
write(t.path("unsigned.cms"), r.out)
d = sh("openssl", "cms", "-decrypt", "-inform", "DER", "-recip", t.path("bob.crt"), "-inkey",
       t.path("bob.key"), input=r.out, check=False)
t.check(d.returncode == 0 and d.stdout == plain, "openssl cms -decrypt reads ours (unsigned)")

# --- gpgsm reads ours ---
gpgsm = shutil.which("gpgsm")
if not gpgsm:
    t.log("SKIP gpgsm part: gpgsm is not installed")
else:
    gh = t.path("gnupg")
    os.mkdir(gh, 0o700)
    genv = dict(env, GNUPGHOME=gh)
    gargs = [gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    imp = subprocess.run(gargs + ["--import", t.path("bob.p12")], input=b"p12 secret\n",
                         env=genv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if imp.returncode != 0:
        t.log("SKIP gpgsm part: gpgsm --import of a PKCS#12 failed: %s" % imp.stderr[-300:])
    else:
        for name, want in (("unsigned.cms", plain), ("signed.cms", inner)):
            g = subprocess.run(gargs + ["--decrypt", t.path(name)], input=b"p12 secret\n",
                               env=genv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            t.check(g.returncode == 0 and g.stdout == want, "gpgsm --decrypt reads ours (%s)" % name,
                    g.stderr.decode(errors="replace")[-500:])
        # And we read gpgsm's (unsigned: gpgsm does not sign, then encrypt, in one go). The
        # self-signed certificate is trusted through trustlist.txt.
        lk = subprocess.run([gpgsm, "--with-colons", "--list-keys", "CN=bob"], env=genv,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        fpr = [l.split(":")[9] for l in lk.stdout.decode().splitlines() if l.startswith("fpr:")]
        with open(os.path.join(gh, "trustlist.txt"), "w") as f:
            f.write("%s S relax\n" % (fpr[0] if fpr else ""))
        g = subprocess.run([gpgsm, "--batch", "--disable-crl-checks", "-r", fpr[0] if fpr else
                            "CN=bob", "--encrypt", t.path("plain")], env=genv,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if g.returncode != 0:
            t.log("SKIP reading gpgsm's: gpgsm --encrypt failed: %s" % g.stderr[-300:])
        else:
            r = run("open", *CMS, "--identity", t.path("bob.pem"), "--allow-unsigned",
                    input=g.stdout)
            t.check(r.rc == EXIT_OK and r.out == plain, "we read gpgsm --encrypt's", r.describe())
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=genv, timeout=30)

# --- open: ours and theirs ---
r = run("--ca-file", t.path("alice.crt"), "open", *CMS, *BOB, "-o", t.path("out1"),
        t.path("signed.cms"))
t.check_rc(r, EXIT_OK, "open ours against the CA")
t.check(read(t.path("out1")) == plain, "open ours: the plaintext")
t.check(status(r, "SIGNATURE") == ["good CN=alice"], "SIGNATURE good CN=alice", r.status_text)
t.check(status(r, "OPENED") == ["cms %d" % len(plain)], "OPENED cms <bytes>", r.status_text)
t.check(os.stat(t.path("out1")).st_mode & 0o777 == 0o600, "the opened file has mode 0600")

signed_theirs = sh("openssl", "cms", "-sign", "-binary", "-nodetach", "-in", t.path("plain"),
                   "-signer", t.path("alice.crt"), "-inkey", t.path("alice.key"), "-outform",
                   "DER").stdout
theirs = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-inform", "DER", "-outform",
            "DER", t.path("bob.crt"), input=signed_theirs).stdout
write(t.path("theirs.cms"), theirs)
r = run("open", *CMS, "--identity", t.path("bob.p12"), "-i", t.path("alice.crt"), input=theirs,
        passphrase=b"p12 secret")
t.check_rc(r, EXIT_OK, "open theirs from a pipe with a PKCS#12 identity and -i")
t.check(r.out == plain, "open theirs: the plaintext on standard output")
t.check(status(r, "SIGNATURE") == ["good CN=alice"], "open theirs: SIGNATURE good", r.status_text)

# Streamed (indefinite-length) input from openssl too.
streamed = sh("openssl", "cms", "-encrypt", "-binary", "-aes256", "-stream", "-inform", "DER",
              "-outform", "DER", t.path("bob.crt"), input=signed_theirs).stdout
r = run("--ca-file", t.path("alice.crt"), "open", *CMS, *BOB, input=streamed)
t.check(r.rc == EXIT_OK and r.out == plain, "open openssl's -stream output", r.describe())

r = run("open", *CMS, *BOB, "--allow-unsigned", t.path("unsigned.cms"))
t.check(r.rc == EXIT_OK and r.out == plain, "open unsigned with --allow-unsigned", r.describe())
t.check(status(r, "SIGNATURE") == ["none"], "SIGNATURE none", r.status_text)

# --- refusals: nothing released ---
write(t.path("existing"), b"keep me")


def refused(what, want_rc, data, args=(), want_sig=None):
    for dest in ("-", "new", "existing"):
        extra = [] if dest == "-" else ["--force", "-o", t.path(dest)]
        r = run("--ca-file", t.path("alice.crt"), "open", *CMS, *(list(args) or BOB), *extra,
                input=data)
        t.check_rc(r, want_rc, "%s (to %s)" % (what, dest))
        t.check_error_line(r, what)
        t.check(r.out == b"", "%s: nothing on standard output" % what)
        t.check(not status(r, "OPENED"), "%s: no OPENED line" % what, r.status_text)
        if want_sig is not None:
            t.check([s.split(" ")[0] for s in status(r, "SIGNATURE")] == [want_sig],
                    "%s: SIGNATURE %s" % (what, want_sig), r.status_text)
        if dest == "new":
            t.check(not os.path.exists(t.path("new")), "%s: no destination file" % what)
        if dest == "existing":
            t.check(read(t.path("existing")) == b"keep me", "%s: destination untouched" % what)
        leftovers = [f for f in os.listdir(t.dir) if ".tmp." in f]
        t.check(not leftovers, "%s: no temporary file left" % what, leftovers)


signed = read(t.path("signed.cms"))
for at in (len(signed) // 2, len(signed) // 3):
    bad = bytearray(signed)
    bad[at] ^= 0x20
    refused("tampered at %d" % at, EXIT_CRYPTO, bytes(bad), want_sig="bad")
for n in (len(signed) // 2, len(signed) - 1, 40):
    refused("truncated to %d" % n, EXIT_INPUT, signed[:n])
refused("wrong recipient", EXIT_CRYPTO, signed, ["--identity", t.path("alice.pem")])
refused("unsigned without --allow-unsigned", EXIT_CRYPTO, read(t.path("unsigned.cms")),
        want_sig="none")
refused("wrong signer", EXIT_CRYPTO, signed, BOB + ["-i", t.path("eve.crt")], want_sig="bad")
r = run("open", *CMS, *BOB, t.path("signed.cms"))
t.check_rc(r, EXIT_CRYPTO, "signed, but no CA and no -i")
t.check("--ca-file" in r.err_text, "no CA: the hint names --ca-file", r.describe())
refused("garbage", EXIT_INPUT, os.urandom(5000))

# --- usage ---
r = run("seal", *CMS, t.path("plain"))
t.check_rc(r, EXIT_INPUT, "seal without -r")
t.check_error_line(r, "seal without -r", "recipient")
r = run("seal", *CMS, "-r", t.path("plain"), "-o", t.path("x.cms"), t.path("plain"))
t.check_rc(r, EXIT_INPUT, "-r names something that is not a certificate")
r = run("open", *CMS, t.path("signed.cms"))
t.check(r.rc != EXIT_OK and "--identity" in r.err_text, "open without a home or --identity",
        r.describe())

# --- the account's X.509 key in a home, and <home>/ca.pem ---
home = t.path("home")
r = run("--home", home, "init", "--jid", "bob@example.org/pc")
t.check_rc(r, EXIT_OK, "init a home")
r = run("--home", home, "key", "import", t.path("bob.pem"))
t.check_rc(r, EXIT_OK, "import bob's X.509 identity")
fpr = r.out_text.split("\n")[0].replace(" ", "")
shutil.copy(t.path("alice.crt"), os.path.join(home, "ca.pem"))
r = run("--home", home, "open", *CMS, t.path("signed.cms"))
t.check(r.rc == EXIT_OK and r.out == plain and status(r, "SIGNATURE") == ["good CN=alice"],
        "open with the account's X.509 key and <home>/ca.pem", r.describe())
r = run("--home", home, "seal", *CMS, "-r", "bob@example.org", "-i", fpr[:16], "-o",
        t.path("home.cms"), t.path("plain"))
t.check_rc(r, EXIT_OK, "seal to and as the account's X.509 key (JID, fingerprint)")
r = run("open", *CMS, *BOB, "-i", t.path("bob.crt"), t.path("home.cms"))
t.check(r.rc == EXIT_OK and r.out == plain and status(r, "SIGNATURE") == ["good CN=bob"],
        "open what the account's key sealed and signed", r.describe())
r = run("--home", home, "seal", *CMS, "-r", "0123456789abcdef0123", t.path("plain"))
t.check_rc(r, EXIT_INPUT, "-r with a fingerprint of no key of the account")

# --- the big stream, in constant memory ---
big = int(os.environ.get("ESESSION_BIG_SIZE", str(512 << 20)))
t.log("big stream: %d MiB through seal | open" % (big >> 20))
rss_files = [t.path("seal.rss"), t.path("open.rss")]
timer = ["/usr/bin/time", "-f", "%M", "-o"] if os.access("/usr/bin/time", os.X_OK) else None
if not timer:
    t.log("SKIP the RSS check: /usr/bin/time is not installed")
seal_cmd = [t.esession, "-q", "seal", *CMS, "-r", t.path("bob.crt"), "-i", t.path("alice.pem")]
open_cmd = [t.esession, "-q", "--ca-file", t.path("alice.crt"), "open", *CMS, *BOB]
if timer:
    seal_cmd = timer + [rss_files[0]] + seal_cmd
    open_cmd = timer + [rss_files[1]] + open_cmd
ps = subprocess.Popen(seal_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
po = subprocess.Popen(open_cmd, stdin=ps.stdout, stdout=subprocess.PIPE, env=env)
ps.stdout.close()
h_in, h_out = hashlib.sha256(), hashlib.sha256()


def feed():
    block = os.urandom(1 << 20)
    left = big
    i = 0
    while left > 0:
        chunk = block[: min(left, len(block))]
        chunk = i.to_bytes(8, "little") + chunk[8:] if len(chunk) >= 8 else chunk
        h_in.update(chunk)
        ps.stdin.write(chunk)
        left -= len(chunk)
        i += 1
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
t.check(got == big and h_in.digest() == h_out.digest(), "big stream: the same bytes come out")
if timer:
    for f in rss_files:
        rss = int(read(f).split()[-1]) << 10
        t.log("%s: peak RSS %.1f MiB" % (os.path.basename(f), rss / (1 << 20)))
        t.check(rss < RSS_LIMIT, "%s: peak RSS %d < 64 MiB" % (f, rss))

t.finish()
