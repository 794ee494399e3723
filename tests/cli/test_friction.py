#!/usr/bin/env python3
"""cli.friction: what a new user trips over (the hardening issue's "friction" items).

    test_friction.py ESESSION [ESESSION_COUNTERS]

Checks:
- outputs: `seal`/`open -o FILE` refuse an existing file (exit 2, a hint naming --force, the
  file and any --key-out untouched) and replace it with --force; `open` of a file format to a
  terminal is refused (exit 2, hint -o, nothing shown), as `seal` is, also with -o naming a
  terminal; the stanza formats (smime) still print their XML to a terminal.
"""

import os
import pty
import select
import shutil
import subprocess

from clitest import EXIT_INPUT, EXIT_OK, Test

t = Test("cli.friction")
noenv = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
             TMPDIR=t.dir)
noenv.pop("XDG_DATA_HOME", None)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def run(*args, input=b"", env=None, status=False):
    return t.run(None, *args, input=input, env=env or noenv, status=status)


def refused(r, rc, what, contains=None):
    t.check_rc(r, rc, what)
    t.check_error_line(r, what, contains)
    t.check(r.out == b"", "%s: nothing on standard output" % what, r.out[:200])


def on_tty(args, input=b"", env=None):
    """Runs esession with standard output on a pseudo-terminal; returns (rc, shown, stderr)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([t.esession] + list(args), stdin=subprocess.PIPE, stdout=slave,
                         stderr=subprocess.PIPE, env=env or noenv)
    os.close(slave)
    shown = b""
    p.stdin.write(input)
    p.stdin.close()
    err = b""
    while True:
        r, _, _ = select.select([master, p.stderr], [], [], 30)
        if not r:
            break
        if p.stderr in r:
            chunk = p.stderr.read1(65536)
            if not chunk:
                p.stderr.close()
                # only the terminal is left
                while True:
                    r2, _, _ = select.select([master], [], [], 1)
                    if not r2:
                        break
                    try:
                        c = os.read(master, 65536)
                    except OSError:
                        c = b""
                    if not c:
                        break
                    shown += c
                break
            err += chunk
        if master in r:
            try:
                c = os.read(master, 65536)
            except OSError:  # EIO: the terminal has no writer left
                c = b""
            shown += c
    rc = p.wait(timeout=30)
    os.close(master)
    return rc, shown, err.decode(errors="replace")


# === item 3: -o never replaces a file silently; no binary on a terminal =========================
t.log("outputs: existing files and terminals")
SEAL = ["seal", "--file", "--format", "aesgcm"]
OPEN = ["open", "--file", "--format", "aesgcm"]
plain = os.urandom(5000)
write(t.path("plain"), plain)
r = run(*SEAL, "--key-out", t.path("k1"), "-o", t.path("sealed"), t.path("plain"))
t.check_rc(r, EXIT_OK, "seal to a new file")
sealed = read(t.path("sealed"))

write(t.path("precious"), b"precious")
r = run(*SEAL, "--key-out", t.path("k2"), "-o", t.path("precious"), t.path("plain"))
refused(r, EXIT_INPUT, "seal -o an existing file", "exists")
t.check("--force" in r.err_text and "hint:" in r.err_text, "the hint names --force", r.err_text)
t.check(read(t.path("precious")) == b"precious", "seal: the existing file is unchanged")
t.check(not os.path.exists(t.path("k2")), "seal: no key file made when refusing the output")

r = run(*OPEN, "--key-file", t.path("k1"), "-o", t.path("precious"), t.path("sealed"))
refused(r, EXIT_INPUT, "open -o an existing file", "exists")
t.check("--force" in r.err_text, "open: the hint names --force", r.err_text)
t.check(read(t.path("precious")) == b"precious", "open: the existing file is unchanged")
# Through a symbolic link the file it names is the destination: the same refusal.
os.symlink(t.path("precious"), t.path("link"))
r = run(*OPEN, "--key-file", t.path("k1"), "-o", t.path("link"), t.path("sealed"))
refused(r, EXIT_INPUT, "open -o a link to an existing file", "exists")
t.check(read(t.path("precious")) == b"precious", "open via a link: the file is unchanged")

r = run(*OPEN, "--force", "--key-file", t.path("k1"), "-o", t.path("precious"), t.path("sealed"))
t.check_rc(r, EXIT_OK, "open --force -o an existing file")
t.check(read(t.path("precious")) == plain, "open --force replaced the file with the plaintext")
r = run(*SEAL, "--force", "--key-out", t.path("k3"), "-o", t.path("precious"), t.path("plain"))
t.check_rc(r, EXIT_OK, "seal --force -o an existing file")
r = run(*OPEN, "--key-file", t.path("k3"), t.path("precious"))
t.check(r.rc == EXIT_OK and r.out == plain, "seal --force wrote a sealed file that opens")
# -o - and devices are streams, not files to replace.
r = run(*OPEN, "--key-file", t.path("k1"), "-o", "/dev/null", t.path("sealed"))
t.check_rc(r, EXIT_OK, "open -o /dev/null (a device, not a file to replace)")

# open of a file format to a terminal: refused, nothing shown.
rc, shown, err = on_tty(OPEN + ["--key-file", t.path("k1"), t.path("sealed")])
t.check(rc == EXIT_INPUT, "open aesgcm to a terminal: exit 2", "rc=%s %s" % (rc, err))
t.check("refusing to write binary output to a terminal" in err and "-o FILE" in err,
        "open to a terminal: error and hint (-o FILE)", err)
t.check(shown == b"", "open to a terminal: nothing shown on it", shown[:200])
rc, shown, err = on_tty(SEAL + ["--key-out", t.path("k4"), t.path("plain")])
t.check(rc == EXIT_INPUT and shown == b"", "seal aesgcm to a terminal: refused", err)
t.check(not os.path.exists(t.path("k4")), "seal to a terminal: no key file")
# -o naming a terminal is a terminal too.
master, slave = pty.openpty()
r = run(*OPEN, "--key-file", t.path("k1"), "-o", os.ttyname(slave), t.path("sealed"))
refused(r, EXIT_INPUT, "open -o a terminal device", "terminal")
os.close(slave)
os.close(master)

# The stanza formats write XML text: on a terminal it is shown.
if shutil.which("openssl"):
    def sh(*args):
        p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=noenv)
        t.check(p.returncode == 0, " ".join(args[:3]), p.stderr.decode(errors="replace"))
    for n in ("alice", "bob"):
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
           t.path(n + ".key"), "-out", t.path(n + ".crt"), "-subj", "/CN=" + n, "-days", "2",
           "-addext", "subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:%s@example.com" % n,
           "-addext", "basicConstraints=CA:FALSE",
           "-addext", "keyUsage=digitalSignature,keyEncipherment")
        write(t.path(n + ".pem"), read(t.path(n + ".crt")) + read(t.path(n + ".key")))
    stanza = (b"<message xmlns='jabber:client' from='alice@example.com/a' "
              b"to='bob@example.com/b' type='chat'><body>hello terminal</body></message>\n")
    rc, shown, err = on_tty(["seal", "--format", "smime", "-i", t.path("alice.pem"),
                             "-r", t.path("bob.crt")], input=stanza)
    t.check(rc == EXIT_OK and b"<message" in shown and b"e2e" in shown,
            "seal smime to a terminal prints the stanza", "rc=%s %s %r" % (rc, err, shown[:200]))
    r = run("seal", "--format", "smime", "-i", t.path("alice.pem"), "-r", t.path("bob.crt"),
            input=stanza)
    t.check_rc(r, EXIT_OK, "seal smime")
    rc, shown, err = on_tty(["--ca-file", t.path("alice.crt"), "open", "--format", "smime",
                             "--identity", t.path("bob.pem")], input=r.out)
    t.check(rc == EXIT_OK and b"hello terminal" in shown,
            "open smime to a terminal prints the stanza", "rc=%s %s %r" % (rc, err, shown[:200]))
else:
    t.log("SKIP the stanza formats on a terminal: the openssl command is not installed")

t.finish()
