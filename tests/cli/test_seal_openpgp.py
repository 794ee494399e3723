#!/usr/bin/env python3
"""cli.seal-openpgp: `esession seal --file --format openpgp` and `esession open ...`.

    test_seal_openpgp.py ESESSION [ESESSION_COUNTERS]      every check; the big stream is 512 MiB
    test_seal_openpgp.py ESESSION --size 2G                 only the big stream, at 2 GiB

Three GnuPG homes under short /tmp paths (alice, bob, carol; Ed25519 + Curve25519 keys without
passphrases; alice and bob know and have certified each other, carol is a stranger). Checks:
gpg decrypts and verifies what we seal (signed, encrypted to the signer too; unsigned); we
open what gpg --sign --encrypt and gpg --encrypt made; -i by JID and fingerprint; refusals,
each exit 1 with one error line and no plaintext (no destination file, empty stdout): tampered,
truncated, not for us, unsigned or wrongly signed when -i requires a signer; untrusted and
unknown recipients exit 4; a key file as recipient (gpg --recipient-file), as signer exit 2; status lines SEALED, OPENED,
SIGNATURE. The big stream runs generator | seal | open | hash through pipes and checks the
peak RSS of both esession processes stays under 64 MiB. The agents are killed at the end.
"""

import hashlib
import os
import subprocess
import sys
import threading
import time

from clitest import EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, EXIT_REFUSED, GnuPGHomes, Result, Test, memory_bound
from clitest import read_bytes as read, write_bytes as write

RSS_LIMIT = memory_bound(64 << 20)


def parse_size(s):
    n, unit = (s[:-1], s[-1].upper()) if s[-1].upper() in "KMG" else (s, "")
    return int(n) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


big_only = None
if "--size" in sys.argv:
    i = sys.argv.index("--size")
    big_only = parse_size(sys.argv[i + 1])
    del sys.argv[i:i + 2]
big_size = big_only or parse_size(os.environ.get("ESESSION_BIG_SIZE", "512M"))

t = Test("cli.seal-openpgp")
g = GnuPGHomes(t, "esg")
env, homes, gpg = g.env, g.homes, g.gpg


def make_home(who):
    g.new(who)
    uid = "%s <xmpp:%s@example.org>" % (who.capitalize(), who)
    gpg(who, "--quick-gen-key", uid, "ed25519", "sign", "never")
    fpr = fingerprint(who, who)
    gpg(who, "--quick-add-key", fpr, "cv25519", "encr", "never")
    return fpr


def fingerprint(who, whose):
    out = gpg(who, "--with-colons", "--list-keys", "xmpp:%s@example.org" % whose).stdout.decode()
    return [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]


def introduce(who, other, certify=True):
    key = gpg(other, "--export", fpr[other]).stdout
    gpg(who, "--import", input=key)
    if certify:
        gpg(who, "--quick-lsign-key", fpr[other])


def run(who, *args, input=b"", timeout=120):
    return t.run(None, "--gnupg-home", homes[who], *args, input=input, status=True, env=env,
                 timeout=timeout)


def status(r, keyword):
    return [l.split()[2:] for l in r.status_text.splitlines()
            if l.startswith("[ESESSION:] " + keyword + " ")]




SEAL = ("seal", "--file", "--format", "openpgp")
OPEN = ("open", "--file", "--format", "openpgp")


