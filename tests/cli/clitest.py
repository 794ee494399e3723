"""Shared helpers for the esession command-line tests (python3 stdlib only).

Each test script is run by ctest as:  test_X.py ESESSION_BINARY ESESSION_COUNTERS_BINARY
It exits 0 when every check passed, 1 when one failed, 77 (ctest SKIP_RETURN_CODE) when it had
to skip, saying why.
"""

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ALICE = "alice@example.org/pda"
BOB = "bob@example.com/laptop"
NS_C = "http://www.xmpp.org/extensions/xep-0200.html#ns"
NS_CLIENT = "jabber:client"

EXIT_OK, EXIT_CRYPTO, EXIT_INPUT, EXIT_STATE, EXIT_REFUSED = 0, 1, 2, 3, 4

# scripts/test-sanitize runs the suite on an AddressSanitizer build: its shadow memory and
# quarantine add tens of MiB to every process, so memory bounds are checked at four times their
# value there (still far below what unbounded buffering would take).
SANITIZED = bool(os.environ.get("ESESSION_SANITIZED"))


def memory_bound(nbytes):
    """The peak-memory bound a test checks for |nbytes| in a plain build."""
    return nbytes * 4 if SANITIZED else nbytes


class Result:
    def __init__(self, args, rc, out, err, status=b""):
        self.args, self.rc, self.out, self.err, self.status = args, rc, out, err, status

    @property
    def out_text(self):
        return self.out.decode("utf-8", "replace")

    @property
    def err_text(self):
        return self.err.decode("utf-8", "replace")

    @property
    def status_text(self):
        return self.status.decode("utf-8", "replace")

    def describe(self):
        return "esession %s -> rc=%s\n  stderr: %s\n  stdout: %.400s" % (
            " ".join(self.args), self.rc, self.err_text.strip().replace("\n", "\n          "),
            self.out_text.strip())


