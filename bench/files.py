#!/usr/bin/env python3
"""File encryption throughput: `esession seal/open --file --format aesgcm` against cp, age and
the AES-256-GCM primitive (`openssl speed`), in one run.

Usage: bench/files.py [--esession PATH] [--size 1G] [--dir /dev/shm] [--runs 3] [--idle]

Every command reads and writes files in --dir (default /dev/shm, a tmpfs: the disk is out of
the measurement, what is left is memory copies, system calls and the cipher). Each command runs
--runs times, in rounds of one run of each; the table shows the fastest run, as MiB/s of plaintext and as a share of `cp` of the
same file. esession writes on a second thread, so on a machine whose other cores are busy it
loses its edge: --idle starts each command only when the CPUs were at least 95% idle for half a
second (Linux /proc/stat), which is what a shared build machine needs. The input is random (os.urandom), written once. Peers that are not installed are
skipped. Needs about 4 x --size of room in --dir.

Rows:
  cp                    cp IN OUT                                 (the target: seal/open >= 85%)
  cat > /dev/null       reading alone
  seal                  esession seal ... --key-out K -o OUT IN
  open -o file          esession open ... --key-file K -o OUT SEALED
  open > /dev/null      esession open ... SEALED > /dev/null      (regular file: two passes)
  cat | open > null     cat SEALED | esession open ... > /dev/null (pipe: spooled to $TMPDIR)
  age -e / age -d       age -e -r RECIPIENT -o OUT IN, age -d -i IDENTITY -o OUT IN.age
  gpg / openpgp         gpg -z 0 -r FPR -e, esession seal --format openpgp -r FPR (no
                        compression either), gpg -d -o OUT, esession open --format openpgp -o OUT
  openssl cms / cms     openssl cms -encrypt -aes256 -binary -outform DER, esession seal
                        --format cms -r CERT [-i SIGNER], openssl cms -decrypt -inform DER,
                        esession open --format cms [--allow-unsigned] -o OUT
  openssl speed         openssl speed -evp aes-256-gcm -bytes 65536 (the cipher alone, one core)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.strip().upper())
    if not m:
        sys.exit("bad size %r" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def timed(cmd, env=None):
    """The wall time of one run of |cmd| (a list, or a string for sh -c)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL, check=True,
                   env=env)
    return time.perf_counter() - t0


