#!/usr/bin/env python3
"""cli.temporaries: no plaintext left behind, no core dumps.

`open -o OUT` of an aesgcm file killed with SIGKILL half-way (its input a fifo that is only
partly written, so the kill lands while it waits, with plaintext not yet authenticated already
written) leaves no file in OUT's directory: the plaintext is in a file without a name
(O_TMPFILE). Nor does `open -o NEW` or `seal -o NEW` killed (by strace) at rename(2): a new
output takes its name in one link. A stale temporary of OUT's (".OUT.tmp.XXXXXX", as a killed process on a file
system without O_TMPFILE leaves one) older than the next run is removed by it; a newer one, one
of another name, and one that is not a regular file are left alone.

Every command runs with core dumps off: a running esession (blocked reading a pipe) has
RLIMIT_CORE 0 in /proc/PID/limits, is not dumpable (its /proc/PID files belong to root, seen
when it runs as another user: the test runs it as nobody when it is root), and SIGSEGV or
SIGABRT leaves no core file in its working directory although the test started it with
`ulimit -c unlimited` (that last part is skipped, saying why, when kernel.core_pattern pipes to
a handler or names another directory).

ESESSION_LEFTOVER_SIZE sets the size of the sealed file (default 200M).
"""

import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import threading
import time

from clitest import ALICE, EXIT_OK, Test

t = Test("cli.temporaries")
env = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
           TMPDIR=t.dir)
env.pop("XDG_DATA_HOME", None)
SIZE = int(os.environ.get("ESESSION_LEFTOVER_SIZE", str(200 << 20)))


def listing(d):
    return sorted(os.listdir(d))


