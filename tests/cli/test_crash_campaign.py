#!/usr/bin/env python3
"""cli.crash-campaign: SIGKILL at random points of every operation that writes state or
plaintext, and after each kill the invariants that crash safety promises.

The operations (kills spread evenly over them; ESESSION_CRASH_CAMPAIGN_KILLS sets the total,
default 100, which CI runs; the full campaign is >= 1,000, see tests/RESULTS.md):

  negotiate3, negotiate4   `negotiate` killed (three- and four-message flow)
  respond3, respond4       `respond` killed (both flows)
  encrypt                  `encrypt` fed stanzas continuously
  decrypt                  `decrypt` fed genuine stanzas of the peer (sometimes a re-key among
                           them, sometimes a forged stanza)
  rekey, terminate         `rekey --to`, `terminate --to`
  seal                     `seal --file --format aesgcm -o OUT`
  open                     `open --file --format aesgcm`, to -o OUT or to standard output, its
                           input a pipe whose last bytes (the tag) come late; sometimes forged
ESESSION_CRASH_CAMPAIGN_OPS=op,op,... runs only those operations.

A kill counts when the process was still running when SIGKILL was sent. After each kill:
  - the store opens: `session list` exits 0 in both homes; PRAGMA integrity_check is ok;
  - no half-established session: a party that reported ESTABLISHED, or holds the new session,
    only does so when the party that sends the last message holds it too (the sender of the
    last message commits before writing it); a session both hold works both ways;
  - the session stays consistent: what a killed process wrote is delivered to the peer, then a
    probe stanza each way either decrypts to exactly what was sent or is refused with nothing
    on stdout and the receiving session ended (never a silent counter desynchronisation);
  - decrypt and open print nothing that is not authenticated: every complete line a killed
    decrypt printed is, in order, the plaintext of a genuine stanza; a killed open prints (and
    makes OUT) only once the whole input, tag included, was given, and never for a forged file;
  - no plaintext or temporary is left: OUT's directory holds no .OUT.tmp* and no partial OUT
    (OUT is absent or complete and right), and the spool directory (TMPDIR) is empty;
  - no counter was used twice: esession-counters over everything each side wrote under one
    sending key (from a snapshot of that side taken before), for every key the campaign used.
"""

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

from clitest import (ALICE, BOB, Test, expected_after_roundtrip, make_stanzas, normalized,
                     read, session_secrets, stored_session)

KILLS = int(os.environ.get("ESESSION_CRASH_CAMPAIGN_KILLS", "100"))
GROUPS = ["--groups", "14"]
OPS = ["negotiate3", "negotiate4", "respond3", "respond4", "encrypt", "decrypt", "rekey",
       "terminate", "seal", "open"]
# ESESSION_CRASH_CAMPAIGN_OPS=op,op,... restricts the campaign (to repeat one part of it).
if os.environ.get("ESESSION_CRASH_CAMPAIGN_OPS"):
    OPS = [o for o in OPS if o in os.environ["ESESSION_CRASH_CAMPAIGN_OPS"].split(",")]

t = Test("cli.crash-campaign")
spool = t.path("spool")
os.mkdir(spool)
ENV = dict(os.environ, TMPDIR=spool)
stats = {op: {"kills": 0, "attempts": 0} for op in OPS}
totals = {"reused": 0, "half": 0, "leftover": 0, "unauth": 0, "desync": 0, "store": 0}


def bump(op, key, n=1):
    stats[op][key] = stats[op].get(key, 0) + n


def fail(kind, op, what, detail=None):
    totals[kind] += 1
    t.check(False, "%s: %s" % (op, what), detail)
    if t.failures > 20:
        t.log("too many failures, stopping")
        report()
        t.finish()


# --- processes killed at a random moment ---------------------------------------------------

last_kill = [0.0]


