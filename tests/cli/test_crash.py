#!/usr/bin/env python3
"""cli.crash: `encrypt` killed with SIGKILL at random moments (at least 200 times, by default
200; ESESSION_CRASH_RUNS overrides), each run fed stanzas continuously. After every kill the
store opens (`session list` exits 0 and the session is still active); at the end no counter
range is used twice among everything the killed processes had written (esession-counters,
from a snapshot taken before the loop), the database passes PRAGMA integrity_check, and the
session still encrypts."""

import os
import signal
import sqlite3
import subprocess
import threading
import time

from clitest import ALICE, BOB, Test, make_stanzas

RUNS = int(os.environ.get("ESESSION_CRASH_RUNS", "200"))
t = Test("cli.crash")
a = t.init_home("A", ALICE)
b = t.init_home("B", BOB)
ra, rb = t.negotiate(a, ALICE, b, BOB)
if not (t.check_rc(ra, 0, "negotiate") and t.check_rc(rb, 0, "respond")):
    t.finish()
snap = t.snapshot(a, "A-snapshot")
pool = [(s + "\n").encode() for s in make_stanzas(300, BOB, t.rng, "k")]


class Feeder(threading.Thread):
    """Writes stanzas from the pool, a few at a time, until the reader goes away."""

    def __init__(self, pipe, rng):
        super().__init__(daemon=True)
        self.pipe, self.rng, self.sent = pipe, rng, 0

    def run(self):
        i = self.rng.randrange(len(pool))
        try:
            while True:
                n = self.rng.randint(1, 8)
                chunk = b"".join(pool[(i + j) % len(pool)] for j in range(n))
                i += n
                self.pipe.write(chunk)
                self.pipe.flush()
                self.sent += n
                if self.rng.random() < 0.3:
                    time.sleep(self.rng.uniform(0, 0.002))
        except (BrokenPipeError, OSError, ValueError):
            pass


def first_output_time():
    """Seconds from starting `encrypt` to its first stanza out, on this machine now (a busy
    machine or a sanitizer build starts it several times slower than an idle one)."""
    out = t.path("calibrate%d.out" % len(calibration))
    with open(out, "wb") as fo:
        p = subprocess.Popen([t.esession, "--home", a, "encrypt"], stdin=subprocess.PIPE,
                             stdout=fo, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    f = Feeder(p.stdin, t.rng)
    f.start()
    while os.path.getsize(out) == 0 and p.poll() is None and time.monotonic() - start < 10:
        time.sleep(0.001)
    took = time.monotonic() - start
    p.send_signal(signal.SIGKILL)
    p.wait()
    f.join(timeout=10)
    data = open(out, "rb").read()
    with open(out, "wb") as fo:  # a line cut by the kill is no stanza
        fo.write(data[:data.rfind(b"\n") + 1])
    calibration.append(out)  # its stanzas count in the reuse check like any other run's
    return took


calibration = []
collected, partial, empty_runs, stanzas = [], 0, 0, 0
list_failures = 0
# The kill delays scale with the start-up time, so that most kills land mid-stream whatever
# the load: the same mix of start-up and mid-stream kills on a fast or a slow machine.
startup = max(first_output_time() for _ in range(3))
t.log("encrypt writes its first stanza %.0f ms after it starts" % (startup * 1000))
t.log("killing encrypt %d times" % RUNS)
for run in range(RUNS):
    out = t.path("run%03d.out" % run)
    with open(out, "wb") as fo:
        p = subprocess.Popen([t.esession, "--home", a, "encrypt"], stdin=subprocess.PIPE,
                             stdout=fo, stderr=subprocess.DEVNULL)
    f = Feeder(p.stdin, t.rng)
    f.start()
    # Mostly mid-stream, sometimes during start-up (before or while the store opens).
    delay = (t.rng.uniform(0, startup) if t.rng.random() < 0.15
             else startup + t.rng.uniform(0.005, 0.08))
    time.sleep(delay)
    exited_early = p.poll()
    p.send_signal(signal.SIGKILL)
    rc = p.wait()
    f.join(timeout=10)
    try:
        p.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    t.check(exited_early is None and rc == -signal.SIGKILL,
            "run %d: encrypt was still running when killed (exit %s)" % (run, exited_early))
    data = open(out, "rb").read()
    if data and not data.endswith(b"\n"):
        # A line cut by the kill is not a stanza anybody received.
        partial += 1
        data = data[:data.rfind(b"\n") + 1]
        with open(out, "wb") as fo:
            fo.write(data)
    n = data.count(b"\n")
    stanzas += n
    if n:
        collected.append(out)
    else:
        empty_runs += 1
        os.unlink(out)
    # The store opens and the session is still there.
    r = t.run(a, "--json", "session", "list")
    ok = r.rc == 0 and ('"peer":"%s"' % BOB) in r.out_text and '"status":"active"' in r.out_text
    if not ok:
        list_failures += 1
        t.check(False, "run %d: session list after the kill" % run, r.describe())
        if list_failures > 5:
            break
t.log("%d runs: %d wrote stanzas (%d in all), %d wrote nothing, %d cut mid-line"
      % (RUNS, len(collected), stanzas, empty_runs, partial))
t.check(len(collected) >= RUNS // 4, "enough runs were killed after writing stanzas",
        len(collected))

# The session still works: one more stanza, which must not reuse a counter either.
r = t.run(a, "encrypt", input=('<message to="%s"><body>after the crashes</body></message>'
                               % BOB).encode())
t.check_rc(r, 0, "encrypt after the crash loop")
with open(t.path("after.out"), "wb") as fo:
    fo.write(r.out)
collected.append(t.path("after.out"))

con = sqlite3.connect("file:%s?mode=ro" % os.path.join(a, "esession.db"), uri=True, timeout=30)
ic = con.execute("PRAGMA integrity_check").fetchall()
con.close()
t.check(ic == [("ok",)], "PRAGMA integrity_check", ic)

rc, out, err = t.run_counters(snap, ALICE, BOB, collected + calibration, window=1 << 22)
summary = [l for l in out.splitlines() if l.startswith("# stanzas")]
t.log("esession-counters: %s" % (summary[0] if summary else "(no summary)"))
t.check(rc == 0, "no counter range used twice among all collected stanzas, each stanza "
        "matched (exit %d)" % rc, err[-3000:])
last = [l for l in out.splitlines() if l.startswith(t.path("after.out"))]
ranges = sorted(int(l.split()[1]) for l in out.splitlines() if not l.startswith("#"))
t.check(last and ranges and int(last[0].split()[1]) == ranges[-1],
        "the stanza encrypted after the loop has the highest counter", last)
t.finish()
