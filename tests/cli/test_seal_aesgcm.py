#!/usr/bin/env python3
"""cli.seal-aesgcm: `esession seal --file --format aesgcm` and `esession open ...` (XEP-0454).

    test_seal_aesgcm.py ESESSION [ESESSION_COUNTERS]       every check; the big stream is 1 GiB
    test_seal_aesgcm.py ESESSION --size 4G                  only the big stream, at 4 GiB

Checks: interoperability both ways with python3-cryptography's AESGCM (12- and 16-byte IVs,
fragment and URL key files); files, standard input and output, pipes; tampered, truncated and
wrong-key inputs exit 1 with nothing released (no destination file, empty stdout, an existing
destination untouched); key files are created with mode 0600 and never replaced; usage errors
exit 2 with one error line; no home is needed; binary output to a terminal is refused; a
progress bar appears on a terminal for big inputs and not with -q. The big stream runs
generator | seal | open | hash through pipes (no file of that size is kept) and checks the peak
RSS of both processes (wait4) stays under 64 MiB. ESESSION_BIG_SIZE overrides its size.
"""

import hashlib
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

from clitest import EXIT_CRYPTO, EXIT_INPUT, EXIT_OK, EXIT_STATE, Result, Test, memory_bound

RSS_LIMIT = memory_bound(64 << 20)
AUTH = "authentication failed: the file was modified or the key is wrong"


def parse_size(s):
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", s.strip(), re.I)
    if not m:
        sys.exit("bad size %r (e.g. 1G, 512M)" % s)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


# --size is ours; clitest.Test reads the binaries from the other arguments.
big_only = None
if "--size" in sys.argv:
    i = sys.argv.index("--size")
    big_only = parse_size(sys.argv[i + 1])
    del sys.argv[i:i + 2]
big_size = big_only or parse_size(os.environ.get("ESESSION_BIG_SIZE", "1G"))

t = Test("cli.seal-aesgcm")
# No esession home anywhere: seal and open must not need one (or create one).
env = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
           TMPDIR=t.dir)
env.pop("XDG_DATA_HOME", None)

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:
    AESGCM = None