def spawn_kill(argv, delay, feed=None, stdin=None):
    """Runs esession |argv| (status on fd 3 of the child), SIGKILLs it |delay| seconds after the
    start; |feed(pipe)| runs in a thread writing its standard input. Returns (killed, rc,
    stdout, status)."""
    d = t.path("run")
    os.makedirs(d, exist_ok=True)
    outp, stp = os.path.join(d, "out"), os.path.join(d, "status")
    with open(outp, "wb") as fo, open(stp, "wb") as fs:
        argv = [t.esession, "--status-fd", str(fs.fileno())] + argv
        p = subprocess.Popen(argv, stdin=subprocess.PIPE if feed else (stdin or
                                                                      subprocess.DEVNULL),
                             stdout=fo, stderr=subprocess.DEVNULL, pass_fds=(fs.fileno(),),
                             env=ENV)
    th = None
    if feed:
        th = threading.Thread(target=feed, args=(p.stdin,), daemon=True)
        th.start()
    time.sleep(delay)
    killed = p.poll() is None
    if killed:
        last_kill[0] = time.monotonic()
        p.send_signal(signal.SIGKILL)
    rc = p.wait()
    if th:
        th.join(timeout=30)
        try:
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
    return killed and rc == -signal.SIGKILL, rc, read(outp), read(stp)


def complete_lines(data):
    """The complete lines of a killed process's output (a line cut by the kill reaches
    nobody), and whether one was cut."""
    cut = bool(data) and not data.endswith(b"\n")
    if cut:
        data = data[:data.rfind(b"\n") + 1]
    return [l + b"\n" for l in data.split(b"\n")[:-1]], cut


# --- the store -------------------------------------------------------------------------------

def db(home):
    return sqlite3.connect("file:%s?mode=ro" % os.path.join(home, "esession.db"), uri=True,
                           timeout=30)


def sessions(home):
    con = db(home)
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute("SELECT thread, status, id FROM sessions")}
    finally:
        con.close()


def check_store(op, homes):
    for h in homes:
        r = t.run(h, "session", "list", env=ENV)
        if r.rc != 0:
            fail("store", op, "session list in %s exits %s" % (h, r.rc), r.describe())
        con = db(h)
        try:
            ic = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
        if ic != [("ok",)]:
            fail("store", op, "PRAGMA integrity_check in %s" % h, ic)
    left = os.listdir(spool)
    if left:
        fail("leftover", op, "files left in the spool directory (TMPDIR): %s" % left)
        for n in left:
            os.unlink(os.path.join(spool, n))


def active_session(home, peer):
    """(id, thread, send MAC key) of the active session with |peer|, or None."""
    con = db(home)
    try:
        rows = con.execute("SELECT id, thread, state FROM sessions WHERE peer_jid = ? AND "
                           "status = 'active' ORDER BY id DESC", (peer,)).fetchall()
    finally:
        con.close()
    if not rows:
        return None
    sid, thread, state = rows[0]
    s = session_secrets(stored_session(bytes(state))["session"])
    return sid, thread, bytes(s["send_mac"])


# --- counters: everything a side wrote, grouped by sending key -----------------------------

