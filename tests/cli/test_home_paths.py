#!/usr/bin/env python3
"""cli.home-paths: where the home may be, and what esession says when its database fails.

A home below a symbolic link (a symlinked $HOME or /home: `--home link/h`, link -> a real
directory) works for init, key generate and negotiate, through --home and $ESESSION_HOME. A
home that is itself a symbolic link, or whose esession.db is one, is refused (exit 3) with one
error line that says so.

The database's errors name the cause: on a file system that is full (a 1 MiB tmpfs) or mounted
read-only, a command that writes says "No space left on device" / "database or disk is full",
or "Read-only file system" / "readonly database", not "cannot read the database". (Mounting
needs root: skipped, saying why, when the mount fails.)
"""

import os
import subprocess

from clitest import ALICE, BOB, EXIT_OK, EXIT_STATE, Test

t = Test("cli.home-paths")

real = t.path("real")
os.mkdir(real)
link = t.path("link")
os.symlink(real, link)

t.log("a home below a symbolic link")
ha, hb = os.path.join(link, "A"), os.path.join(link, "B")
for h, jid in ((ha, ALICE), (hb, BOB)):
    r = t.run(h, "init", "--jid", jid)
    t.check_rc(r, EXIT_OK, "init --home %s" % h)
    r = t.run(h, "key", "generate")
    t.check_rc(r, EXIT_OK, "key generate --home %s" % h)
t.check(os.path.isfile(os.path.join(real, "A", "esession.db")), "the home is not in the real dir")
ra, rb = t.negotiate(ha, ALICE, hb, BOB)
t.check_rc(ra, EXIT_OK, "negotiate with homes below a symbolic link")
t.check_rc(rb, EXIT_OK, "respond with homes below a symbolic link")
r = t.run(None, "session", "list", env=dict(os.environ, ESESSION_HOME=ha))
t.check_rc(r, EXIT_OK, "session list with ESESSION_HOME below a symbolic link")
# Relative, through the link, with a trailing slash.
r = subprocess.run([t.esession, "--home", "link/A/", "key", "list"], cwd=t.dir,
                   capture_output=True)
t.check(r.returncode == EXIT_OK, "key list --home link/A/ (relative)", r.stderr)

t.log("a home that is a symbolic link")
os.mkdir(os.path.join(real, "C"), 0o700)
hl = t.path("C-link")
os.symlink(os.path.join(real, "C"), hl)
for args in (("init", "--jid", ALICE), ("key", "list")):
    r = t.run(hl, *args)
    t.check_rc(r, EXIT_STATE, "%s --home a symbolic link" % args[0])
    t.check_error_line(r, "%s --home a symbolic link" % args[0], "is a symbolic link")
    t.check(os.listdir(os.path.join(real, "C")) == [],
            "%s --home a symbolic link: files created behind it" % args[0])
r = t.run(hl + "/", "key", "list")
t.check_rc(r, EXIT_STATE, "--home a symbolic link, with a trailing slash")
t.check_error_line(r, "--home a symbolic link, with a trailing slash", "is a symbolic link")

t.log("a database that is a symbolic link")
hd = t.init_home("D", ALICE)
db = os.path.join(hd, "esession.db")
os.rename(db, os.path.join(hd, "elsewhere.db"))
os.symlink("elsewhere.db", db)
r = t.run(hd, "key", "list")
t.check_rc(r, EXIT_STATE, "a database that is a symbolic link")
t.check_error_line(r, "a database that is a symbolic link", "is a symbolic link")

t.log("a full and a read-only file system")
mnt = t.path("mnt")
os.mkdir(mnt)
m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=700", "tmpfs", mnt],
                   capture_output=True)
if m.returncode != 0:
    t.log("SKIP (part): cannot mount a small tmpfs (root is needed): %s"
          % m.stderr.decode().strip())
else:
    try:
        hm = os.path.join(mnt, "H")
        t.check_rc(t.run(hm, "init", "--jid", ALICE), EXIT_OK, "init on the small tmpfs")
        t.check_rc(t.run(hm, "key", "generate"), EXIT_OK, "key generate on the small tmpfs")
        # Fill it up.
        fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        r = t.run(hm, "key", "generate")
        t.check_rc(r, EXIT_STATE, "key generate on a full disk")
        t.check_error_line(r, "key generate on a full disk")
        t.log("full: " + r.err_text.strip())
        t.check(("No space left on device" in r.err_text or "disk is full" in r.err_text)
                and "cannot read" not in r.err_text,
                "key generate on a full disk: the error does not say the disk is full",
                r.describe())
        os.unlink(os.path.join(mnt, "filler"))
        t.check_rc(t.run(hm, "key", "list"), EXIT_OK, "key list once there is room again")
        m2 = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True)
        if m2.returncode != 0:
            t.log("SKIP (part): cannot remount read-only: %s" % m2.stderr.decode().strip())
        else:
            r = t.run(hm, "key", "generate")
            t.check_rc(r, EXIT_STATE, "key generate on a read-only file system")
            t.check_error_line(r, "key generate on a read-only file system")
            t.log("read-only: " + r.err_text.strip())
            t.check(("Read-only file system" in r.err_text or "readonly" in r.err_text)
                    and "cannot read" not in r.err_text,
                    "key generate on a read-only file system: the error does not say so",
                    r.describe())
    finally:
        subprocess.run(["umount", mnt], capture_output=True)

t.finish()
