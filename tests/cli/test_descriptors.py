#!/usr/bin/env python3
"""cli.descriptors: the --*-fd options (--status-fd, --passphrase-fd, --oss-fd, --reply-fd,
--key-fd) and descriptors 0-2.

A descriptor option that names a closed descriptor, a negative number, one open the wrong way
(write-only for one esession reads, read-only for one it writes), standard input for writing or
standard output for reading, exits 2 with one error line naming the option, before anything is
opened: the home is byte for byte unchanged and no key is created (esession once read a
"passphrase" from its own database, which took the closed number). A new passphrase (key
generate --protect) shorter than 8 characters gets a warning, an empty one is refused.

Started with standard output closed, esession must not put a file of its own on descriptor 1:
`open` of an aesgcm stream from a pipe spools the ciphertext in a file, which took descriptor 1
and had the plaintext written over it; `key generate` and `key list` leave a database that
passes PRAGMA integrity_check and lists the key.
"""

import hashlib
import json
import os
import sqlite3
import subprocess

from clitest import ALICE, BOB, EXIT_INPUT, EXIT_OK, Result, Test, shq

t = Test("cli.descriptors")
home = t.init_home("A", ALICE)


def snapshot(h):
    """Every file under the home: relative name -> SHA-256 of its contents."""
    out = {}
    for root, _, files in os.walk(h):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, h)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def sh(args, redirs="", input=b"", timeout=60):
    """Runs esession under sh with |redirs| (e.g. "3<file", "5>&-") and no other descriptor
    than 0-2 and those: Python passes none beyond 0-2 (close_fds)."""
    cmd = "exec %s %s %s" % (shq(t.esession), " ".join(shq(a) for a in args), redirs)
    p = subprocess.run(["sh", "-c", cmd], input=input, capture_output=True, timeout=timeout)
    return Result(args, p.returncode, p.stdout, p.stderr)


def key_count(h):
    r = t.run(h, "--json", "key", "list")
    if not t.check_rc(r, EXIT_OK, "key list"):
        return -1
    return len(json.loads(r.out_text or "[]"))


def refused(what, args, redirs, contains, input=b""):
    """|args| (run on the home) exits 2 with one error line containing |contains|, and the home
    is unchanged."""
    before = snapshot(home)
    r = sh(["--home", home] + args, redirs, input=input)
    t.check_rc(r, EXIT_INPUT, what)
    t.check_error_line(r, what, contains)
    t.check(snapshot(home) == before, "%s: the home changed" % what, r.describe())


t.log("closed descriptors")
keys0 = key_count(home)
refused("--passphrase-fd 3 closed", ["--passphrase-fd", "3", "key", "generate", "--protect"],
        "", "--passphrase-fd 3 is not an open file descriptor")
t.check(key_count(home) == keys0, "--passphrase-fd 3 closed: a key was created")
# The option after the command (global options fall through) is checked the same.
refused("--passphrase-fd 3 closed, after the command",
        ["key", "generate", "--protect", "--passphrase-fd", "3"], "",
        "--passphrase-fd 3 is not an open file descriptor")
refused("--oss-fd 5 closed", ["negotiate", "--to", BOB, "--oss-fd", "5"], "",
        "--oss-fd 5 is not an open file descriptor")
refused("--status-fd 4 closed", ["--status-fd", "4", "key", "generate"], "",
        "--status-fd 4 is not an open file descriptor")
refused("--reply-fd 4 closed", ["decrypt", "--reply-fd", "4"], "",
        "--reply-fd 4 is not an open file descriptor")
refused("seal --key-fd 4 closed",
        ["seal", "--file", "--format", "aesgcm", "--key-fd", "4", "-o", t.path("sealed")], "",
        "--key-fd 4 is not an open file descriptor", input=b"x")
t.check(not os.path.exists(t.path("sealed")), "seal --key-fd 4 closed: the output was made")
refused("open --key-fd 4 closed", ["open", "--file", "--format", "aesgcm", "--key-fd", "4"], "",
        "--key-fd 4 is not an open file descriptor", input=b"x")
# A descriptor closed in the shell that esession would otherwise reopen on /dev/null.
refused("--passphrase-fd 0 closed", ["--passphrase-fd", "0", "key", "generate", "--protect"],
        "<&-", "--passphrase-fd 0 is not an open file descriptor")
t.check(key_count(home) == keys0, "closed descriptors: a key was created")

t.log("numbers that are no descriptor, or the wrong standard one")
refused("--status-fd -1", ["--status-fd", "-1", "key", "list"], "", "--status-fd -1")
refused("--passphrase-fd -2", ["--passphrase-fd", "-2", "key", "generate", "--protect"], "",
        "--passphrase-fd -2")
refused("--status-fd 0", ["--status-fd", "0", "key", "list"], "", "--status-fd 0")
refused("--reply-fd 0", ["decrypt", "--reply-fd", "0"], "", "--reply-fd 0")
refused("--passphrase-fd 1", ["--passphrase-fd", "1", "key", "generate", "--protect"], "",
        "--passphrase-fd 1")
refused("--oss-fd 2", ["negotiate", "--to", BOB, "--oss-fd", "2"], "", "--oss-fd 2")

t.log("descriptors open the wrong way")
wfile = t.path("write-only")
with open(wfile, "wb") as f:
    f.write(b"a passphrase nobody gave\n")
refused("--passphrase-fd write-only", ["--passphrase-fd", "3", "key", "generate", "--protect"],
        "3>>%s" % shq(wfile), "--passphrase-fd 3 is not open for reading")