class Side:
    def __init__(self, name, home, jid, peer):
        self.name, self.home, self.jid, self.peer = name, home, jid, peer
        self.key = None      # (session id, send MAC key) of the open epoch
        self.snap = None
        self.files = []
        self.epochs = self.stanzas = 0
        self.n = 0

    def begin(self):
        """Called before anything that may encrypt: a new sending key opens a new epoch (a
        snapshot taken now, with that key and the counter before any of its output)."""
        cur = active_session(self.home, self.peer)
        key = (cur[0], cur[2]) if cur else None
        if key != self.key:
            self.close()
            self.key = key
            if key:
                self.n += 1
                self.snap = t.snapshot(self.home, "snap-%s-%d" % (self.name, self.n))

    def add(self, lines):
        if not lines:
            return
        if not self.key:
            fail("reused", "counters", "%s wrote stanzas without an active session" % self.name,
                 lines[:2])
            return
        self.n += 1
        f = t.path("wire-%s-%d" % (self.name, self.n))
        with open(f, "wb") as fo:
            fo.write(b"".join(lines))
        self.files.append(f)

    def close(self):
        if self.key and self.files:
            rc, out, err = t.run_counters(self.snap, self.jid, self.peer, self.files)
            self.epochs += 1
            self.stanzas += sum(read(f).count(b"\n") for f in self.files)
            if rc != 0:
                fail("reused", "counters", "%s: a counter used twice or a stanza unmatched "
                     "(esession-counters exit %d)" % (self.name, rc), err[-2000:])
            for f in self.files:
                os.unlink(f)
        if self.snap:
            shutil.rmtree(self.snap, ignore_errors=True)
        self.key, self.snap, self.files = None, None, []


a_home = t.init_home("A", ALICE)
b_home = t.init_home("B", BOB)
for h in (a_home, b_home):  # keys, for the three-message flow
    t.check_rc(t.run(h, "key", "generate", "--type", "ed25519"), 0, "key generate")
A = Side("A", a_home, ALICE, BOB)
B = Side("B", b_home, BOB, ALICE)
pool = {"A": make_stanzas(200, BOB, t.rng, "ab"), "B": make_stanzas(200, ALICE, t.rng, "ba")}
probe_no = [0]


def negotiate_clean():
    ra, rb, _ = t.relay_negotiation(a_home, ALICE, b_home, BOB, neg_args=GROUPS,
                                    resp_args=GROUPS)
    if not (t.check_rc(ra, 0, "negotiate (undisturbed)") and
            t.check_rc(rb, 0, "respond (undisturbed)")):
        report()
        t.finish()


def ensure_pair():
    """Both sides active on the same thread, or a new session."""
    sa, sb = active_session(a_home, BOB), active_session(b_home, ALICE)
    if not (sa and sb and sa[1] == sb[1]):
        negotiate_clean()


def send(src, dst, lines, op):
    """Delivers |lines| written by |src| (complete stanzas) to |dst|'s decrypt, undisturbed;
    returns the Result."""
    dst.begin()  # decrypt may answer (a termination acknowledgement)
    return t.run(dst.home, "decrypt", input=b"".join(lines), status=True, env=ENV)


def thread_of(line):
    e = normalized(line.decode())
    for c in e[3]:
        if c[0].endswith("}thread"):
            return c[2]
    return None


def probe(src, dst, op):
    """One stanza src -> dst. Returns "ok", "mute" (src cannot send), "ended" (refused, the
    receiving session ended); a silent desynchronisation or bad output is a failure."""
    probe_no[0] += 1
    body = "probe-%d" % probe_no[0]
    stanza = '<message to="%s" type="chat"><body>%s</body></message>' % (src.peer, body)
    src.begin()
    e = t.run(src.home, "encrypt", input=stanza.encode(), env=ENV)
    if e.rc != 0:
        if e.out:
            fail("desync", op, "encrypt of a probe failed but wrote output", e.describe())
        return "mute"
    lines, _ = complete_lines(e.out)
    src.add(lines)
    thread = thread_of(e.out)
    d = t.run(dst.home, "decrypt", input=e.out, status=True, env=ENV)
    if d.rc == 0:
        want = expected_after_roundtrip(stanza, src.jid, src.peer, thread)
        got = [normalized(l) for l in d.out_text.splitlines()]
        if got != [want]:
            fail("desync", op, "probe %s -> %s decrypted to something else" % (src.name,
                                                                               dst.name),
                 d.out_text)
        return "ok"
    st = sessions(dst.home).get(thread)
    if d.out or (st and st[0] == "active"):
        fail("desync", op, "probe %s -> %s refused, but %s; the receiving session is %s" % (
            src.name, dst.name, "output was printed" if d.out else "nothing ended",
            st and st[0]), d.describe())
    return "ended"


