#!/usr/bin/env python3
"""cli.concurrency: 8 `encrypt` processes on one session at once, 100 stanzas each. No counter
value is used by two stanzas (esession-counters recovers each stanza's counter range from a
snapshot of the session taken before the run), the session stays usable (a further stanza
encrypts, with a fresh counter) and the peer decrypts all the stanzas in counter order."""

import os
import subprocess
import time

from clitest import ALICE, BOB, Test, expected_after_roundtrip, make_stanzas, normalized

PROCS, PER = 8, 100
t = Test("cli.concurrency")
a, b, ra, rb = t.session_pair()
thread = t.status_lines(ra, "ESTABLISHED")[0].split()[1]
snap = t.snapshot(a, "A-snapshot")

inputs, outputs, feeds = {}, [], []
procs = []
for k in range(PROCS):
    stanzas = make_stanzas(PER, BOB, t.rng, "p%d" % k)
    feeds.append(stanzas)
    out = t.path("out%d" % k)
    outputs.append(out)
    for i, s in enumerate(stanzas):
        inputs["p%d%d" % (k, i)] = s
    procs.append(subprocess.Popen([t.esession, "--home", a, "encrypt"], stdin=subprocess.PIPE,
                                  stdout=open(out, "wb"), stderr=subprocess.PIPE))
t.log("started %d encrypt processes" % PROCS)
# Feed the processes round-robin, a few stanzas at a time, so that all of them are busy at
# once (a process given its whole input at once may handle it as one batch).
for k, p in enumerate(procs):
    p.stdin.write((feeds[k][0] + "\n").encode())
    p.stdin.flush()
deadline = time.monotonic() + 60
while time.monotonic() < deadline and not all(
        os.path.getsize(o) > 0 or p.poll() is not None for o, p in zip(outputs, procs)):
    time.sleep(0.005)
i = 1
while i < PER:
    n = t.rng.randint(1, 4)
    for k, p in enumerate(procs):
        try:
            p.stdin.write("".join(x + "\n" for x in feeds[k][i:i + n]).encode())
            p.stdin.flush()
        except BrokenPipeError:
            pass
    i += n
    time.sleep(t.rng.uniform(0, 0.006))
for p in procs:
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
for k, p in enumerate(procs):
    err = p.stderr.read()
    try:
        p.wait(timeout=100)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    t.check(p.returncode == 0, "encrypt #%d exits 0 (got %s)" % (k, p.returncode), err.decode())
    n = len(open(outputs[k], "rb").read().splitlines())
    t.check(n == PER, "encrypt #%d wrote %d stanzas" % (k, PER), n)
t.log("encryptors done")

# The session stays usable: one more stanza.
extra = '<message to="%s" type="chat" id="extra"><body>after the storm</body></message>' % BOB
r = t.run(a, "encrypt", input=extra.encode())
t.check_rc(r, 0, "a further stanza encrypts")
with open(t.path("out-extra"), "wb") as f:
    f.write(r.out)
inputs["extra"] = extra

rc, out, err = t.run_counters(snap, ALICE, BOB, outputs + [t.path("out-extra")])
summary = [l for l in out.splitlines() if l.startswith("# stanzas")]
t.log("esession-counters: %s" % (summary[0] if summary else "(no summary)"))
t.check(rc == 0, "esession-counters: every stanza has a counter, no counter used twice "
        "(exit %d)" % rc, err[-3000:])
ranges = []
for line in out.splitlines():
    if line.startswith("#"):
        continue
    where, off, blocks = line.split()
    ranges.append((int(off), int(blocks), where))
t.check(len(ranges) == PROCS * PER + 1, "one counter range per stanza", len(ranges))
ranges.sort()
# How often consecutive counters belong to different processes: the processes did run at once.
switches = sum(1 for x, y in zip(ranges, ranges[1:])
               if x[2].rsplit(":", 1)[0] != y[2].rsplit(":", 1)[0])
t.log("counter order switches between processes %d times" % switches)
t.check(switches >= PROCS, "the encryptors ran concurrently (their counters interleave)",
        switches)
gaps = [(x, y) for x, y in zip(ranges, ranges[1:]) if x[0] + x[1] != y[0]]
t.check(not gaps and ranges and ranges[0][0] == 0,
        "the ranges are contiguous from the snapshot's counter (nothing reserved and lost)",
        gaps[:3])
t.check(ranges and ranges[-1][2].startswith(t.path("out-extra")),
        "the further stanza got the highest counter", ranges[-1:] if ranges else None)

# The checker itself detects reuse: a stanza encrypted from a rolled-back copy of the home
# (the snapshot) reuses counter 0; a stanza given twice reuses its range; a stanza with a
# corrupted MAC matches no counter.
rollback = t.snapshot(snap, "A-rollback")
r = t.run(rollback, "encrypt", input=extra.encode())
with open(t.path("out-rollback"), "wb") as f:
    f.write(r.out)
rc, out, err = t.run_counters(snap, ALICE, BOB, outputs + [t.path("out-rollback")])
t.check(rc == 1 and "counter reuse" in err, "esession-counters detects a rolled-back counter",
        "exit %d: %s" % (rc, err[-500:]))
rc, out, err = t.run_counters(snap, ALICE, BOB, [outputs[1], outputs[1]])
t.check(rc == 1 and "counter reuse" in err, "esession-counters detects a duplicated stanza",
        "exit %d: %s" % (rc, err[-500:]))
with open(t.path("out-corrupt"), "w") as f:
    line = open(outputs[2]).readline()
    i = line.index("<mac>") + 5
    f.write(line[:i] + ("B" if line[i] == "A" else "A") + line[i + 1:])
rc, out, err = t.run_counters(snap, ALICE, BOB, [t.path("out-corrupt")], window=20000)
t.check(rc == 1 and "no counter" in err, "esession-counters reports an unmatched stanza",
        "exit %d: %s" % (rc, err[-500:]))

# The peer decrypts everything, in counter order, in one fresh decrypt run.
lines = {}
for path in outputs + [t.path("out-extra")]:
    for i, l in enumerate(open(path, "rb").read().decode().splitlines(), 1):
        lines["%s:%d" % (path, i)] = l
ordered = [lines[w] for (_, _, w) in ranges if w in lines]
d = subprocess.run([t.esession, "--home", b, "decrypt"], input=("\n".join(ordered) + "\n").encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=100)
t.check(d.returncode == 0, "peer decrypts all %d stanzas in counter order (exit %d)"
        % (len(ordered), d.returncode), d.stderr.decode()[-2000:])
dec = d.stdout.decode().splitlines()
t.check(len(dec) == len(ordered), "one decrypted stanza per stanza", len(dec))
bad = 0
for o in dec:
    got = normalized(o)
    sid = dict(got[1]).get("id")
    want = expected_after_roundtrip(inputs[sid], ALICE, BOB, thread) if sid in inputs else None
    if got != want:
        bad += 1
        if bad == 1:
            t.check(False, "decrypted stanza %s equals its input" % sid, "%s\n%s" % (got, want))
t.check(bad == 0, "every decrypted stanza equals its input (%d differ)" % bad)
t.finish()