refused("--oss-fd write-only", ["negotiate", "--to", BOB, "--oss-fd", "3"],
        "3>>%s" % shq(wfile), "--oss-fd 3 is not open for reading")
refused("open --key-fd write-only", ["open", "--file", "--format", "aesgcm", "--key-fd", "3"],
        "3>>%s" % shq(wfile), "--key-fd 3 is not open for reading", input=b"x")
refused("--status-fd read-only", ["--status-fd", "3", "key", "list"], "3<%s" % shq(wfile),
        "--status-fd 3 is not open for writing")
refused("--reply-fd read-only", ["decrypt", "--reply-fd", "3"], "3<%s" % shq(wfile),
        "--reply-fd 3 is not open for writing")
refused("seal --key-fd read-only",
        ["seal", "--file", "--format", "aesgcm", "--key-fd", "3", "-o", t.path("sealed")],
        "3<%s" % shq(wfile), "--key-fd 3 is not open for writing", input=b"x")
refused("--passphrase-fd a directory", ["--passphrase-fd", "3", "key", "generate", "--protect"],
        "3<%s" % shq(t.dir), "--passphrase-fd 3 is a directory")
t.check(key_count(home) == keys0, "wrong-way descriptors: a key was created")

t.log("descriptors that are right still work")
status = t.path("status")
r = sh(["--home", home, "--status-fd", "3", "key", "list"], "3>%s" % shq(status))
t.check_rc(r, EXIT_OK, "--status-fd 3 open for writing")
pf = t.path("pass")
with open(pf, "wb") as f:
    f.write(b"correct horse battery staple\n")
r = sh(["--home", home, "--passphrase-fd", "3", "key", "generate", "--protect"], "3<%s" % shq(pf))
t.check_rc(r, EXIT_OK, "--passphrase-fd 3 open for reading")
t.check("warning" not in r.err_text, "a long passphrase got a warning", r.describe())
t.check("passphrase-protected" in r.err_text + r.out_text, "the key is not protected",
        r.describe())
t.check(key_count(home) == keys0 + 1, "--passphrase-fd 3: no key was created")
# A read-write descriptor serves either way.
r = sh(["--home", home, "--status-fd", "3", "key", "list"], "3<>%s" % shq(status))
t.check_rc(r, EXIT_OK, "--status-fd on a read-write descriptor")

t.log("short and empty passphrases")
with open(pf, "wb") as f:
    f.write(b"short\n")
r = sh(["--home", home, "--passphrase-fd", "3", "key", "generate", "--protect"], "3<%s" % shq(pf))
t.check_rc(r, EXIT_OK, "a short passphrase")
t.check("esession: warning: the passphrase is shorter than 8 characters" in r.err_text,
        "a short passphrase: no warning", r.describe())
t.check(key_count(home) == keys0 + 2, "a short passphrase: no key was created")
# Eight characters, some of them more than one byte: no warning.
with open(pf, "wb") as f:
    f.write("pässwörd\n".encode())
r = sh(["--home", home, "--passphrase-fd", "3", "key", "generate", "--protect"], "3<%s" % shq(pf))
t.check_rc(r, EXIT_OK, "an 8-character passphrase")
t.check("warning" not in r.err_text, "an 8-character passphrase got a warning", r.describe())
with open(pf, "wb") as f:
    f.write(b"\n")
r = sh(["--home", home, "--passphrase-fd", "3", "key", "generate", "--protect"], "3<%s" % shq(pf))
t.check_rc(r, EXIT_INPUT, "an empty passphrase")
t.check_error_line(r, "an empty passphrase", "the passphrase is empty")
t.check(key_count(home) == keys0 + 3, "an empty passphrase: a key was created")

t.log("standard output closed")
# An aesgcm stream from a pipe is spooled to a file while it is checked: with descriptor 1
# closed, the spool file took number 1 and the plaintext was written into it.
keyf, sealed = t.path("k.key"), t.path("s.bin")
plain = os.urandom(300000)
p = subprocess.run([t.esession, "seal", "--file", "--format", "aesgcm", "--key-out", keyf,
                    "-o", sealed], input=plain, capture_output=True)
t.check(p.returncode == 0, "seal for the closed-stdout test", p.stderr)
with open(sealed, "rb") as f:
    ciphertext = f.read()
r = sh(["open", "--file", "--format", "aesgcm", "--key-file", keyf], ">&-", input=ciphertext)
t.check_rc(r, EXIT_OK, "open from a pipe with standard output closed")
t.check("error" not in r.err_text, "open with standard output closed reported an error",
        r.describe())
# The database: written with stdout closed, then checked.
r = sh(["--home", home, "key", "generate"], ">&-")
t.check_rc(r, EXIT_OK, "key generate with standard output closed")
r = sh(["--home", home, "--json", "key", "list"], ">&-")
t.check_rc(r, EXIT_OK, "key list with standard output closed")
r = sh(["--home", home, "key", "list"], "<&- >&- 2>&-")
t.check_rc(r, EXIT_OK, "key list with descriptors 0-2 closed")
con = sqlite3.connect("file:%s?mode=ro" % os.path.join(home, "esession.db"), uri=True)
try:
    ic = con.execute("PRAGMA integrity_check").fetchone()[0]
finally:
    con.close()
t.check(ic == "ok", "the database after runs with standard output closed: %s" % ic)
t.check(key_count(home) == keys0 + 4, "key generate with standard output closed: no key")

t.finish()