def probes(op, first=None):
    """Probes both ways (|first| the side that sends first); tallies the outcomes."""
    order = [A, B] if first in (None, "A") else [B, A]
    for src in order:
        dst = B if src is A else A
        r = probe(src, dst, op)
        bump(op, "probe %s->%s %s" % (src.name, dst.name, r))


# --- negotiate / respond ---------------------------------------------------------------------

took = {}


def op_negotiation(op):
    flow = int(op[-1])
    victim = "a" if op.startswith("negotiate") else "b"
    args = ["--flow", str(flow)] + GROUPS
    if flow not in took:
        t0 = time.monotonic()
        ra, rb, _ = t.relay_negotiation(a_home, ALICE, b_home, BOB, neg_args=args,
                                        resp_args=GROUPS)
        took[flow] = time.monotonic() - t0
        t.check_rc(ra, 0, "flow %d calibration: negotiate" % flow)
        t.check_rc(rb, 0, "flow %d calibration: respond" % flow)
    if t.rng.random() < 0.5:
        kill = (victim, None, t.rng.uniform(0, took[flow] * 1.2))
    else:
        kill = (victim, t.rng.randrange(2), t.rng.choice([0, 0, t.rng.uniform(0, 0.002)]))
    before = {"a": sessions(a_home), "b": sessions(b_home)}
    ra, rb, killed = t.relay_negotiation(a_home, ALICE, b_home, BOB, neg_args=args,
                                         resp_args=GROUPS, kill=kill, timeout=60)
    after = {"a": sessions(a_home), "b": sessions(b_home)}
    check_store(op, [a_home, b_home])
    res = {"a": ra, "b": rb}
    last_sender = "b" if flow == 4 else "a"
    last_receiver = "a" if flow == 4 else "b"
    names = {"a": "initiator", "b": "responder"}
    # The party that receives the last message holds the session only if its sender does.
    for th in set(after[last_receiver]) - set(before[last_receiver]):
        if th not in after[last_sender]:
            fail("half", op, "the %s holds session %s, the %s (who sends the last message) "
                 "has no record of it (kill %r)" % (names[last_receiver], th,
                                                    names[last_sender], kill))
    # Whoever reported ESTABLISHED: the other holds it too, unless that other is the victim
    # and receives the last message (its kill before storing is the last message lost).
    for who in ("a", "b"):
        other = "b" if who == "a" else "a"
        for line in t.status_lines(res[who], "ESTABLISHED"):
            th = line.split()[1]
            if th not in after[who]:
                fail("half", op, "%s reported ESTABLISHED on %s but has no record" % (
                    names[who], th))
            if th not in after[other] and not (other == victim and other == last_receiver):
                fail("half", op, "%s reported ESTABLISHED on %s; the %s has no record (kill "
                     "%r)" % (names[who], th, names[other], kill),
                     res[who].status_text)
            elif th in after[other]:
                bump(op, "established by both")
    if killed:
        # A session both hold works both ways.
        sa, sb = active_session(a_home, BOB), active_session(b_home, ALICE)
        if sa and sb and sa[1] == sb[1]:
            for src, dst in ((A, B), (B, A)):
                r = probe(src, dst, op)
                if r != "ok":
                    fail("desync", op, "a session both hold (%s) does not carry a stanza "
                         "%s -> %s: %s" % (sa[1], src.name, dst.name, r))
        elif sa and sa[1] not in after["b"] or sb and sb[1] not in after["a"]:
            bump(op, "one-sided session (last message lost with the kill)")
    return killed


# --- encrypt ---------------------------------------------------------------------------------