# --- a sealed file, made without keeping its plaintext -------------------------------------
work = t.path("work")
os.mkdir(work)
keyf, sealed = t.path("big.key"), t.path("big.aesgcm")
p = subprocess.Popen([t.esession, "seal", "--file", "--format", "aesgcm", "--key-out", keyf,
                      "-o", sealed], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
left = SIZE
while left:
    n = min(left, 1 << 20)
    p.stdin.write(os.urandom(n))
    left -= n
p.stdin.close()
err = p.stderr.read()
if not t.check(p.wait() == 0, "seal of %d bytes" % SIZE, err):
    t.finish()

# --- SIGKILL while open waits for the rest of its input ------------------------------------
t.log("open -o OUT killed half-way")
fifo = t.path("fifo")
os.mkfifo(fifo)
out = os.path.join(work, "OUT")
before = listing(work)
p = subprocess.Popen([t.esession, "open", "--file", "--format", "aesgcm", "--key-file", keyf,
                      "-o", out, fifo], stderr=subprocess.PIPE, env=env)
with open(fifo, "wb") as w, open(sealed, "rb") as r:
    left = SIZE // 2
    while left:
        chunk = r.read(min(left, 1 << 20))
        w.write(chunk)
        left -= len(chunk)
    w.flush()
    # Everything but a pipe's worth has been read; give it time to write the plaintext out.
    time.sleep(0.5)
    # The kill must land half-way: esession is alive, waiting, with the plaintext it
    # decrypted so far in a file in OUT's directory.
    t.check(p.poll() is None, "open ended before the kill", p.stderr.read() if p.poll() else "")
    written = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % p.pid):
            target = os.readlink("/proc/%d/fd/%s" % (p.pid, fd))
            if target.startswith(work + "/"):
                written = max(written, os.stat("/proc/%d/fd/%s" % (p.pid, fd)).st_size)
        t.check(written > SIZE // 4, "open had written %d bytes of plaintext before the kill, "
                "want more than %d" % (written, SIZE // 4))
    except PermissionError:
        t.log("cannot look into /proc/%d/fd (not dumpable, and the test is not root): not "
              "checking how much plaintext open had written" % p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
t.check(listing(work) == before, "after SIGKILL the directory holds new files: %s"
        % sorted(set(listing(work)) - set(before)))

# --- stale temporaries ---------------------------------------------------------------------
t.log("stale temporaries of OUT")
small_key, small = t.path("small.key"), t.path("small.aesgcm")
r = subprocess.run([t.esession, "seal", "--file", "--format", "aesgcm", "--key-out", small_key,
                    "-o", small], input=b"small plaintext\n", capture_output=True, env=env)
t.check(r.returncode == 0, "seal of a small file", r.stderr)


def plant(name, age):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(b"not yet authenticated plaintext")
    os.chmod(path, 0o600)
    when = time.time() + age
    os.utime(path, (when, when))
    return name


stale = [plant(".OUT.tmp.k3Jd9Q", -3600), plant(".OUT.tmp.Zz0000", -60)]
keep = [plant(".OUT.tmp.fUture", 3600),       # modified after the run started: maybe in use
        plant(".OTHER.tmp.k3Jd9Q", -3600),   # another destination's
        plant(".OUT.tmp.short", -3600),      # not our pattern
        plant(".OUT.tmp.k3Jd9Q~", -3600)]    # nor this
os.mkdir(os.path.join(work, ".OUT.tmp.D1rect"))
keep.append(".OUT.tmp.D1rect")
os.symlink(".OUT.tmp.k3Jd9Q", os.path.join(work, ".OUT.tmp.L1nked"))
keep.append(".OUT.tmp.L1nked")
r = subprocess.run([t.esession, "open", "--file", "--format", "aesgcm", "--key-file", small_key,
                    "-o", out, small], capture_output=True, env=env)
t.check(r.returncode == EXIT_OK, "open -o OUT", r.stderr)
names = listing(work)
for n in stale:
    t.check(n not in names, "the stale temporary %s is still there" % n)
for n in keep:
    t.check(n in names, "%s was removed, though not a stale temporary of OUT" % n)
t.check(sorted(set(names) - set(keep)) == ["OUT"], "unexpected files: %s"
        % sorted(set(names) - set(keep) - {"OUT"}))
with open(out, "rb") as f:
    t.check(f.read() == b"small plaintext\n", "OUT holds the wrong plaintext")

# --- SIGKILL at the moment the output takes its name ----------------------------------------
# strace kills open at its first rename(2) (or whatever it does instead): a new OUT takes its
# name in one step (linked from the unnamed file), so the kill leaves OUT complete or absent
# and no ".OUT.tmp.*" (found by the crash campaign: the unnamed file was linked to a temporary
# name first and renamed, and a kill in between left the temporary).
t.log("open -o NEW killed at rename(2)")


def strace_works():
    if not shutil.which("strace"):
        return "strace is not installed"
    p = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True)
    return None if p.returncode == 0 else "strace cannot trace here: %s" % p.stderr.decode()


why = strace_works()
if why:
    t.log("not checking a kill at rename(2): " + why)
else:
    calls = "rename,renameat,renameat2"
    for fmt_args, sealed_in, kind in (
            (["--format", "aesgcm", "--key-file", small_key], small, "open"),
            (None, None, "seal")):
        work2 = t.path("work-" + kind)
        os.mkdir(work2)
        new = os.path.join(work2, "NEW")
        if kind == "open":
            argv = ["open", "--file"] + fmt_args + ["-o", new, sealed_in]
        else:
            argv = ["seal", "--file", "--format", "aesgcm", "--key-out",
                    os.path.join(work2, "NEW.key"), "-o", new, small_key]
        r = subprocess.run(["strace", "-f", "-o", "/dev/null", "-e", "trace=" + calls,
                            "-e", "inject=%s:signal=SIGKILL" % calls, t.esession] + argv,
                           capture_output=True, env=env)
        names = listing(work2)
        t.check(not [n for n in names if ".tmp" in n],
                "%s -o NEW killed at rename(2): a temporary is left: %s (exit %s)"
                % (kind, names, r.returncode), r.stderr.decode(errors="replace"))
        if kind == "open" and "NEW" in names:
            with open(new, "rb") as f:
                t.check(f.read() == b"small plaintext\n", "open: NEW holds the wrong plaintext")

# --- no core dumps -------------------------------------------------------------------------
t.log("core dumps")
with open("/proc/sys/kernel/core_pattern") as f:
    core_pattern = f.read().strip()
if core_pattern.startswith("|"):
    core_why = "kernel.core_pattern pipes cores to a handler (%s)" % core_pattern
elif "/" in core_pattern:
    core_why = "kernel.core_pattern puts cores in another directory (%s)" % core_pattern
else:
    core_why = None
core_prefix = core_pattern.split("%")[0] or "core"

# Run as nobody when root, so that /proc/PID ownership shows whether the process is dumpable
# (a non-dumpable process's /proc files belong to root).
runner = None
if os.geteuid() == 0:
    try:
        nobody = pwd.getpwnam("nobody")
        runner = (nobody.pw_uid, nobody.pw_gid)
    except KeyError:
        pass
uid = runner[0] if runner else os.geteuid()


def start(args, cwd):
    """Starts esession with |args| in |cwd|, cores unlimited, standard input a pipe it blocks
    on; returns the process (its stdin open)."""
    def pre():
        resource.setrlimit(resource.RLIMIT_CORE,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        if runner:
            os.setgid(runner[1])
            os.setgroups([])
            os.setuid(runner[0])
    return subprocess.Popen([t.esession] + args, cwd=cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=pre)


def blocked(p):
    """Waits until |p| sleeps (reading its input)."""
    for _ in range(200):
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state == "S":
            time.sleep(0.1)
            return True
        time.sleep(0.05)
    return False


home = t.init_home("H", ALICE)
if runner:  # nobody's files: the home, the key and the file
    os.chown(t.dir, uid, -1)
    for root, dirs, files in os.walk(home):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), uid, -1)
    for f in (home, small_key, small):
        os.lchown(f, uid, -1)
commands = [
    ("open", ["open", "--file", "--format", "aesgcm", "--key-file", small_key], signal.SIGSEGV),
    ("decrypt", ["--home", home, "decrypt"], signal.SIGABRT),
    ("key generate --protect",
     ["--home", home, "--passphrase-fd", "0", "key", "generate", "--protect"], signal.SIGSEGV),
]
for name, args, sig in commands:
    cwd = t.path("cwd-" + name.split()[0])
    os.mkdir(cwd)
    os.chmod(cwd, 0o777)
    p = start(args, cwd)
    try:
        if not t.check(blocked(p), "%s: did not block on its input" % name):
            continue
        with open("/proc/%d/limits" % p.pid) as f:
            lim = [l for l in f if l.startswith("Max core file size")]
        t.check(lim and lim[0].split()[4:6] == ["0", "0"],
                "%s: RLIMIT_CORE is not 0: %s" % (name, lim))
        if uid != 0:
            owner = os.stat("/proc/%d/status" % p.pid).st_uid
            t.check(owner == 0, "%s: dumpable (its /proc files belong to uid %d, not root)"
                    % (name, owner))
        else:
            t.log("%s: runs as root (no user nobody): not checking that it is not dumpable"
                  % name)
        p.send_signal(sig)
        p.communicate(timeout=30)
        t.check(p.returncode == -sig, "%s: exit %s after signal %d" % (name, p.returncode, sig))
        if core_why:
            t.log("%s: not looking for a core file: %s" % (name, core_why))
        else:
            cores = [n for n in os.listdir(cwd) if n.startswith(core_prefix)]
            t.check(not cores, "%s: signal %d left a core file: %s" % (name, sig, cores))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
if core_why:
    t.log("core files not checked: " + core_why)

t.finish()
