#!/usr/bin/env python3
"""cli.friction: what a new user trips over (the hardening issue's "friction" items).

    test_friction.py ESESSION [ESESSION_COUNTERS]

Checks:
- outputs: `seal`/`open -o FILE` refuse an existing file (exit 2, a hint naming --force, the
  file and any --key-out untouched) and replace it with --force; `open` of a file format to a
  terminal is refused (exit 2, hint -o, nothing shown), as `seal` is, also with -o naming a
  terminal; the stanza formats (smime) still print their XML to a terminal.
- accounts: in homes holding several accounts, respond picks the account by the request's
  'to', encrypt by the stanza's 'from', decrypt by its 'to' (full JID, or a bare JID naming
  one account); with nothing to select, the error lists the accounts and hints at --account
  and the default; `init --default` and `account default JID` set the default, which is then
  used (`account list` marks it, --json too), `account default --clear` removes it; --account
  still wins; one encrypt run refuses a stanza from another of its home's accounts.
"""

import os
import pty
import select
import shutil
import json
import subprocess

from clitest import ALICE, BOB, EXIT_INPUT, EXIT_OK, Test
from clitest import read_bytes as read, write_bytes as write

t = Test("cli.friction")
noenv = dict(os.environ, ESESSION_HOME=t.path("no-home"), HOME=t.path("no-user-home"),
             TMPDIR=t.dir)
noenv.pop("XDG_DATA_HOME", None)




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


# === item 1: several accounts in one home ========================================================
t.log("accounts: several in one home")
A2, B2 = "alice@example.net/work", "bob@example.net/desk"
home_a = t.init_home("A", ALICE)
home_b = t.init_home("B", BOB)
for home, jid in ((home_a, A2), (home_b, B2)):
    r = t.run(home, "init", "--jid", jid)
    t.check_rc(r, EXIT_OK, "init a second account " + jid)
    t.check("two accounts" in r.err_text, "init says the home now holds two accounts", r.err_text)

# With two accounts and nothing selecting one: the error names both and the ways to choose.
r = t.run(home_a, "key", "list")
t.check_rc(r, EXIT_INPUT, "key list in a home of two accounts")
t.check_error_line(r, "key list in a home of two accounts", "accounts")
t.check(ALICE in r.err_text and A2 in r.err_text, "the error lists the accounts", r.err_text)
t.check("--account" in r.err_text and "account default" in r.err_text,
        "the hint names --account and the default", r.err_text)

# respond chooses Bob's account by the request's 'to'.
ra, rb = t.negotiate(home_a, ALICE, home_b, BOB, neg_args=("--account", ALICE))
t.check_rc(ra, EXIT_OK, "negotiate --account from a home of two accounts")
t.check_rc(rb, EXIT_OK, "respond in a home of two accounts (chosen by the request's 'to')")

msg = '<message to="%s" from="%s" type="chat"><body>%s</body></message>\n'
# encrypt chooses Alice's account by the stanza's 'from' (full JID)...
r = t.run(home_a, "encrypt", input=(msg % (BOB, ALICE, "by from")).encode())
t.check_rc(r, EXIT_OK, "encrypt, the account named by the stanza's from")
enc1 = r.out
# ... or by a bare 'from' naming one account (the stanza then goes from its full JID).
r = t.run(home_a, "encrypt", input=(msg % (BOB, "alice@example.org", "by bare from")).encode())
t.check_rc(r, EXIT_OK, "encrypt, the account named by a bare from")
enc2 = r.out
# decrypt chooses Bob's account by the stanza's 'to'.
r = t.run(home_b, "decrypt", input=enc1 + enc2)
t.check_rc(r, EXIT_OK, "decrypt, the account named by the stanza's to")
t.check(b"by from" in r.out and b"by bare from" in r.out, "decrypt released both stanzas",
        r.out[:300])

# Without a 'from' nothing selects: the same error, nothing encrypted.
r = t.run(home_a, "encrypt", input=('<message to="%s"><body>x</body></message>\n' % BOB).encode())
t.check_rc(r, EXIT_INPUT, "encrypt without from, no default")
t.check(ALICE in r.err_text and A2 in r.err_text and r.out == b"",
        "encrypt without from: the accounts listed, nothing written", r.err_text)
# One run encrypts as one account: a later stanza from the other account is refused.
r = t.run(home_a, "encrypt", input=((msg % (BOB, ALICE, "first")) +
                                    (msg % (BOB, A2, "second"))).encode())
t.check_rc(r, EXIT_INPUT, "encrypt: a stanza from another account in the same run")
t.check(r.out.count(b"\n") == 1 and b"second" not in r.out,
        "encrypt: only the first account's stanza was written", r.out[:300])
enc3 = r.out

# The default account: set, listed, used, cleared.
r = t.run(home_a, "account", "default", "alice@example.org")
t.check_rc(r, EXIT_OK, "account default BAREJID")
r = t.run(home_a, "--json", "account", "list")
t.check_rc(r, EXIT_OK, "account list --json")
try:
    listed = json.loads(r.out)
except ValueError:
    listed = []
t.check([(x["jid"], x["default"]) for x in listed] == [(ALICE, True), (A2, False)],
        "account list --json marks the default", r.out_text)
r = t.run(home_a, "account", "list")
t.check(r.rc == EXIT_OK and (ALICE + "  (default)") in r.out_text and A2 + "\n" in r.out_text,
        "account list marks the default", r.out_text)
r = t.run(home_a, "encrypt", input=('<message to="%s"><body>dflt</body></message>\n' % BOB).encode())
t.check_rc(r, EXIT_OK, "encrypt without from uses the default account")
r2 = t.run(home_b, "decrypt", input=enc3 + r.out)
t.check(r2.rc == EXIT_OK and b"dflt" in r2.out, "what the default account encrypted decrypts",
        r2.describe())
r = t.run(home_a, "key", "list")
t.check_rc(r, EXIT_OK, "key list uses the default account")
# --account still wins over the default (the other account has no session with Bob).
r = t.run(home_a, "--account", A2, "encrypt",
          input=('<message to="%s"><body>x</body></message>\n' % BOB).encode())
t.check(r.rc != EXIT_OK and r.out == b"", "--account overrides the default", r.describe())
# The stanza's from wins over the default too.
r = t.run(home_a, "encrypt", input=(msg % (BOB, A2, "as A2")).encode())
t.check(r.rc != EXIT_OK and r.out == b"", "the stanza's from overrides the default",
        r.describe())
r = t.run(home_a, "account", "default", "nobody@example.org")
t.check_rc(r, EXIT_INPUT, "account default of an unknown JID")
t.check(ALICE in r.err_text and A2 in r.err_text, "the refusal lists the accounts", r.err_text)
r = t.run(home_a, "account", "default", "--clear")
t.check_rc(r, EXIT_OK, "account default --clear")
r = t.run(home_a, "key", "list")
t.check_rc(r, EXIT_INPUT, "no default again after --clear")
# init --default makes the new account the default.
r = t.run(home_a, "init", "--jid", "carol@example.org/x", "--default")
t.check_rc(r, EXIT_OK, "init --default")
r = t.run(home_a, "--json", "account", "list")
t.check([x["jid"] for x in json.loads(r.out or b"[]") if x["default"]] == ["carol@example.org/x"],
        "init --default made the new account the default", r.out_text)

t.finish()