def feeder(lines, sent, gap=0.002):
    def run(pipe):
        i = 0
        try:
            while i < len(lines):
                n = t.rng.randint(1, 8)
                chunk = lines[i:i + n]
                pipe.write(b"".join(chunk))
                pipe.flush()
                sent.extend(chunk)
                i += n
                if t.rng.random() < 0.3:
                    time.sleep(t.rng.uniform(0, gap))
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            pipe.close()
        except (BrokenPipeError, OSError):
            pass
    return run


def check_decrypt_output(op, lines, want, what):
    """Every complete line printed equals, in order, the expected plaintexts."""
    got = []
    for l in lines:
        try:
            got.append(normalized(l.decode()))
        except Exception as e:  # noqa: BLE001 - an unparsable line is a failure
            got.append(("unparsable", str(e), l))
    if got != want[:len(got)]:
        bad = next(i for i, (g, w) in enumerate(zip(got + [None], want + [None])) if g != w)
        fail("unauth", op, "%s: line %d of the output is not the plaintext of the genuine "
             "stanza in that place" % (what, bad + 1), b"".join(lines[bad:bad + 1]))
        return False
    return True


def op_encrypt(op):
    ensure_pair()
    A.begin()
    thread = active_session(a_home, BOB)[1]
    start = t.rng.randrange(200)
    src = [(pool["A"][(start + i) % 200] + "\n").encode() for i in range(600)]
    sent = []
    delay = t.rng.uniform(0, 0.02) if t.rng.random() < 0.2 else t.rng.uniform(0.02, 0.08)
    killed, rc, out, _ = spawn_kill(["--home", a_home, "encrypt"], delay, feeder(src, sent))
    lines, cut = complete_lines(out)
    check_store(op, [a_home])
    A.add(lines)
    bump(op, "stanzas written", len(lines))
    if cut:
        bump(op, "line cut by the kill")
    if lines:
        # What it wrote is a gap-free run of counters: the peer decrypts all of it.
        d = send(A, B, lines, op)
        want = [expected_after_roundtrip(s.decode(), ALICE, BOB, thread) for s in src[:len(lines)]]
        if d.rc != 0:
            fail("desync", op, "the peer refuses what a killed encrypt wrote", d.describe())
        check_decrypt_output(op, [(l + "\n").encode() for l in d.out_text.splitlines()], want,
                             "the peer's decrypt")
        if len(d.out_text.splitlines()) != len(lines):
            fail("desync", op, "the peer decrypted %d of %d stanzas" % (
                len(d.out_text.splitlines()), len(lines)))
    probes(op)
    return killed


# --- decrypt ---------------------------------------------------------------------------------

def forge(line):
    """A copy of an encrypted stanza with one bit of its ciphertext flipped (MAC unchanged)."""
    s = line.decode()
    i = s.index("<data>") + len("<data>") + 2
    c = s[i]
    alt = "B" if c != "B" else "C"
    return (s[:i] + alt + s[i + 1:]).encode()