def run(*args, input=b"", key_in=None, key_out=False, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, status=False, timeout=120):
    """Runs esession without a home. The argument "FD" becomes a pipe's descriptor: one that
    holds |key_in|, or (|key_out|) one whose contents end up in result.key."""
    argv = list(args)
    keep, close_after = [], []
    writer = reader = None
    if key_in is not None or key_out:
        r, w = os.pipe()
        child_end = r if key_in is not None else w
        argv = [str(child_end) if a == "FD" else a for a in argv]
        keep.append(child_end)
        close_after.append(child_end)
        writer, reader = (w, None) if key_in is not None else (None, r)
    sfd = None
    if status:
        sr, sw = os.pipe()
        argv = ["--status-fd", str(sw)] + argv
        keep.append(sw)
        close_after.append(sw)
        sfd = sr
    stdin = subprocess.PIPE
    fin = None
    if isinstance(input, str):
        fin = open(input, "rb")
        stdin = fin
    p = subprocess.Popen([t.esession] + argv, stdin=stdin, stdout=stdout, stderr=stderr,
                         pass_fds=keep, env=env)
    for fd in close_after:
        os.close(fd)
    if writer is not None:
        os.write(writer, key_in)
        os.close(writer)
    got = {}
    th = None
    if reader is not None:
        def collect():
            with os.fdopen(reader, "rb") as f:
                got["key"] = f.read()
        th = threading.Thread(target=collect)
        th.start()
    try:
        out, err = p.communicate(input if stdin == subprocess.PIPE else None, timeout=timeout)
    finally:
        if fin:
            fin.close()
    if th:
        th.join()
    st = b""
    if sfd is not None:
        with os.fdopen(sfd, "rb") as f:
            st = f.read()
    res = Result(argv, p.returncode, out or b"", err or b"", st)
    res.key = got.get("key", b"")
    return res


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def expect_fail(r, rc, what, contains=None):
    t.check_rc(r, rc, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", what + ": nothing on stdout", r.out[:100])


SEAL = ("seal", "--file", "--format", "aesgcm")
OPEN = ("open", "--file", "--format", "aesgcm")


def peak_rss_wrapper(name):
    """A command prefix that measures the peak RSS of what it runs, and how to read it.

    os.wait4 on our own child would not do: the child starts as a fork of this Python process
    and the kernel keeps that high-water mark across exec. /usr/bin/time forks from a small
    process. Without it, poll VmHWM (the high-water mark of the current image) while it runs."""
    if os.access("/usr/bin/time", os.X_OK):
        out = t.path(name + ".rss")
        def read():
            with open(out) as f:
                return int(f.read().split()[-1]) << 10  # KiB
        return ["/usr/bin/time", "-f", "%M", "-o", out], read, None
    peak = {"v": 0}
    def poll(pid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak["v"] = max(peak["v"], int(line.split()[1]) << 10)
        except OSError:
            pass
    return [], lambda: peak["v"], poll


def big_stream(size):
    """generator | seal | open | sha256, all through pipes; returns the peak RSS of each."""
    key = t.path("big.key")
    if os.path.exists(key):
        os.unlink(key)
    pre_s, rss_s, poll_s = peak_rss_wrapper("seal")
    pre_o, rss_o, poll_o = peak_rss_wrapper("open")
    seal = subprocess.Popen(pre_s + [t.esession, *SEAL, "--key-out", key], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while not (os.path.exists(key) and os.path.getsize(key) == 89):
        if seal.poll() is not None or time.monotonic() > deadline:
            t.check(False, "big stream: seal wrote its key file", seal.stderr.read())
            return None
        time.sleep(0.01)
    opn = subprocess.Popen(pre_o + [t.esession, *OPEN, "--key-file", key], stdin=seal.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seal.stdout.close()
    h_in = hashlib.sha256()
    errs = {}
    done = threading.Event()

    def feed():
        # 1 MiB of random bytes, each copy made different by its index.
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

    def poll():
        while not done.wait(0.05):
            for f, p in ((poll_s, seal), (poll_o, opn)):
                if f:
                    f(p.pid)

    threads = [threading.Thread(target=feed), threading.Thread(target=drain, args=(seal, "seal")),
               threading.Thread(target=drain, args=(opn, "open")), threading.Thread(target=poll)]
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
    done.set()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t0
    t.check(rc_seal == 0, "big stream: seal exits 0", errs.get("seal"))
    t.check(rc_open == 0, "big stream: open exits 0", errs.get("open"))
    t.check(got == size and h_in.digest() == h_out.digest(),
            "big stream: %d bytes out of %d, same SHA-256" % (got, size))
    rss = (rss_s(), rss_o())
    t.log("big stream of %d MiB in %.1fs (%s): peak RSS seal %.1f MiB, open %.1f MiB"
          % (size >> 20, elapsed, "/usr/bin/time" if pre_s else "VmHWM polled",
             rss[0] / 2**20, rss[1] / 2**20))
    t.check(0 < max(rss) < RSS_LIMIT, "big stream: peak RSS under %d MiB" % (RSS_LIMIT >> 20),
            rss)
    return rss


if big_only:
    big_stream(big_only)
    t.finish()

data = os.urandom(3 << 20) + b"tail"
src = t.path("plain.bin")
write(src, data)

# --- seal: files, stdin/stdout, status line, key file ------------------------------------------
key = t.path("a.key")
r = run(*SEAL, "--key-out", key, "-o", t.path("a.enc"), src, status=True)
t.check_rc(r, EXIT_OK, "seal a file to a file")
t.check(t.status_lines(r, "SEALED") == ["aesgcm %d" % len(data)], "SEALED aesgcm <bytes>",
        r.status_text)
frag = read_file(key)
t.check(re.fullmatch(rb"[0-9a-f]{88}\n", frag) is not None, "the key file holds 88 hex digits",
        frag)
t.check(os.stat(key).st_mode & 0o777 == 0o600, "the key file has mode 0600",
        oct(os.stat(key).st_mode))
enc = read_file(t.path("a.enc"))
t.check(len(enc) == len(data) + 16, "ciphertext || 16-byte tag")
t.check(not os.path.exists(t.path("no-home")) and not os.path.exists(t.path("no-user-home")),
        "seal creates no home")

if AESGCM:
    iv, k = bytes.fromhex(frag[:24].decode()), bytes.fromhex(frag[24:88].decode())
    try:
        ok = AESGCM(k).decrypt(iv, enc, None) == data
    except Exception:  # InvalidTag
        ok = False
    t.check(ok, "python-cryptography opens what esession sealed")
else:
    t.log("python3-cryptography is missing: interoperability not checked")

# The key file is never replaced.
before = read_file(key)
r = run(*SEAL, "--key-out", key, "-o", t.path("b.enc"), src)
expect_fail(r, EXIT_STATE, "seal with an existing --key-out", "already exists")
t.check(read_file(key) == before, "the existing key file is unchanged")
t.check(not os.path.exists(t.path("b.enc")), "no output when the key file exists")

# stdin -> stdout, and --key-fd.
r = run(*SEAL, "--key-fd", "FD", input=data, key_out=True)
t.check_rc(r, EXIT_OK, "seal stdin to stdout, key on a descriptor")
frag2 = r.key
t.check(re.fullmatch(rb"[0-9a-f]{88}\n", frag2) is not None, "the key on --key-fd", frag2)
t.check(len(r.out) == len(data) + 16, "sealed stdin on stdout")
if AESGCM and len(frag2) == 89:
    t.check(AESGCM(bytes.fromhex(frag2[24:88].decode())).decrypt(
        bytes.fromhex(frag2[:24].decode()), r.out, None) == data, "stdout opens in python")
t.check(frag2 != frag, "each seal draws a new key")

# --- open: files, stdin, pipes, stdout ---------------------------------------------------------
r = run(*OPEN, "--key-file", key, "-o", t.path("a.out"), t.path("a.enc"), status=True)
t.check_rc(r, EXIT_OK, "open a file to a file")
t.check(read_file(t.path("a.out")) == data, "open restores the file")
t.check(t.status_lines(r, "OPENED") == ["aesgcm %d" % len(data)], "OPENED aesgcm <bytes>",
        r.status_text)
t.check(os.stat(t.path("a.out")).st_mode & 0o777 == 0o600, "the plaintext file has mode 0600")
r = run(*OPEN, "--key-file", key, input=t.path("a.enc"))
t.check_rc(r, EXIT_OK, "open a regular file on stdin to stdout")
t.check(r.out == data, "plaintext on stdout (regular file input)")
r = run(*OPEN, "--key-file", key, "-", input=enc)
t.check_rc(r, EXIT_OK, "open a pipe to stdout")
t.check(r.out == data, "plaintext on stdout (pipe input)")
r = run(*OPEN, "--key-file", key, "-o", "-", t.path("a.enc"))
t.check_rc(r, EXIT_OK, "open a file to -o -")
t.check(r.out == data, "plaintext on stdout with -o -")
r = run(*OPEN, "--key-fd", "FD", "-o", t.path("fd.out"), input=enc, key_in=frag)
t.check_rc(r, EXIT_OK, "open a pipe into a file with the key on a descriptor")
t.check(read_file(t.path("fd.out")) == data, "pipe into a file")
r = run(*OPEN, "--key-file", key, "-o", "/dev/null", t.path("a.enc"))
t.check_rc(r, EXIT_OK, "open to /dev/null (a device is written, not replaced)")
spool_left = [n for n in os.listdir(t.dir) if n.startswith("esession-spool")]
t.check(not spool_left, "no spool file left in TMPDIR", spool_left)

# The URL form, upper case, and the other way round: python seals, esession opens.
url = t.path("url.key")
write(url, b"aesgcm://upload.example.org/x/a%20b.bin#" + frag.strip().upper() + b"\n", 0o600)
r = run(*OPEN, "--key-file", url, t.path("a.enc"))
t.check_rc(r, EXIT_OK, "open with an aesgcm:// URL as the key")
t.check(r.out == data, "URL key opens")
if AESGCM:
    for ivlen in (12, 16):
        k, iv = os.urandom(32), os.urandom(ivlen)
        ct = AESGCM(k).encrypt(iv, data, None)
        kf = t.path("py%d.key" % ivlen)
        write(kf, (iv.hex() + k.hex()).encode() + b"\n", 0o600)
        write(t.path("py.enc"), ct)
        r = run(*OPEN, "--key-file", kf, t.path("py.enc"))
        t.check_rc(r, EXIT_OK, "open what python sealed (%d-byte IV)" % ivlen)
        t.check(r.out == data, "python's file opens (%d-byte IV)" % ivlen)

# --- failures release nothing ------------------------------------------------------------------
write(t.path("existing.out"), b"precious")
wrong = t.path("wrong.key")
write(wrong, os.urandom(44).hex().encode() + b"\n", 0o600)
flipped = bytearray(enc)
flipped[len(enc) // 2] ^= 1
tag_flipped = bytearray(enc)
tag_flipped[-1] ^= 0x80
cases = [("a flipped bit", bytes(flipped), key), ("a flipped tag bit", bytes(tag_flipped), key),
         ("a truncated file", enc[:-1], key), ("a file cut in half", enc[:len(enc) // 2], key),
         ("a file shorter than a tag", enc[:15], key), ("an empty file", b"", key),
         ("the wrong key", enc, wrong)]
for what, bad, kf in cases:
    write(t.path("bad.enc"), bad)
    for how, args, inp in (("file to stdout", [t.path("bad.enc")], b""),
                           ("pipe to stdout", [], bad),
                           ("file to a new file", ["-o", t.path("new.out"), t.path("bad.enc")], b""),
                           ("pipe to an existing file", ["--force", "-o", t.path("existing.out")],
                            bad)):
        r = run(*OPEN, "--key-file", kf, *args, input=inp, status=True)
        expect_fail(r, EXIT_CRYPTO, "open %s, %s" % (what, how), AUTH)
        t.check(t.status_lines(r, "ERROR") == ["auth-failed"], "ERROR auth-failed", r.status_text)
    t.check(not os.path.exists(t.path("new.out")), "%s: no destination created" % what)
    t.check(read_file(t.path("existing.out")) == b"precious",
            "%s: the existing destination is untouched" % what)
leftover = [n for n in os.listdir(t.dir) if ".tmp." in n or n.startswith("esession-spool")]
t.check(not leftover, "no temporary or spool files left behind", leftover)

# --- usage and key errors: exit 2, one error line -----------------------------------------------
write(t.path("short.key"), frag[:87] + b"\n", 0o600)
write(t.path("nothex.key"), b"z" + frag[1:], 0o600)
write(t.path("https.key"), b"https://example.org/a#" + frag, 0o600)
for what, args, contains in (
        ("seal without --file", ("seal", "--format", "aesgcm", "--key-out", t.path("x.key"), src),
         "--file"),
        ("open without --file", ("open", "--format", "aesgcm", "--key-file", key, src), "--file"),
        ("seal without --format", ("seal", "--file", "--key-out", t.path("x.key"), src),
         "--format"),
        ("seal with --format openpgp", ("seal", "--file", "--format", "openpgp", "--key-out",
                                        t.path("x.key"), src), "openpgp"),
        ("seal without a key destination", SEAL + (src,), "--key-out"),
        ("open without a key", OPEN + (t.path("a.enc"),), "--key-file"),
        ("--key-out with --key-fd", SEAL + ("--key-out", t.path("x.key"), "--key-fd", "1", src),
         None),
        ("--key-fd not open", SEAL + ("--key-fd", "9", src), "--key-fd 9"),
        ("--key-out the same as -o", SEAL + ("--key-out", t.path("x.key"), "-o", t.path("x.key"),
                                             src), "--key-out"),
        ("a key of 87 digits", OPEN + ("--key-file", t.path("short.key"), t.path("a.enc")),
         "87 characters"),
        ("a key with a non-hex digit", OPEN + ("--key-file", t.path("nothex.key"),
                                               t.path("a.enc")), "hex digit"),
        ("an https URL as the key", OPEN + ("--key-file", t.path("https.key"), t.path("a.enc")),
         "aesgcm://"),
):
    r = run(*args)
    expect_fail(r, EXIT_INPUT, what, contains)
    t.check(frag[:40].decode() not in r.err_text, what + ": the key is not echoed")
t.check(not os.path.exists(t.path("x.key")), "no key file left by refused seals")
r = run(*OPEN, "--key-file", t.path("missing.key"), t.path("a.enc"))
expect_fail(r, EXIT_STATE, "a missing key file", "missing.key")
r = run(*SEAL, "--key-out", t.path("y.key"), t.path("missing.bin"))
expect_fail(r, EXIT_STATE, "a missing input file", "missing.bin")
t.check(not os.path.exists(t.path("y.key")), "no key file for a missing input")
r = run(*SEAL, "--key-out", t.path("z.key"), "-o", t.path("no-dir", "out"), src)
expect_fail(r, EXIT_STATE, "an output directory that does not exist")
t.check(not os.path.exists(t.path("z.key")), "no key file when the output cannot be created")

# --- terminals ----------------------------------------------------------------------------------
master, slave = pty.openpty()
r = run(*SEAL, "--key-out", t.path("tty.key"), src, stdout=slave)
expect_fail(r, EXIT_INPUT, "seal to a terminal", "refusing to write binary output to a terminal")
t.check(not os.path.exists(t.path("tty.key")), "no key file when refusing a terminal")
os.close(slave)
os.close(master)


def with_tty_stderr(args, pipe_from=None):
    """Runs esession with stderr on a pseudo-terminal, and stdin from a pipe fed with the file
    |pipe_from|; returns (exit status, what it showed)."""
    master, slave = pty.openpty()
    cat = subprocess.Popen(["cat", pipe_from], stdout=subprocess.PIPE) if pipe_from else None
    p = subprocess.Popen([t.esession] + list(args), stdin=cat.stdout if cat else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave, env=env)
    if cat:
        cat.stdout.close()
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    if cat:
        cat.wait()
    return p.wait(), shown.decode("utf-8", "replace")


big = t.path("big.bin")
with open(big, "wb") as f:
    f.truncate(65 << 20)  # sparse; the content does not matter
rc, shown = with_tty_stderr([*SEAL, "--key-out", t.path("p.key"), "-o", t.path("big.enc"), big])
t.check(rc == 0 and "sealing" in shown and "100%" in shown,
        "a progress bar on a terminal for 65 MiB", shown[-300:])
rc, shown = with_tty_stderr([*OPEN, "--key-file", t.path("p.key"), "-o", t.path("big.out"),
                             t.path("big.enc")])
t.check(rc == 0 and "opening" in shown, "a progress bar when opening", shown[-300:])
os.unlink(t.path("big.out"))
rc, shown = with_tty_stderr(["-q", *OPEN, "--key-file", t.path("p.key"), "-o",
                             t.path("big.out"), t.path("big.enc")])
t.check(rc == 0 and shown == "", "no progress bar with -q", shown[-300:])
rc, shown = with_tty_stderr([*SEAL, "--key-out", t.path("s.key"), "-o", t.path("small.enc"), src])
t.check(rc == 0 and "sealing [" not in shown, "no progress bar for 3 MiB", shown[-300:])
rc, shown = with_tty_stderr([*OPEN, "--key-file", t.path("s.key")], pipe_from=t.path("small.enc"))
t.check(rc == 0 and shown == "", "no progress bar for 3 MiB from a pipe", shown[-300:])
rc, shown = with_tty_stderr([*OPEN, "--key-file", t.path("p.key")], pipe_from=t.path("big.enc"))
t.check(rc == 0 and "opening" in shown, "a progress bar for 65 MiB from a pipe", shown[-300:])
for n in ("big.bin", "big.enc", "big.out"):
    os.unlink(t.path(n))

t.check(not os.path.exists(t.path("no-home")), "no home was created")

# --- constant memory ----------------------------------------------------------------------------
big_stream(big_size)
t.finish()