def wait_idle(timeout=600):
    """Waits until the CPUs were >= 95% idle over half a second (or |timeout| seconds)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        i0, t0 = sample()
        time.sleep(0.5)
        i1, t1 = sample()
        if (i1 - i0) >= 0.95 * max(1, t1 - t0):
            return
    print("bench/files.py: the machine did not become idle; measuring anyway", file=sys.stderr)


def rm(*paths):
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


def openssl_speed():
    """AES-256-GCM MiB/s of one core over 64 KiB blocks, or None."""
    if not shutil.which("openssl"):
        return None
    r = subprocess.run(["openssl", "speed", "-seconds", "2", "-evp", "aes-256-gcm", "-bytes",
                        "65536"], capture_output=True, text=True)
    m = re.search(r"^AES-256-GCM\s+([0-9.]+)k", r.stdout, re.M)
    return float(m.group(1)) * 1000 / 2**20 if m else None


def gpg_cases(es, d, env):
    """seal/open --format openpgp against gpg -e/-d, same key (Ed25519 + Curve25519, no
    passphrase) in a GnuPG home under |d|, no compression on either side."""
    home = os.path.join(d, "g")
    os.mkdir(home, 0o700)
    g = ["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
         "--passphrase", ""]
    subprocess.run(g + ["--quick-gen-key", "Bench <xmpp:bench@example.org>", "ed25519", "sign",
                        "never"], check=True, capture_output=True)
    out = subprocess.run(g + ["--with-colons", "--list-keys", "xmpp:bench@example.org"],
                         check=True, capture_output=True, text=True).stdout
    fpr = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
    subprocess.run(g + ["--quick-add-key", fpr, "cv25519", "encr", "never"], check=True,
                   capture_output=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    es_g = [es, "-q", "--gnupg-home", home]
    return [
        ("gpg -e -z 0", g + ["-z", "0", "-r", fpr, "-o", p("in.gpg"), "-e", p("in")],
         lambda: rm(p("in.gpg"))),
        ("esession seal openpgp", es_g + ["seal", "--file", "--format", "openpgp", "-r", fpr,
                                          "-o", p("in.pgp"), p("in")], lambda: rm(p("in.pgp"))),
        ("gpg -d -o file", g + ["-o", p("out"), "-d", p("in.gpg")], lambda: rm(p("out"))),
        ("esession open openpgp -o file", es_g + ["open", "--file", "--format", "openpgp", "-o",
                                                  p("out"), p("in.pgp")], lambda: rm(p("out"))),
    ]


def cms_cases(es, d):
    """seal/open --format cms against openssl cms -encrypt/-decrypt (AES-256-CBC, RSA-2048
    key transport), certificates made here; openssl cms holds the whole file in memory."""
    p = lambda n: os.path.join(d, n)  # noqa: E731
    for n in ("r", "s"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        p(n + ".key"), "-out", p(n + ".crt"), "-subj", "/CN=" + n, "-days", "2"],
                       check=True, capture_output=True)
        with open(p(n + ".pem"), "wb") as f:
            for part in (".crt", ".key"):
                with open(p(n + part), "rb") as g:
                    f.write(g.read())
    ossl = ["openssl", "cms", "-binary"]
    seal = [es, "-q", "seal", "--file", "--format", "cms", "-r", p("r.crt")]
    opn = [es, "-q", "--ca-file", p("s.crt"), "open", "--file", "--format", "cms", "--identity",
           p("r.pem"), "-o", p("out")]
    return [
        ("openssl cms -encrypt", ossl + ["-encrypt", "-aes256", "-outform", "DER", "-in", p("in"),
                                         "-out", p("in.ossl"), p("r.crt")],
         lambda: rm(p("in.ossl"))),
        ("esession seal cms", seal + ["-o", p("in.cms"), p("in")], lambda: rm(p("in.cms"))),
        ("esession seal cms -i", seal + ["-i", p("s.pem"), "-o", p("in.scms"), p("in")],
         lambda: rm(p("in.scms"))),
        ("openssl cms -decrypt", ossl + ["-decrypt", "-inform", "DER", "-in", p("in.ossl"),
                                         "-recip", p("r.crt"), "-inkey", p("r.key"), "-out",
                                         p("out")], lambda: rm(p("out"))),
        ("esession open cms unsigned", opn + ["--allow-unsigned", p("in.cms")],
         lambda: rm(p("out"))),
        ("esession open cms signed", opn + [p("in.scms")], lambda: rm(p("out"))),
    ]

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--esession", default=os.path.join(here, "..", "build-rel", "cli", "esession"))
    ap.add_argument("--size", default="1G")
    ap.add_argument("--dir", default="/dev/shm")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", action="store_true", help="start each command on idle CPUs only")
    a = ap.parse_args()
    size = parse_size(a.size)
    es = os.path.abspath(a.esession)
    if not os.access(es, os.X_OK):
        sys.exit("no esession binary at %s (use --esession)" % es)
    d = tempfile.mkdtemp(prefix="esession-bench-files-", dir=a.dir)
    env = dict(os.environ, TMPDIR=d, ESESSION_HOME=os.path.join(d, "no-home"))
    p = lambda n: os.path.join(d, n)  # noqa: E731
    rows = []
    try:
        with open(p("in"), "wb") as f:
            for _ in range(size >> 20):
                f.write(os.urandom(1 << 20))
            f.write(os.urandom(size & ((1 << 20) - 1)))
        seal = [es, "-q", "seal", "--file", "--format", "aesgcm", "--key-out", p("k"), "-o", p("sealed"),
                p("in")]
        opn = [es, "open", "--file", "--format", "aesgcm", "--key-file", p("k")]
        # name -> (command, what to do before it); run in rounds, one of each per round, so that
        # a busy machine slows all of them alike.
        cases = [
            ("cp", ["cp", p("in"), p("out")], lambda: rm(p("out"))),
            ("cat > /dev/null", ["cat", p("in")], None),
            ("esession seal", seal, lambda: rm(p("k"), p("sealed"))),
            ("esession open -o file", opn + ["-o", p("out"), p("sealed")], lambda: rm(p("out"))),
            ("esession open > /dev/null", opn + [p("sealed")], None),
            ("cat | esession open > null", "cat '%s' | '%s' open --file --format aesgcm "
             "--key-file '%s' > /dev/null" % (p("sealed"), es, p("k")), None),
        ]
        if shutil.which("age") and shutil.which("age-keygen"):
            subprocess.run(["age-keygen", "-o", p("id")], check=True, capture_output=True)
            rcpt = subprocess.run(["age-keygen", "-y", p("id")], check=True, capture_output=True,
                                  text=True).stdout.strip()
            cases += [("age -e", ["age", "-e", "-r", rcpt, "-o", p("in.age"), p("in")],
                       lambda: rm(p("in.age"))),
                      ("age -d", ["age", "-d", "-i", p("id"), "-o", p("out"), p("in.age")],
                       lambda: rm(p("out")))]
        if shutil.which("gpg"):
            cases += gpg_cases(es, d, env)
        if shutil.which("openssl"):
            cases += cms_cases(es, d)
        best = {}
        for _ in range(a.runs):
            for name, cmd, before in cases:
                if before:
                    before()  # removing a big file costs time too: not in the measurement
                if a.idle:
                    wait_idle()
                secs = timed(cmd, env)
                best[name] = min(best.get(name, secs), secs)
        rows = [(name, best[name]) for name, _, _ in cases]
    finally:
        shutil.rmtree(d, ignore_errors=True)

    mib = size / 2**20
    cp = rows[0][1]
    print("%d MiB in %s, fastest of %d runs; %s" % (mib, a.dir, a.runs, es))
    print("%-28s %8s %10s %8s" % ("command", "seconds", "MiB/s", "% of cp"))
    for name, secs in rows:
        print("%-28s %8.3f %10.0f %7.0f%%" % (name, secs, mib / secs, 100 * cp / secs))
    speed = openssl_speed()
    if speed:
        print("%-28s %8s %10.0f %7.0f%%" % ("openssl speed aes-256-gcm", "-", speed,
                                           100 * speed / (mib / cp)))


if __name__ == "__main__":
    main()