def op_decrypt(op):
    ensure_pair()
    thread = active_session(a_home, BOB)[1]
    n = t.rng.randint(10, 80)
    start = t.rng.randrange(200)
    plain = [pool["A"][(start + i) % 200] for i in range(n)]
    feed = []   # (kind, line, index into plain)
    cut_at = t.rng.randrange(n) if t.rng.random() < 0.3 else None  # a re-key before it
    parts = [(0, n)] if cut_at is None else [(0, cut_at), (cut_at, n)]
    for k, (lo, hi) in enumerate(parts):
        if k == 1:
            A.begin()
            r = t.run(a_home, "rekey", "--to", BOB, env=ENV)
            if r.rc == 0:
                A.add([r.out])
                feed.append(("ctl", r.out, lo))
            else:
                bump(op, "rekey refused (previous not acknowledged)")
        if hi > lo:
            A.begin()
            e = t.run(a_home, "encrypt", input="".join(s + "\n" for s in plain[lo:hi]).encode(),
                      env=ENV)
            if not t.check_rc(e, 0, "decrypt: the sender's encrypt"):
                return False
            lines, _ = complete_lines(e.out)
            A.add(lines)
            feed += [("data", l, lo + i) for i, l in enumerate(lines)]
    forged_at = None
    if t.rng.random() < 0.25:
        datas = [i for i, f in enumerate(feed) if f[0] == "data"]
        j = t.rng.choice(datas)
        forged_at = j
        feed.insert(j, ("forged", forge(feed[j][1]), feed[j][2]))
        bump(op, "with a forged stanza")
    if cut_at is not None:
        bump(op, "with a re-key")
    want = [expected_after_roundtrip(s, ALICE, BOB, thread) for s in plain]
    if forged_at is not None:
        want_ok = want[:feed[forged_at][2]]  # nothing from the forgery on
    else:
        want_ok = want
    sent = []
    B.begin()
    # decrypt keeps up with its input (a few microseconds a stanza), so it lives about as long
    # as the feeding: pauses of up to 10 ms, and a kill within the first 30 ms.
    killed, rc, out, st = spawn_kill(["--home", b_home, "decrypt"], t.rng.uniform(0, 0.03),
                                     feeder([f[1] for f in feed], sent, 0.01))
    lines, cut = complete_lines(out)
    check_store(op, [b_home])
    if cut:
        bump(op, "line cut by the kill")
    # Termination acknowledgements aside (none here), every line is plaintext.
    check_decrypt_output(op, lines, want_ok, "the killed decrypt")
    k = len(lines)
    bump(op, "stanzas printed", k)
    # Redeliver the genuine stanzas after the last one printed: all decrypt, or the first is
    # refused (it was consumed, or the session ended) and the session has ended.
    last = max([i for i, f in enumerate(feed) if f[0] == "data" and f[2] < k] or [-1])
    rest = [f for f in feed[last + 1:] if f[0] != "forged"]
    if rest:
        d = t.run(b_home, "decrypt", input=b"".join(f[1] for f in rest), env=ENV)
        want_rest = [want[f[2]] for f in rest if f[0] == "data"]
        if d.rc == 0:
            check_decrypt_output(op, [(l + "\n").encode() for l in d.out_text.splitlines()],
                                 want_rest, "the redelivery")
            if len(d.out_text.splitlines()) != len(want_rest):
                fail("desync", op, "redelivery printed %d of %d stanzas" % (
                    len(d.out_text.splitlines()), len(want_rest)), d.describe())
            bump(op, "redelivery decrypted")
        else:
            s = sessions(b_home).get(thread)
            if d.out or (s and s[0] == "active"):
                fail("desync", op, "redelivery refused (exit %d) but %s; the session is %s" % (
                    d.rc, "it printed" if d.out else "the session did not end", s and s[0]),
                     d.describe())
            bump(op, "redelivery refused, session ended")
    probes(op, first="B")
    return killed


# --- rekey / terminate -----------------------------------------------------------------------

ctl_time = {}