def refused(r, rc, what, contains=None, dest=None):
    t.check_rc(r, rc, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", what + ": nothing on stdout", r.out[:100])
    if dest:
        t.check(not os.path.exists(dest), what + ": no " + os.path.basename(dest))
    t.check(not status(r, "OPENED") and not status(r, "SEALED"), what + ": no OPENED/SEALED")


def agents_off():
    g.close()


def peak_rss_wrapper(name):
    """/usr/bin/time -f %M measures the peak RSS of the command it runs."""
    out = t.path(name + ".rss")

    def value():
        with open(out) as f:
            return int(f.read().split()[-1]) << 10
    return ["/usr/bin/time", "-f", "%M", "-o", out], value


def big_stream(size):
    """generator | seal (alice -> bob) | open (bob) | sha256 through pipes."""
    if not os.access("/usr/bin/time", os.X_OK):
        t.log("no /usr/bin/time: peak RSS not measured")
        pre_s = pre_o = []
        rss_s = rss_o = lambda: 0
    else:
        pre_s, rss_s = peak_rss_wrapper("seal")
        pre_o, rss_o = peak_rss_wrapper("open")
    seal = subprocess.Popen(pre_s + [t.esession, "--gnupg-home", homes["alice"], *SEAL, "-r",
                                     "bob@example.org", "-i", "alice@example.org"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    opn = subprocess.Popen(pre_o + [t.esession, "--gnupg-home", homes["bob"], *OPEN, "-i",
                                    "alice@example.org"],
                           stdin=seal.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env)
    seal.stdout.close()
    h_in = hashlib.sha256()
    errs = {}

    def feed():
        block = bytearray(os.urandom(1 << 20))
        left, i = size, 0
        try:
            while left:
                block[:8] = i.to_bytes(8, "little")
                chunk = block if left >= len(block) else block[:left]
                h_in.update(chunk)
                seal.stdin.write(chunk)
                left -= len(chunk)
                i += 1
            seal.stdin.close()
        except BrokenPipeError as e:
            errs["feed"] = e

    def drain(p, name):
        errs[name] = p.stderr.read()

    threads = [threading.Thread(target=feed), threading.Thread(target=drain, args=(seal, "seal")),
               threading.Thread(target=drain, args=(opn, "open"))]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    h_out = hashlib.sha256()
    got = 0
    while True:
        chunk = opn.stdout.read(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        h_out.update(chunk)
    rc_seal, rc_open = seal.wait(), opn.wait()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t0
    t.check(rc_seal == 0, "big stream: seal exits 0", errs.get("seal"))
    t.check(rc_open == 0, "big stream: open exits 0", errs.get("open"))
    t.check(got == size and h_in.digest() == h_out.digest(),
            "big stream: %d bytes out of %d, same SHA-256" % (got, size))
    s, o = rss_s(), rss_o()
    t.log("big stream: %d MiB in %.1fs (%.0f MB/s); peak RSS seal %.1f MiB, open %.1f MiB"
          % (size >> 20, elapsed, size / elapsed / 1e6, s / 2**20, o / 2**20))
    t.check(s < RSS_LIMIT and o < RSS_LIMIT, "big stream: peak RSS under 64 MiB",
            "seal %d, open %d" % (s, o))


try:
    fpr = {}
    for who in ("alice", "bob", "carol"):
        fpr[who] = make_home(who)
    introduce("alice", "bob")
    introduce("bob", "alice")
    introduce("alice", "carol", certify=False)  # known but not valid for alice
    t.log("keys: " + ", ".join("%s %s" % kv for kv in fpr.items()))

    if big_only:
        big_stream(big_only)
        agents_off()
        t.finish()

    plain = os.urandom(100000) + b"the end\n"
    src = t.path("plain.bin")
    write(src, plain)

    # --- we seal, gpg opens ---
    sealed = t.path("signed.gpg")
    r = run("alice", *SEAL, "-r", "bob@example.org", "-i", "alice@example.org", "-o", sealed, src)
    t.check_rc(r, EXIT_OK, "seal signed")
    t.check(status(r, "SEALED") == [["openpgp", str(len(plain))]], "SEALED openpgp <bytes>",
            r.status_text)
    p = gpg("bob", "--status-fd", "2", "--decrypt", sealed, check=False)
    t.check(p.returncode == 0 and p.stdout == plain, "gpg --decrypt reads what we sealed",
            p.stderr.decode())
    t.check(b"[GNUPG:] VALIDSIG " + fpr["alice"].encode() in p.stderr,
            "gpg verifies alice's signature", p.stderr.decode())
    t.check(b"[GNUPG:] DECRYPTION_OKAY" in p.stderr and b"GOODMDC" in p.stderr,
            "gpg: integrity protected")
    p = gpg("alice", "--decrypt", "--output", t.path("self.out"), sealed, check=False)
    t.check(p.returncode == 0 and read(t.path("self.out")) == plain,
            "signed files are encrypted to the signer too", p.stderr.decode())
    r = run("alice", *SEAL, "-r", fpr["bob"], input=plain)
    t.check_rc(r, EXIT_OK, "seal unsigned to a fingerprint, stdin to stdout")
    p = gpg("bob", "--status-fd", "2", "--decrypt", input=r.out, check=False)
    t.check(p.returncode == 0 and p.stdout == plain, "gpg --decrypt reads the unsigned file",
            p.stderr.decode())
    p = gpg("alice", "--decrypt", input=r.out, check=False)
    t.check(p.returncode != 0, "an unsigned file is not encrypted to the sender")

    # --- we open what we and gpg sealed ---
    out = t.path("opened.bin")
    r = run("bob", *OPEN, "-i", "alice@example.org", "-o", out, sealed)
    t.check_rc(r, EXIT_OK, "open ours with -i JID")
    t.check(os.path.exists(out) and read(out) == plain, "open: same plaintext")
    t.check(status(r, "SIGNATURE") == [["good", fpr["alice"]]], "SIGNATURE good FPR",
            r.status_text)
    t.check(status(r, "OPENED") == [["openpgp", str(len(plain))]], "OPENED openpgp <bytes>")
    os.unlink(out)

    gsigned = gpg("alice", "--sign", "--encrypt", "-r", fpr["bob"], "-u", fpr["alice"],
                  "--output", "-", src).stdout
    gplain = gpg("alice", "--encrypt", "-r", fpr["bob"], "--output", "-", src).stdout
    write(t.path("g-signed.gpg"), gsigned)
    write(t.path("g-plain.gpg"), gplain)
    r = run("bob", *OPEN, "-i", fpr["alice"], input=gsigned)
    t.check_rc(r, EXIT_OK, "open gpg --sign --encrypt with -i FPR, to stdout")
    t.check(r.out == plain, "gpg's signed message: same plaintext")
    t.check(status(r, "SIGNATURE") == [["good", fpr["alice"]]], "gpg's signature is good")
    r = run("bob", *OPEN, "-o", out, t.path("g-plain.gpg"))
    t.check_rc(r, EXIT_OK, "open gpg --encrypt without -i")
    t.check(read(out) == plain and status(r, "SIGNATURE") == [["none"]],
            "unsigned: opened, SIGNATURE none", r.status_text)
    t.check("not signed" in r.err_text, "unsigned: a warning", r.err_text)
    os.unlink(out)

    # --- refusals ---
    r = run("bob", *OPEN, "-i", "alice@example.org", "-o", out, t.path("g-plain.gpg"))
    refused(r, EXIT_CRYPTO, "unsigned when -i requires a signer", "not signed", dest=out)
    t.check(status(r, "SIGNATURE") == [["none"]], "unsigned with -i: SIGNATURE none")
    r = run("bob", *OPEN, "-i", "alice@example.org", input=gplain)
    refused(r, EXIT_CRYPTO, "unsigned with -i, to stdout", "not signed")
    r = run("bob", *OPEN, "-i", "bob@example.org", "-o", out, sealed)
    refused(r, EXIT_CRYPTO, "wrong signer (JID)", "not by bob@example.org", dest=out)
    r = run("bob", *OPEN, "-i", fpr["carol"], input=gsigned)
    refused(r, EXIT_CRYPTO, "wrong signer (fingerprint)", "not by")
    # -i a key file: the signature must be by a key in it (GnuPG still checks the signature).
    alice_file, carol_file = t.path("alice-pub.asc"), t.path("carol-pub.asc")
    write(alice_file, gpg("alice", "--armor", "--export", fpr["alice"]).stdout)
    write(carol_file, gpg("carol", "--armor", "--export", fpr["carol"]).stdout)
    r = run("bob", *OPEN, "-i", alice_file, input=gsigned)
    t.check_rc(r, EXIT_OK, "open with -i the signer's key file")
    r = run("bob", *OPEN, "-i", carol_file, input=gsigned)
    refused(r, EXIT_CRYPTO, "wrong signer (key file)", "not by")
    r = run("carol", *OPEN, "-o", out, sealed)
    refused(r, EXIT_CRYPTO, "not for us", "not encrypted to any", dest=out)

    data = bytearray(read(sealed))
    for name, bad in (("tampered", data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 1])
                       + data[len(data) // 2 + 1:]),
                      ("truncated", data[:-20]),
                      ("tampered end", data[:-5] + bytes([data[-5] ^ 0x40]) + data[-4:]),
                      ("not OpenPGP", b"hello, world\n" * 100)):
        write(t.path("bad.gpg"), bytes(bad))
        r = run("bob", *OPEN, "-o", out, t.path("bad.gpg"))
        refused(r, EXIT_CRYPTO, name + " to a file", dest=out)
        r = run("bob", *OPEN, input=bytes(bad))
        refused(r, EXIT_CRYPTO, name + " to stdout")
    # An existing destination is untouched by a refusal.
    write(out, b"old contents")
    r = run("bob", *OPEN, "--force", "-o", out, t.path("bad.gpg"))
    t.check(r.rc == EXIT_CRYPTO and read(out) == b"old contents", "existing destination kept")
    os.unlink(out)

    # A message without integrity protection (no MDC), if this gpg can still make one.
    p = gpg("alice", "--encrypt", "--rfc2440", "--cipher-algo", "CAST5", "-r", fpr["bob"],
            "--output", "-", src, check=False)
    if p.returncode == 0:
        r = run("bob", *OPEN, "-o", out, input=p.stdout)
        refused(r, EXIT_CRYPTO, "no MDC", "no integrity protection", dest=out)
    else:
        t.log("gpg cannot make a message without MDC: not checked")

    # --- recipients ---
    r = run("alice", *SEAL, "-r", "carol@example.org", input=plain)
    refused(r, EXIT_REFUSED, "recipient without full validity", "validity")
    r = run("alice", *SEAL, "-r", "dave@example.org", input=plain)
    refused(r, EXIT_REFUSED, "unknown recipient", "no OpenPGP key")
    key_file = t.path("bob.asc")
    write(key_file, gpg("bob", "--armor", "--export", fpr["bob"]).stdout)
    # A key file as recipient (gpg --recipient-file): erin's key is in no keyring of alice's.
    erin = make_home("erin")
    erin_file = t.path("erin.asc")
    write(erin_file, gpg("erin", "--armor", "--export", erin).stdout)
    r = run("alice", *SEAL, "-r", erin_file, input=plain)
    t.check_rc(r, EXIT_OK, "seal to a key file")
    d = gpg("erin", "--decrypt", input=r.out, check=False)
    t.check(d.returncode == 0 and d.stdout == plain, "erin's gpg decrypts what was sealed to her "
            "key file", d.stderr[-300:])
    r = run("alice", *SEAL, "-r", erin_file, "-r", "bob@example.org", "-i", "alice@example.org",
            input=plain)
    t.check_rc(r, EXIT_OK, "seal to a key file and a JID, signed")
    r = run("alice", *SEAL, "-r", "bob@example.org", "-i", key_file, input=plain)
    refused(r, EXIT_INPUT, "key file as signer", "secret key in GnuPG")
    write(t.path("junk.asc"), b"not a key\n")
    r = run("alice", *SEAL, "-r", t.path("junk.asc"), input=plain)
    refused(r, EXIT_REFUSED, "a file that holds no key", "junk.asc")
    r = run("alice", *SEAL, input=plain)
    refused(r, EXIT_INPUT, "no recipient")
    r = run("alice", *SEAL, "-r", "bob@example.org", "-i", "bob@example.org", input=plain)
    refused(r, EXIT_REFUSED, "signing with a key without its secret part")
    dest = t.path("never.gpg")
    r = run("alice", *SEAL, "-r", "bob@example.org", "-o", dest, t.path("missing-input"))
    t.check(r.rc != EXIT_OK and not os.path.exists(dest), "missing input: no output file")

    # --- a secret key with a passphrase, given with --passphrase-fd (loopback) ---
    g.new("dave")

    def dave(*args):
        return subprocess.run(["gpg", "--homedir", homes["dave"], "--batch", "--no-tty",
                               "--pinentry-mode", "loopback", "--passphrase", "sesame"]
                              + list(args), capture_output=True, env=env, timeout=120)
    dave("--quick-gen-key", "Dave <xmpp:dave@example.org>", "ed25519", "sign", "never")
    fpr["dave"] = fingerprint("dave", "dave")
    dave("--quick-add-key", fpr["dave"], "cv25519", "encr", "never")
    subprocess.run(["gpgconf", "--homedir", homes["dave"], "--reload", "gpg-agent"],
                   capture_output=True)
    enc = gpg("alice", "--encrypt", "-r", fpr["dave"], "--trust-model", "always", "--output",
              "-", src, check=False)
    if enc.returncode != 0:
        introduce("alice", "dave")
        enc = gpg("alice", "--encrypt", "-r", fpr["dave"], "--output", "-", src)

    def with_pass(who, passphrase, *args, input=b""):
        r, w = os.pipe()
        os.write(w, passphrase + b"\n")
        os.close(w)
        sr, sw = os.pipe()
        argv = ["--gnupg-home", homes[who], "--status-fd", str(sw), "--passphrase-fd", str(r)]
        p = subprocess.Popen([t.esession] + argv + list(args), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=[r, sw],
                             env=env)
        os.close(r)
        os.close(sw)
        o, e = p.communicate(input, timeout=120)
        with os.fdopen(sr, "rb") as f:
            st = f.read()
        return Result(argv + list(args), p.returncode, o, e, st)
    r = with_pass("dave", b"wrong", *OPEN, input=enc.stdout)
    refused(r, EXIT_CRYPTO, "wrong passphrase", "passphrase")
    r = with_pass("dave", b"sesame", *OPEN, input=enc.stdout)
    t.check_rc(r, EXIT_OK, "open with --passphrase-fd")
    t.check(r.out == plain, "passphrase: same plaintext")
    subprocess.run(["gpgconf", "--homedir", homes["dave"], "--reload", "gpg-agent"],
                   capture_output=True)
    r = with_pass("dave", b"sesame", *SEAL, "-r", fpr["dave"], "-i", fpr["dave"], input=plain)
    t.check_rc(r, EXIT_OK, "seal signed with --passphrase-fd")
    p = subprocess.run(["gpg", "--homedir", homes["dave"], "--batch", "--no-tty",
                        "--pinentry-mode", "loopback", "--passphrase", "sesame", "--status-fd",
                        "2", "--decrypt"], input=r.out, capture_output=True, env=env)
    t.check(p.returncode == 0 and p.stdout == plain and b"VALIDSIG " + fpr["dave"].encode()
            in p.stderr, "gpg reads dave's signed file", p.stderr.decode())

    big_stream(big_size)
finally:
    agents_off()
t.finish()