class Test:
    """Test context: binaries, a temporary directory, check counters."""

    def __init__(self, name):
        if len(sys.argv) < 2:
            print("usage: %s ESESSION [ESESSION_COUNTERS]" % sys.argv[0], file=sys.stderr)
            sys.exit(2)
        self.name = name
        self.esession = os.path.abspath(sys.argv[1])
        self.counters = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
        for b in [self.esession] + ([self.counters] if self.counters else []):
            if not os.access(b, os.X_OK):
                self.skip("binary %s is not built" % b)
        self.dir = tempfile.mkdtemp(prefix="esession-%s-" % name)
        self.failures = 0
        self.checks = 0
        self.t0 = time.monotonic()
        seed = os.environ.get("ESESSION_TEST_SEED")
        self.seed = int(seed) if seed else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.log("temporary directory %s, random seed %d (set ESESSION_TEST_SEED to repeat)"
                 % (self.dir, self.seed))

    # --- reporting ---
    def log(self, msg):
        print("[%6.2fs] %s" % (time.monotonic() - getattr(self, "t0", time.monotonic()), msg),
              flush=True)

    def check(self, cond, what, detail=None):
        self.checks += 1
        if cond:
            return True
        self.failures += 1
        print("FAIL: %s" % what, flush=True)
        if detail:
            print("  " + str(detail).replace("\n", "\n  "), flush=True)
        return False

    def check_rc(self, r, want, what):
        return self.check(r.rc == want, "%s: exit status %s, want %s" % (what, r.rc, want),
                          r.describe())

    def check_error_line(self, r, what, contains=None):
        """The command printed exactly one 'esession: error: ...' line; only hints besides."""
        lines = [l for l in r.err_text.splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("esession: error: ")]
        others = [l for l in lines if not l.startswith("esession: error: ")
                  and not l.startswith("esession: hint: ")]
        ok = self.check(len(errors) == 1 and not others,
                        "%s: want exactly one 'esession: error:' line (hints allowed)" % what,
                        r.describe())
        if ok and contains:
            ok = self.check(contains in errors[0],
                            "%s: error line should mention %r" % (what, contains), errors[0])
        return ok

    def skip(self, why):
        print("SKIP: %s" % why, flush=True)
        sys.exit(77)

    def finish(self):
        elapsed = time.monotonic() - self.t0
        keep = bool(os.environ.get("ESESSION_TEST_KEEP"))
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.failures:
            print("%s: %d of %d checks FAILED (%.1fs)%s" % (
                self.name, self.failures, self.checks, elapsed,
                "; kept " + self.dir if keep else "; set ESESSION_TEST_KEEP=1 to keep the files"),
                flush=True)
            sys.exit(1)
        print("%s: all %d checks passed (%.1fs)" % (self.name, self.checks, elapsed), flush=True)
        sys.exit(0)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # --- running the binary ---
    def cmd(self, home, *args):
        a = []
        if home is not None:
            a += ["--home", home]
        return a + list(args)

    def run(self, home, *args, input=b"", status=False, timeout=60, env=None):
        """Runs esession synchronously. input: bytes, or a path opened as stdin."""
        argv = self.cmd(home, *args)
        sfd = None
        if status:
            rfd, wfd = os.pipe()
            argv = argv[:2] + ["--status-fd", str(wfd)] + argv[2:] if home else \
                ["--status-fd", str(wfd)] + argv
            sfd = (rfd, wfd)
        stdin = subprocess.PIPE
        fin = None
        if isinstance(input, str):
            fin = open(input, "rb")
            stdin = fin
        try:
            p = subprocess.Popen([self.esession] + argv, stdin=stdin, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE,
                                 pass_fds=(sfd[1],) if sfd else (), env=env)
            if sfd:
                os.close(sfd[1])
            out, err = p.communicate(input if stdin == subprocess.PIPE else None,
                                     timeout=timeout)
        finally:
            if fin:
                fin.close()
        st = b""
        if sfd:
            with os.fdopen(sfd[0], "rb") as f:
                st = f.read()
        return Result(argv, p.returncode, out, err, st)

    def init_home(self, name, jid):
        home = self.path(name)
        r = self.run(home, "init", "--jid", jid)
        if r.rc != 0:
            self.check_rc(r, 0, "init %s" % jid)
            self.finish()
        return home

    def negotiate(self, home_a, jid_a, home_b, jid_b, neg_args=(), resp_args=(), timeout=60):
        """Runs `respond` (B) and `negotiate` (A) as two processes over two fifos.
        Returns (result_a, result_b) with their status-fd output."""
        d = tempfile.mkdtemp(dir=self.dir, prefix="fifo-")
        a2b, b2a = os.path.join(d, "a2b"), os.path.join(d, "b2a")
        os.mkfifo(a2b)
        os.mkfifo(b2a)
        # The shell opens the redirections in the order that cannot deadlock:
        #   respond > b2a < a2b      and      negotiate < b2a > a2b
        def spawn(home, args, redirs, tag):
            errf = os.path.join(d, tag + ".err")
            stf = os.path.join(d, tag + ".status")
            argv = " ".join(shq(x) for x in [self.esession, "--home", home, "--status-fd", "3"]
                            + list(args))
            sh = "exec %s %s 2>%s 3>%s" % (argv, redirs, shq(errf), shq(stf))
            return subprocess.Popen(["sh", "-c", sh]), errf, stf
        pb, eb, sb = spawn(home_b, ["respond"] + list(resp_args),
                           "> %s < %s" % (shq(b2a), shq(a2b)), "b")
        pa, ea, sa = spawn(home_a, ["negotiate", "--to", jid_b] + list(neg_args),
                           "< %s > %s" % (shq(b2a), shq(a2b)), "a")
        out = []
        for p, e, s, argv in ((pa, ea, sa, ["negotiate", "--to", jid_b] + list(neg_args)),
                              (pb, eb, sb, ["respond"] + list(resp_args))):
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
                self.check(False, "negotiation process timed out: %s" % argv)
            out.append(Result(argv, rc, b"", read(e), read(s)))
        shutil.rmtree(d, ignore_errors=True)
        return out[0], out[1]

    def relay_negotiation(self, home_a, jid_a, home_b, jid_b, neg_args=(), resp_args=(),
                          a_to_b=None, b_to_a=None, kill=None, timeout=60):
        """Runs `respond` (B) and `negotiate` (A) with this process in the middle: every stanza
        (one per line) goes through a relay thread, which may rewrite it (a_to_b, b_to_a:
        bytes -> bytes, the man in the middle). |kill|, if given, is (who, after, delay): SIGKILL
        process |who| ("a" or "b") |delay| seconds after it wrote its stanza number |after|
        (0-based) — killed before that stanza is passed on — or, when |after| is None, |delay|
        seconds after both started. What a killed process had written still reaches its peer,
        whose input then ends. Returns (result_a, result_b, killed) with status-fd output;
        killed is True when the kill happened while the process was still running."""
        import signal
        import threading
        d = tempfile.mkdtemp(dir=self.dir, prefix="relay-")
        procs, files = {}, {}
        for who, home, args in (("b", home_b, ["respond"] + list(resp_args)),
                                ("a", home_a, ["negotiate", "--to", jid_b] + list(neg_args))):
            st = open(os.path.join(d, who + ".status"), "wb")
            er = open(os.path.join(d, who + ".err"), "wb")
            files[who] = (st, er, args)
            procs[who] = subprocess.Popen(
                [self.esession, "--home", home, "--status-fd", str(st.fileno())] + args,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=er,
                pass_fds=(st.fileno(),))
        killed = [False]
        lock = threading.Lock()

        def do_kill(who):
            with lock:
                p = procs[who]
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    killed[0] = True

        def pump(src, dst, transform, who):
            n = 0
            try:
                for line in iter(procs[src].stdout.readline, b""):
                    if kill and kill[0] == src and kill[1] == n:
                        if kill[2]:
                            time.sleep(kill[2])
                        do_kill(src)
                    n += 1
                    if not line.endswith(b"\n"):
                        break  # cut by a kill: not a stanza anybody receives
                    if transform:
                        line = transform(line)
                    procs[dst].stdin.write(line)
                    procs[dst].stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                procs[dst].stdin.close()
            except (BrokenPipeError, OSError):
                pass

        threads = [threading.Thread(target=pump, args=("a", "b", a_to_b, "a"), daemon=True),
                   threading.Thread(target=pump, args=("b", "a", b_to_a, "b"), daemon=True)]
        for th in threads:
            th.start()
        if kill and kill[1] is None:
            timer = threading.Timer(kill[2], do_kill, args=(kill[0],))
            timer.start()
        out = {}
        for who in ("a", "b"):
            p = procs[who]
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
                self.check(False, "negotiation process timed out: %s" % files[who][2])
            out[who] = rc
        if kill and kill[1] is None:
            timer.cancel()
            timer.join()
        for th in threads:
            th.join(timeout=10)
        res = []
        for who in ("a", "b"):
            st, er, args = files[who]
            st.close()
            er.close()
            procs[who].stdout.close()
            res.append(Result(args, out[who], b"", read(er.name), read(st.name)))
        shutil.rmtree(d, ignore_errors=True)
        return res[0], res[1], killed[0]

    def session_pair(self, label=""):
        """Two homes, Alice's and Bob's (named after |label|), with a 4-message session between
        them. Returns (home_a, home_b, result_a, result_b); ends the test if it fails."""
        pre = label + "-" if label else ""
        a = self.init_home(pre + "A", ALICE)
        b = self.init_home(pre + "B", BOB)
        ra, rb = self.negotiate(a, ALICE, b, BOB)
        what = (label + ": ") if label else ""
        if not (self.check_rc(ra, 0, what + "negotiate") and self.check_rc(rb, 0, what + "respond")):
            self.finish()
        return a, b, ra, rb

    def status_lines(self, r, keyword):
        pre = "[ESESSION:] %s" % keyword
        return [l[len(pre):].strip() for l in r.status_text.splitlines()
                if l == pre or l.startswith(pre + " ")]

    # --- state inspection ---
    def query(self, home, sql):
        """The rows of |sql| run on the home's database, opened read-only."""
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(home, "esession.db"), uri=True,
                              timeout=30)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def session_rows(self, home):
        """Every session's (id, peer_jid, thread, status, state), read-only from the database."""
        return self.query(home, "SELECT id, peer_jid, thread, status, state FROM sessions "
                                "ORDER BY id")

    def session_status(self, home, peer):
        r = self.run(home, "--json", "session", "list")
        import json
        if r.rc != 0:
            return None
        for s in json.loads(r.out_text or "[]"):
            if s["peer"] == peer:
                return s["status"]
        return None

    def snapshot(self, home, name):
        """A copy of a home (no process may be writing it)."""
        dst = self.path(name)
        shutil.copytree(home, dst, symlinks=True)
        return dst

    def run_counters(self, snapshot, account, peer, files, window=1 << 20):
        p = subprocess.run([self.counters, "--home", snapshot, "--account", account, "--peer",
                            peer, "--window", str(window)] + list(files),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        return p.returncode, p.stdout.decode(), p.stderr.decode()


def shq(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    """The file's bytes, or b"" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


# --- stored session state ---

def stored_session(blob):
    """The fields of a stored session (lib/engine/session_record.cpp, "ESC1"): sas, mode, fingerprint,
    retained id, continuity, the protocol state (ESS1) and, if present, the PKI verdict and our own
    identification (mode, why our key was unused)."""
    assert blob[:4] == b"ESC1", "not a stored session"
    pos, out = 4, []
    while pos < len(blob):
        n = int.from_bytes(blob[pos:pos + 4], "big")
        out.append(blob[pos + 4:pos + 4 + n])
        pos += 4 + n
    keys = ["sas", "mode", "fingerprint", "retained", "continuity", "session", "pki", "own_mode",
            "own_key_unused"]
    return dict(zip(keys, out))


def session_secrets(ess1):
    """The secret fields of a protocol state (lib/session/session_state.cpp, "ESS1" version 1 to 3):
    state (0 active, 1 closing, 2 ended) and every key, private value and MAC key it holds."""
    pos = [0]

    def take(n):
        v = ess1[pos[0]:pos[0] + n]
        assert len(v) == n, "truncated session state"
        pos[0] += n
        return v

    def u32():
        return int.from_bytes(take(4), "big")

    def blob():
        return take(u32())
    assert take(4) == b"ESS1", "not an ESS1 state"
    version = take(1)[0]
    assert version in (1, 2, 3), "not an ESS1 version 1 to 3 state"
    take(5 + (version >= 2) + 1)  # compat, g1, g2, g4, g5a, (version 2) g5b; flow
    take(4 + 1 + 1)        # modp, cipher, hash
    for _ in range(u32()):  # stanzas
        blob()
    take(2)                # init_pubkey, resp_pubkey
    blob()                 # sign_alg
    take(4)                # rekey_freq
    blob()                 # logging
    blob()                 # ver
    take(1)                # initiator
    blob(), blob(), blob()  # local_jid, peer_jid, thread
    s = {"send_cipher": blob(), "send_mac": blob()}
    take(32)               # send_ctr, recv_ctr
    s["my_private"] = blob()
    blob()                 # peer_public (public)
    s["state"] = take(1)[0]
    s["recv"] = [(blob(), blob()) for _ in range(u32())]
    s["pending_private"] = blob() if take(1) == b"\x01" else b""
    take(4 + 8)            # keys_received, sent_since_rekey
    s["old_mac_keys"] = [blob() for _ in range(u32())]
    s["prev_send_mac"] = blob()
    if version >= 2:
        take(2)            # send_carry, recv_carry
    if version >= 3:
        take(8)            # send_blocks
    assert pos[0] == len(ess1), "trailing bytes in the session state"
    return s


def secret_values(s):
    """Every non-trivial secret byte string of session_secrets() output."""
    vals = [s["send_cipher"], s["send_mac"], s["my_private"], s["pending_private"],
            s["prev_send_mac"]] + s["old_mac_keys"] + [k for pair in s["recv"] for k in pair]
    return [v for v in vals if len(v) >= 16]


# --- stanzas ---

def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_stanzas(n, to, rng, tag="s"):
    """n stanzas for |to|, mixing message, presence and iq, each with a distinct body."""
    out = []
    for i in range(n):
        body = "%s-%d %s" % (tag, i, "".join(rng.choice("abcdefgh <>&\"'éü€𝄞 ")
                                             for _ in range(rng.randrange(0, 120))))
        kind = i % 3
        if kind == 0:
            out.append('<message to="%s" type="chat" id="%s%d"><body>%s</body>'
                       '<active xmlns="http://jabber.org/protocol/chatstates"/></message>'
                       % (to, tag, i, esc(body)))
        elif kind == 1:
            out.append('<presence to="%s" id="%s%d"><show>away</show><status>%s</status>'
                       '<priority>%d</priority></presence>' % (to, tag, i, esc(body), i % 128))
        else:
            out.append('<iq to="%s" type="set" id="%s%d"><query xmlns="urn:example:test">'
                       '<item n="%d">%s</item></query></iq>' % (to, tag, i, i, esc(body)))
    return out


def parse(line):
    return ET.fromstring(line)


def qname(local, ns=NS_CLIENT):
    return "{%s}%s" % (ns, local)


def norm(e):
    """A comparable form of an element: tag, attributes, text, children (tails ignored)."""
    return (e.tag, tuple(sorted(e.attrib.items())), e.text or "",
            tuple(norm(c) for c in e))


def expected_after_roundtrip(line, sender, peer, thread):
    """What decrypt should print for an input stanza that encrypt got: 'from'/'to' added, and a
    <thread/> for messages (first among the children on output: it travels in clear)."""
    e = ET.fromstring(line)
    # Unqualified stanzas are in jabber:client.
    def qualify(x, ns):
        if not x.tag.startswith("{"):
            x.tag = "{%s}%s" % (ns, x.tag)
        for c in x:
            qualify(c, x.tag[1:].split("}")[0])
    qualify(e, NS_CLIENT)
    e.attrib.setdefault("to", peer)
    e.attrib.setdefault("from", sender)
    kids = [norm(c) for c in e]
    if e.tag == qname("message"):
        kids = [(qname("thread"), (), thread, ())] + kids
    return (e.tag, tuple(sorted(e.attrib.items())), "", tuple(kids))


def normalized(line):
    e = ET.fromstring(line)
    t = norm(e)
    return (t[0], t[1], (e.text or "").strip(), t[3])


class GnuPGHomes:
    """Throwaway GnuPG homes for a test: each under a short /tmp path (gpg-agent's socket lives
    in the home, and sun_path holds 108 bytes), an environment with none of the user's homes
    (esession's, GnuPG's, $HOME), gpg in batch mode with an empty passphrase, and every agent
    stopped by close(). Skips the test, saying why, when gpg is not installed."""

    def __init__(self, t, prefix):
        if not shutil.which("gpg") or not shutil.which("gpgconf"):
            t.skip("gpg is not installed")
        self.env = dict(os.environ, ESESSION_HOME=t.path("no-home"),
                        HOME=t.path("no-user-home"), TMPDIR=t.dir)
        self.env.pop("XDG_DATA_HOME", None)
        self.env.pop("GNUPGHOME", None)
        self.root = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.homes = {}

    def new(self, who):
        """Makes the (empty) home of |who|, named by its first letter."""
        self.homes[who] = os.path.join(self.root, who[0])
        os.mkdir(self.homes[who], 0o700)
        return self.homes[who]

    def gpg(self, who, *args, input=None, check=True):
        p = subprocess.run(["gpg", "--homedir", self.homes[who], "--batch", "--yes", "--no-tty",
                            "--pinentry-mode", "loopback", "--passphrase", ""] + list(args),
                           input=input, capture_output=True, env=self.env, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("gpg %s failed: %s" % (" ".join(args), p.stderr.decode()))
        return p

    def close(self):
        for h in self.homes.values():
            subprocess.run(["gpgconf", "--homedir", h, "--kill", "all"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