def op_control(op):
    ensure_pair()
    A.begin()
    if op not in ctl_time:
        t0 = time.monotonic()
        t.run(a_home, "session", "list", env=ENV)
        ctl_time[op] = (time.monotonic() - t0) * 2.5
    killed, rc, out, st = spawn_kill(["--home", a_home, op, "--to", BOB],
                                     t.rng.uniform(0, ctl_time[op]))
    lines, cut = complete_lines(out)
    check_store(op, [a_home])
    A.add(lines)
    after = sessions(a_home)
    if lines:
        bump(op, "stanza written")
        d = send(A, B, lines, op)
        if d.rc != 0:
            fail("desync", op, "the peer refuses what a killed %s wrote" % op, d.describe())
        elif op == "rekey":
            if d.out or len(t.status_lines(d, "REKEYED")) != 1:
                fail("desync", op, "the peer's decrypt of the re-key", d.describe())
        else:
            outl = d.out_text.splitlines()
            if len(outl) != 2 or "terminate" not in outl[0] or "<c xmlns=" not in outl[1]:
                fail("desync", op, "the peer's decrypt of the termination: want the request "
                     "and an encrypted acknowledgement", d.describe())
            else:
                B.add([(outl[1] + "\n").encode()])
                f = t.run(a_home, "decrypt", input=(outl[1] + "\n").encode(), status=True,
                          env=ENV)
                if f.rc != 0 or not t.status_lines(f, "TERMINATED"):
                    fail("desync", op, "the initiator's decrypt of the acknowledgement",
                         f.describe())
                for h, p in ((a_home, BOB), (b_home, ALICE)):
                    if active_session(h, p):
                        fail("desync", op, "a session is still active after the termination "
                             "went through", sessions(h))
    elif op == "terminate":
        closing = [th for th, (s, _) in after.items() if s == "closing"]
        bump(op, "closing without a stanza" if closing else "not committed")
    elif op == "rekey":
        bump(op, "no stanza")
    if cut:
        bump(op, "line cut by the kill")
    probes(op, first="B")
    return killed


# --- seal / open (aesgcm) --------------------------------------------------------------------

def dir_check(op, work, allowed, out):
    names = set(os.listdir(work))
    tmp = [n for n in names if n.startswith("." + os.path.basename(out) + ".tmp")]
    extra = names - set(allowed) - {os.path.basename(out)}
    if tmp or extra:
        fail("leftover", op, "files left next to OUT: %s" % sorted(set(tmp) | extra))
        return False
    return True


plain_file = t.path("plain.bin")
with open(plain_file, "wb") as f:
    f.write(os.urandom(3 << 20))
plain_hash = hashlib.sha256(read(plain_file)).hexdigest()
sealed_key, sealed = t.path("sealed.key"), t.path("sealed.aesgcm")
r = t.run(None, "seal", "--file", "--format", "aesgcm", "--key-out", sealed_key, "-o", sealed,
          plain_file, env=ENV)
t.check_rc(r, 0, "seal of the reference file")
sealed_data = read(sealed)
forged_data = sealed_data[:-40] + bytes([sealed_data[-40] ^ 1]) + sealed_data[-39:]
seal_time = [None]


def op_seal(op):
    work = t.path("seal-work")
    os.makedirs(work, exist_ok=True)
    for n in os.listdir(work):
        os.unlink(os.path.join(work, n))
    out, key = os.path.join(work, "OUT"), os.path.join(work, "OUT.key")
    if seal_time[0] is None:
        t0 = time.monotonic()
        t.run(None, "seal", "--file", "--format", "aesgcm", "--key-out", key, "-o", out,
              plain_file, env=ENV)
        seal_time[0] = time.monotonic() - t0
        for n in os.listdir(work):
            os.unlink(os.path.join(work, n))
    killed, rc, _, _ = spawn_kill(["seal", "--file", "--format", "aesgcm", "--key-out", key,
                                   "-o", out, plain_file], t.rng.uniform(0, seal_time[0] * 1.1))
    check_store(op, [])
    dir_check(op, work, ["OUT.key"], out)
    if os.path.exists(out):
        bump(op, "OUT complete")
        if not os.path.exists(key):
            fail("leftover", op, "OUT exists without its key")
        else:
            o = t.run(None, "open", "--file", "--format", "aesgcm", "--key-file", key, out,
                      env=ENV)
            if o.rc != 0 or hashlib.sha256(o.out).hexdigest() != plain_hash:
                fail("leftover", op, "OUT is there but does not open to the plaintext",
                     o.describe()[:500])
    elif os.path.exists(key):
        bump(op, "key file without OUT (harmless: no file it opens)")
    return killed


def op_open(op):
    work = t.path("open-work")
    os.makedirs(work, exist_ok=True)
    for n in os.listdir(work):
        os.unlink(os.path.join(work, n))
    out = os.path.join(work, "OUT")
    to_file = t.rng.random() < 0.5
    forged = t.rng.random() < 0.3
    data = forged_data if forged else sealed_data
    tail_sent = [None]   # when the last 64 bytes (the tag among them) started going out
    hold = t.rng.uniform(0, 0.05)

    def feed(pipe):
        try:
            for i in range(0, len(data) - 64, 1 << 16):
                pipe.write(data[i:min(i + (1 << 16), len(data) - 64)])
            pipe.flush()
            time.sleep(hold)
            tail_sent[0] = time.monotonic()
            pipe.write(data[-64:])
            pipe.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
    argv = ["open", "--file", "--format", "aesgcm", "--key-file", sealed_key]
    if to_file:
        argv += ["-o", out]
    killed, rc, stdout, _ = spawn_kill(argv, t.rng.uniform(0, 0.09), feed)
    # Whether the tag could have been read: the tail went out before the kill.
    tail_before = not killed or (tail_sent[0] is not None and tail_sent[0] < last_kill[0])
    check_store(op, [])
    dir_check(op, work, [], out)
    bump(op, "to OUT" if to_file else "to stdout")
    if forged:
        bump(op, "forged")
    made = os.path.exists(out)
    if forged and (stdout or made):
        fail("unauth", op, "a forged file: %s" % ("OUT was made" if made else
                                                  "%d bytes on stdout" % len(stdout)))
    if not forged:
        if not tail_before and (stdout or made):
            fail("unauth", op, "output before the tag was given: %s" % (
                "OUT was made" if made else "%d bytes on stdout" % len(stdout)))
        plain = read(plain_file)
        if stdout and plain[:len(stdout)] != stdout:
            fail("unauth", op, "stdout is not the plaintext")
        if made and hashlib.sha256(read(out)).hexdigest() != plain_hash:
            fail("leftover", op, "OUT is there but is not the whole plaintext")
        if made or stdout:
            bump(op, "output after the tag")
    return killed


HANDLERS = {"negotiate3": op_negotiation, "negotiate4": op_negotiation,
            "respond3": op_negotiation, "respond4": op_negotiation, "encrypt": op_encrypt,
            "decrypt": op_decrypt, "rekey": op_control, "terminate": op_control,
            "seal": op_seal, "open": op_open}


def report():
    A.close()
    B.close()
    t.log("per operation (kills / attempts, outcomes):")
    for op in OPS:
        s = stats[op]
        extra = ", ".join("%s %d" % (k, v) for k, v in sorted(s.items())
                          if k not in ("kills", "attempts"))
        t.log("  %-10s %4d / %4d  %s" % (op, s["kills"], s["attempts"], extra))
    t.log("kills in all: %d; counters checked: A %d stanzas in %d keys, B %d stanzas in %d keys"
          % (sum(stats[o]["kills"] for o in OPS), A.stanzas, A.epochs, B.stanzas, B.epochs))
    t.log("reused counters %(reused)d, half-established %(half)d, leftover plaintext or "
          "temporaries %(leftover)d, unauthenticated output %(unauth)d, desynchronised "
          "sessions %(desync)d, store failures %(store)d" % totals)


quota = {op: KILLS // len(OPS) + (1 if i < KILLS % len(OPS) else 0) for i, op in enumerate(OPS)}
t.log("%d kills: %s" % (KILLS, ", ".join("%s %d" % (o, quota[o]) for o in OPS)))
while True:
    todo = [op for op in OPS if stats[op]["kills"] < quota[op]
            and stats[op]["attempts"] < 6 * quota[op] + 10]
    if not todo:
        break
    op = t.rng.choice(todo)
    stats[op]["attempts"] += 1
    if HANDLERS[op](op):
        stats[op]["kills"] += 1
for op in OPS:
    t.check(stats[op]["kills"] >= quota[op], "%s: %d kills, want %d" % (
        op, stats[op]["kills"], quota[op]))
report()
t.finish()
