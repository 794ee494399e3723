#!/usr/bin/env python3
"""cli.identities: the three identity backends in negotiations, and what they do to trust.

Native keys (one of them passphrase-protected), X.509 identities from a chain made here with the
openssl command, and OpenPGP keys made here with gpg in temporary GnuPG homes. Each backend is
used on each side, in both flows, and the trust level each side reports is checked: x509-valid
when the chain validates against the CA bundle and names the JID, openpgp-valid when GnuPG gives
the xmpp: User ID full validity. Expired, wrong-JID and untrusted-CA certificates, and an
uncertified OpenPGP key, lower the trust with a warning; an OpenPGP key revoked in gpg is refused.
Identity protection: the relayed transcript of each exchange holds no key, certificate,
fingerprint or key id of either party (four-message flow), or of the initiator (three-message
flow), in any encoding. Also key import/export/fingerprint for each backend, and key-change
alerts across backends."""

import base64
import binascii
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading

from clitest import ALICE, BOB, Test

t = Test("cli.identities")
ALICE_BARE, BOB_BARE = ALICE.split("/")[0], BOB.split("/")[0]

for tool in ("openssl", "gpg", "gpgconf"):
    if not shutil.which(tool):
        t.skip("%s is not installed (scripts/install-deps installs it)" % tool)


def sh(*argv, input=None, env=None, ok=(0,)):
    p = subprocess.run(list(argv), input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=120)
    if p.returncode not in ok:
        t.check(False, "command failed: %s" % " ".join(argv), p.stderr.decode(errors="replace"))
        t.finish()
    return p


# --- GnuPG homes (short paths: the agent's socket path is limited) -------------------------
gpg_homes = []


def gnupg_home(name):
    d = tempfile.mkdtemp(prefix="esg-%s-" % name, dir="/tmp")
    os.chmod(d, 0o700)
    gpg_homes.append(d)
    return d


def gpg(home, *args, input=None, ok=(0,)):
    return sh("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase",
              "", "--no-tty", *args, input=input, ok=ok)


def gpg_fpr(home, uid):
    out = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]


def kill_agents():
    for h in gpg_homes:
        subprocess.run(["gpgconf", "--homedir", h, "--kill", "gpg-agent"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(h, ignore_errors=True)


# --- X.509: a CA, leaves, and a second CA nobody configured --------------------------------
x = t.path("x509")
os.makedirs(x)


def xp(name):
    return os.path.join(x, name)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", xp(name + ".key"),
       "-out", xp(name + ".pem"), "-subj", "/CN=%s" % name, "-days", "30", "-addext",
       "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")


def make_leaf(name, ca, jid, keytype="ed25519", days="10", san=None):
    """A key and certificate for |jid| (XmppAddr), signed by |ca|; returns the PEM file holding
    the certificate and the key."""
    newkey = "ed25519" if keytype == "ed25519" else "rsa:2048"
    sh("openssl", "req", "-new", "-newkey", newkey, "-nodes", "-keyout", xp(name + ".key"),
       "-subj", "/CN=%s" % name, "-out", xp(name + ".csr"))
    with open(xp(name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nkeyUsage=critical,digitalSignature\n" %
                (san or "otherName:1.3.6.1.5.5.7.8.5;UTF8:" + jid))
    sh("openssl", "x509", "-req", "-in", xp(name + ".csr"), "-CA", xp(ca + ".pem"), "-CAkey",
       xp(ca + ".key"), "-CAcreateserial", "-days", days, "-extfile", xp(name + ".ext"), "-out",
       xp(name + ".crt"))
    with open(xp(name + ".id.pem"), "wb") as f:
        f.write(open(xp(name + ".crt"), "rb").read() + open(xp(name + ".key"), "rb").read())
    return xp(name + ".id.pem")


make_ca("TestCA")
make_ca("OtherCA")
alice_id = make_leaf("alice", "TestCA", ALICE_BARE)
bob_id = make_leaf("bob", "TestCA", BOB_BARE)
alice_rsa_id = make_leaf("alice-rsa", "TestCA", ALICE_BARE, keytype="rsa")
bob_rsa_id = make_leaf("bob-rsa", "TestCA", BOB_BARE, keytype="rsa")
expired_id = make_leaf("alice-expired", "TestCA", ALICE_BARE, days="-1")
wrongjid_id = make_leaf("alice-wrongjid", "TestCA", "mallory@example.org")
untrusted_id = make_leaf("alice-untrusted", "OtherCA", ALICE_BARE)
uri_id = make_leaf("alice-uri", "TestCA", ALICE_BARE, san="URI:xmpp:" + ALICE_BARE)
ca_file = xp("TestCA.pem")


def spki_der(cert_or_key_file, is_cert=True):
    if is_cert:
        pem = sh("openssl", "x509", "-in", cert_or_key_file, "-noout", "-pubkey").stdout
    else:
        pem = sh("openssl", "pkey", "-in", cert_or_key_file, "-pubout").stdout
    return sh("openssl", "pkey", "-pubin", "-outform", "DER", input=pem).stdout


def cert_der(crt):
    return sh("openssl", "x509", "-in", crt, "-outform", "DER").stdout


# --- negotiation with a recorded transcript -----------------------------------------------
def negotiate(a, b, neg=(), resp=(), a_env=None, b_env=None, passfd_a=None, passfd_b=None):
    """Runs negotiate (A) and respond (B) as two processes whose stdin/stdout Python relays,
    recording every byte. Returns (result_a, result_b, transcript bytes)."""
    procs = []
    for home, args, env, pw in ((a, ["negotiate", "--to", BOB] + list(neg), a_env, passfd_a),
                                (b, ["respond"] + list(resp), b_env, passfd_b)):
        rfd, wfd = os.pipe()
        fds = [wfd]
        extra = []
        prfd = None
        if pw is not None:
            prfd, pwfd = os.pipe()
            os.write(pwfd, pw.encode() + b"\n")
            os.close(pwfd)
            fds.append(prfd)
            extra = ["--passphrase-fd", str(prfd)]
        argv = [t.esession, "--home", home, "--status-fd", str(wfd)] + extra + args
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, pass_fds=fds, env=e)
        os.close(wfd)
        if prfd is not None:
            os.close(prfd)
        procs.append((p, rfd, args))
    transcript = []
    lock = threading.Lock()

    def relay(src, dst):
        while True:
            chunk = os.read(src.fileno(), 65536)
            if not chunk:
                break
            with lock:
                transcript.append(chunk)
            try:
                dst.write(chunk)
                dst.flush()
            except (BrokenPipeError, ValueError):
                break
        try:
            dst.close()
        except (BrokenPipeError, ValueError):
            pass

    (pa, ra_fd, args_a), (pb, rb_fd, args_b) = procs
    th = [threading.Thread(target=relay, args=(pa.stdout, pb.stdin)),
          threading.Thread(target=relay, args=(pb.stdout, pa.stdin))]
    for x_ in th:
        x_.start()
    errs = {}

    def drain(p, key):
        errs[key] = p.stderr.read()

    dr = [threading.Thread(target=drain, args=(pa, "a")),
          threading.Thread(target=drain, args=(pb, "b"))]
    for d in dr:
        d.start()
    out = []
    from clitest import Result
    for p, rfd, args, key in ((pa, ra_fd, args_a, "a"), (pb, rb_fd, args_b, "b")):
        try:
            rc = p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            t.check(False, "negotiation timed out: %s" % args)
        with os.fdopen(rfd, "rb") as f:
            st = f.read()
        out.append((p, rc, st, args, key))
    for x_ in th + dr:
        x_.join(timeout=30)
    res = [Result(args, rc, b"", errs.get(key, b""), st) for p, rc, st, args, key in out]
    return res[0], res[1], b"".join(transcript)


def trust_line(r, jid):
    for l in t.status_lines(r, "TRUST"):
        if l.startswith(jid + " "):
            return l.split()[-1]
    return None


def pki_line(r):
    ls = t.status_lines(r, "PKI")
    return ls[0].split() if ls else None


def fresh_pair(label, a_setup, b_setup):
    a = t.init_home(label + "-A", ALICE)
    b = t.init_home(label + "-B", BOB)
    a_setup(a)
    b_setup(b)
    return a, b


def native(home):
    t.check_rc(t.run(home, "key", "generate"), 0, "key generate")
    shutil.copy(ca_file, os.path.join(home, "ca.pem"))


def x509_identity(path):
    def setup(home):
        r = t.run(home, "key", "import", path)
        t.check_rc(r, 0, "key import %s" % os.path.basename(path))
        shutil.copy(ca_file, os.path.join(home, "ca.pem"))
    return setup


# --- GnuPG: Alice and Bob, each certifying the other's key (Ed25519; RSA in other homes) ----
def gpg_pair(algo):
    ha, hb = gnupg_home("a" + algo[:3]), gnupg_home("b" + algo[:3])
    gpg(ha, "--quick-gen-key", "xmpp:" + ALICE_BARE, algo, "sign", "never")
    gpg(hb, "--quick-gen-key", "xmpp:" + BOB_BARE, algo, "sign", "never")
    f1, f2 = gpg_fpr(ha, "xmpp:" + ALICE_BARE), gpg_fpr(hb, "xmpp:" + BOB_BARE)
    gpg(hb, "--import", input=gpg(ha, "--export", f1).stdout)
    gpg(ha, "--import", input=gpg(hb, "--export", f2).stdout)
    gpg(hb, "--quick-sign-key", f1)
    gpg(ha, "--quick-sign-key", f2)
    return ha, hb, f1, f2


ga, gb, fa, fb = gpg_pair("ed25519")
ga_rsa, gb_rsa, _, _ = gpg_pair("rsa2048")
ENV_A, ENV_B = {"GNUPGHOME": ga}, {"GNUPGHOME": gb}


def openpgp(env):
    def setup(home):
        r = t.run(home, "key", "import", "--openpgp", env=dict(os.environ, **env))
        t.check_rc(r, 0, "key import --openpgp")
        shutil.copy(ca_file, os.path.join(home, "ca.pem"))
    return setup


try:
    # --- each backend on each side, both flows ---------------------------------------------
    backends = {
        "native": (native, native, None, None),
        "x509": (x509_identity(alice_id), x509_identity(bob_id), None, None),
        "openpgp": (openpgp(ENV_A), openpgp(ENV_B), ENV_A, ENV_B),
    }
    want = {"native": "new", "x509": "x509-valid", "openpgp": "openpgp-valid"}
    for ka in ("native", "x509", "openpgp"):
        for kb in ("native", "x509", "openpgp"):
            for flow in ("4", "3"):
                label = "%s-%s-%s" % (ka, kb, flow)
                sa, _, ea, _ = backends[ka]
                _, sb, _, eb = backends[kb]
                a, b = fresh_pair(label, sa, sb)
                ra, rb, tr = negotiate(a, b, neg=["--flow", flow], a_env=ea or ENV_A,
                                       b_env=eb or ENV_B)
                if not (t.check_rc(ra, 0, label + ": negotiate")
                        and t.check_rc(rb, 0, label + ": respond")):
                    continue
                # Bob's view of Alice, and Alice's of Bob.
                t.check(trust_line(rb, ALICE) == want[ka],
                        "%s: Bob rates Alice %s" % (label, want[ka]), rb.status_text)
                t.check(trust_line(ra, BOB) == want[kb],
                        "%s: Alice rates Bob %s" % (label, want[kb]), ra.status_text)
                if ka != "native":
                    p = pki_line(rb)
                    t.check(p is not None and p[2] == ka and p[3] == "valid",
                            "%s: Bob's PKI line" % label, rb.status_text)
    # RSA keys: X.509 and OpenPGP, both flows.
    rsa = {"x509": (x509_identity(alice_rsa_id), x509_identity(bob_rsa_id), {}, {}),
           "openpgp": (openpgp({"GNUPGHOME": ga_rsa}), openpgp({"GNUPGHOME": gb_rsa}),
                       {"GNUPGHOME": ga_rsa}, {"GNUPGHOME": gb_rsa})}
    for kind, (sa, sb, ea, eb) in rsa.items():
        for flow in ("4", "3"):
            label = "rsa-%s-%s" % (kind, flow)
            a, b = fresh_pair(label, sa, sb)
            ra, rb, tr = negotiate(a, b, neg=["--flow", flow], a_env=ea, b_env=eb)
            if t.check_rc(ra, 0, label + ": negotiate") and t.check_rc(rb, 0, label + ": respond"):
                t.check(trust_line(rb, ALICE) == want[kind] and trust_line(ra, BOB) == want[kind],
                        "%s: both sides %s" % (label, want[kind]), ra.status_text + rb.status_text)
    # Keys of different types share no signature algorithm: in the four-message flow Bob
    # identifies by the SAS alone; the three-message flow (no SAS) is refused.
    a, b = fresh_pair("mixed-4", native, x509_identity(bob_rsa_id))
    ra, rb, tr = negotiate(a, b)
    t.check(ra.rc == 0 and rb.rc == 0 and trust_line(ra, BOB) == "new"
            and not t.status_lines(ra, "PEER_KEY") and t.status_lines(rb, "PEER_KEY"),
            "Ed25519 meets RSA, four-message: Bob identifies by SAS only",
            ra.describe() + rb.describe())
    ra, rb, tr = negotiate(a, b, neg=["--flow", "3"])
    t.check(ra.rc == 4 and rb.rc != 0 and "sign_algs" in (ra.err_text + rb.err_text),
            "Ed25519 meets RSA, three-message: refused on sign_algs",
            ra.describe() + rb.describe())
    # session show and peer show report it too.
    a, b = fresh_pair("shows", x509_identity(alice_id), openpgp(ENV_B))
    ra, rb, tr = negotiate(a, b, a_env=ENV_A, b_env=ENV_B)
    t.check_rc(rb, 0, "shows: respond")
    r = t.run(b, "--json", "session", "show", ALICE)
    t.check(r.rc == 0 and json.loads(r.out_text)["trust"] == "x509-valid",
            "session show --json: x509-valid", r.describe())
    r = t.run(b, "--json", "peer", "show", ALICE_BARE)
    keys = json.loads(r.out_text)["keys"] if r.rc == 0 else []
    t.check(len(keys) == 1 and keys[0]["pki"] and keys[0]["pki"]["kind"] == "x509"
            and keys[0]["pki"]["status"] == "valid" and "CN=alice" in keys[0]["pki"]["detail"],
            "peer show --json: the key's X.509 verdict", r.describe())
    r = t.run(b, "peer", "show", ALICE_BARE)
    t.check(r.rc == 0 and "X.509 valid" in r.out_text and "x509-valid" in r.out_text,
            "peer show: the key's X.509 verdict", r.describe())
    r = t.run(a, "peer", "show", BOB_BARE, env=dict(os.environ, **ENV_A))
    t.check(r.rc == 0 and "OpenPGP valid" in r.out_text and fb in r.out_text.replace(" ", ""),
            "peer show: the key's OpenPGP verdict with its fingerprint", r.describe())

    # --- lower trust, with a clear message ---------------------------------------------------
    for name, ident, status in (("expired", expired_id, "expired"),
                                ("wrong-jid", wrongjid_id, "wrong-name"),
                                ("untrusted-ca", untrusted_id, "untrusted")):
        a, b = fresh_pair(name, x509_identity(ident), native)
        ra, rb, tr = negotiate(a, b)
        t.check_rc(rb, 0, name + ": the session is still made")
        p = pki_line(rb)
        t.check(p is not None and p[2] == "x509" and p[3] == status,
                "%s: PKI x509 %s" % (name, status), rb.status_text)
        t.check(trust_line(rb, ALICE) == "new", name + ": trust stays new", rb.status_text)
        t.check("warning" in rb.err_text and ALICE_BARE in rb.err_text,
                name + ": a warning naming the peer", rb.err_text)
    # A URI SAN names the JID too.
    a, b = fresh_pair("uri", x509_identity(uri_id), native)
    ra, rb, tr = negotiate(a, b)
    t.check(trust_line(rb, ALICE) == "x509-valid", "URI SAN xmpp:JID: x509-valid", rb.status_text)
    # Without a CA bundle nothing is valid; --ca-file names one.
    a, b = fresh_pair("no-ca", x509_identity(alice_id), native)
    os.remove(os.path.join(b, "ca.pem"))
    ra, rb, tr = negotiate(a, b)
    t.check(trust_line(rb, ALICE) == "new" and pki_line(rb)[3] == "untrusted",
            "no CA bundle: untrusted", rb.status_text)
    ra, rb, tr = negotiate(a, b, resp=["--ca-file", ca_file])
    t.check(trust_line(rb, ALICE) == "x509-valid", "--ca-file names the CA bundle",
            rb.status_text)
    # A check that cannot be made (no CA bundle file, no usable GnuPG home) leaves the credential
    # unchecked; the negotiation goes on.
    ra, rb, tr = negotiate(a, b, resp=["--ca-file", t.path("missing-ca.pem")])
    t.check(rb.rc == 0 and pki_line(rb) and pki_line(rb)[3] == "unchecked"
            and "could not be checked" in rb.err_text,
            "an unreadable --ca-file: unchecked, with a warning", rb.describe())
    a2, b2 = fresh_pair("pgp-nohome", openpgp(ENV_A), native)
    not_a_dir = t.path("not-a-gnupg-home")
    open(not_a_dir, "w").close()
    ra, rb, tr = negotiate(a2, b2, a_env=ENV_A, resp=["--gnupg-home", not_a_dir])
    t.check(rb.rc == 0 and pki_line(rb) and pki_line(rb)[3] == "unchecked",
            "an unusable GnuPG home: unchecked, the session is made", rb.describe())
    # OpenPGP: a key Bob never certified is unknown; a revoked one is refused.
    gc = gnupg_home("c")
    gpg(gc, "--quick-gen-key", "xmpp:" + ALICE_BARE, "ed25519", "sign", "never")
    fc = gpg_fpr(gc, "xmpp:" + ALICE_BARE)
    gpg(gb, "--import", input=gpg(gc, "--export", fc).stdout)
    a, b = fresh_pair("pgp-unknown", openpgp({"GNUPGHOME": gc}), native)
    ra, rb, tr = negotiate(a, b, a_env={"GNUPGHOME": gc}, b_env=ENV_B)
    t.check_rc(rb, 0, "uncertified OpenPGP key: the session is still made")
    p = pki_line(rb)
    t.check(p is not None and p[3] == "unknown" and trust_line(rb, ALICE) == "new",
            "uncertified OpenPGP key: unknown validity, trust new", rb.status_text)
    rev = gpg(gc, "--gen-revoke", fc, input=b"y\n0\n\ny\n", ok=(0, 2)).stdout
    if not rev:
        # gpg 2.2 keeps a revocation certificate for every key it makes.
        rev = open(os.path.join(gc, "openpgp-revocs.d", fc + ".rev"), "rb").read().replace(
            b":-----BEGIN PGP PUBLIC KEY BLOCK-----", b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    gpg(gb, "--import", input=rev)
    ra, rb, tr = negotiate(a, b, a_env={"GNUPGHOME": gc}, b_env=ENV_B)
    t.check_rc(rb, 1, "revoked OpenPGP key: respond refuses")
    t.check("revoked" in rb.err_text, "revoked OpenPGP key: the error says revoked", rb.err_text)
    t.check(ra.rc != 0, "revoked OpenPGP key: negotiate fails too", ra.describe())

    # --- identity protection -------------------------------------------------------------------
    def encodings(blobs, texts):
        out = []
        for b_ in blobs:
            out += [base64.b64encode(b_), binascii.hexlify(b_), binascii.hexlify(b_).upper(),
                    hashlib.sha256(b_).hexdigest().encode(),
                    hashlib.sha256(b_).hexdigest().upper().encode(),
                    base64.b64encode(hashlib.sha256(b_).digest()),
                    hashlib.sha1(b_).hexdigest().encode()]
            if len(b_) > 40:  # a long blob also leaks through any large piece of it
                out += [base64.b64encode(b_[8:40])]
        for s in texts:
            out += [s.encode(), s.lower().encode(), s.upper().encode()]
        return [e for e in out if len(e) >= 16]

    def identity_items(kind, who):
        if kind == "x509":
            crt = xp(who + ".crt")
            der, spki = cert_der(crt), spki_der(crt)
            raw = spki[-32:] if len(spki) < 100 else spki[-270:-5]  # Ed25519 point / RSA modulus
            return encodings([der, spki, raw], [])
        if kind == "openpgp":
            home, fpr = (ga, fa) if who == "alice" else (gb, fb)
            pub = gpg(home, "--export", "--export-options", "export-minimal", fpr).stdout
            return encodings([pub[:200]], [fpr, fpr[-16:], fpr[-8:]])
        return []

    def native_items(home):
        r = t.run(home, "--json", "key", "show")
        fpr = json.loads(r.out_text)["fingerprint"]
        pem = t.run(home, "key", "export").out_text
        der = base64.b64decode("".join(pem.strip().splitlines()[1:-1]))
        return encodings([der, der[-32:]], [fpr, fpr[:16]])

    for kind in ("x509", "openpgp", "native"):
        for flow in ("4", "3"):
            label = "protect-%s-%s" % (kind, flow)
            sa, sb, ea, eb = backends[kind]
            a, b = fresh_pair(label, sa, sb)
            ra, rb, tr = negotiate(a, b, neg=["--flow", flow, "--identify", "key"],
                                   resp=["--identify", "key"], a_env=ea or ENV_A,
                                   b_env=eb or ENV_B)
            if not (t.check_rc(ra, 0, label + ": negotiate")
                    and t.check_rc(rb, 0, label + ": respond")):
                continue
            t.check(tr.count(b"urn:xmpp:ssn") >= 2, label + ": the transcript was recorded")
            if kind == "native":
                mine, theirs = native_items(a), native_items(b)
            else:
                mine, theirs = identity_items(kind, "alice"), identity_items(kind, "bob")
            leaks = [e for e in mine if e in tr]
            t.check(len(mine) > 5 and not leaks,
                    "%s: nothing of the initiator's identity in clear (%d encodings)"
                    % (label, len(mine)), leaks[:3])
            if flow == "4":
                leaks = [e for e in theirs if e in tr]
                t.check(len(theirs) > 5 and not leaks,
                        "%s: nothing of the responder's identity in clear" % label, leaks[:3])

    # --- key commands for each backend -------------------------------------------------------
    h = t.init_home("keys", ALICE)
    r = t.run(h, "key", "import", alice_id)
    t.check_rc(r, 0, "import X.509 PEM")
    fpr = r.out_text.replace(" ", "").strip().lower()
    t.check(fpr == hashlib.sha256(spki_der(xp("alice.crt"))).hexdigest(),
            "X.509 fingerprint is SHA-256 of the certificate's SubjectPublicKeyInfo", fpr)
    r = t.run(h, "key", "export", fpr[:16])
    t.check(r.rc == 0 and cert_der(xp("alice.crt")) == sh(
        "openssl", "x509", "-outform", "DER", input=r.out).stdout,
        "export of an X.509 identity gives its certificate", r.describe())
    r = t.run(h, "--json", "key", "show", fpr[:16])
    js = json.loads(r.out_text) if r.rc == 0 else {}
    t.check(js.get("type") == "x509" and "CN=alice" in js.get("certificate", {}).get("subject", ""),
            "key show --json of an X.509 identity", r.describe())
    # PKCS#12 with a passphrase, from --passphrase-fd; stored protected.
    p12 = xp("bob.p12")
    sh("openssl", "pkcs12", "-export", "-in", xp("bob.crt"), "-inkey", xp("bob.key"), "-certfile",
       ca_file, "-passout", "pass:p12 secret", "-out", p12)
    pw = t.path("pw")
    with open(pw, "w") as f:
        f.write("p12 secret\n")
    h2 = t.init_home("keys-p12", BOB)
    r = t.run(h2, "--passphrase-fd", "0", "key", "import", p12, input=b"p12 secret\n")
    t.check_rc(r, 0, "import PKCS#12 with --passphrase-fd")
    r = t.run(h2, "--passphrase-fd", "0", "key", "import", p12, input=b"wrong\n")
    t.check(r.rc != 0, "PKCS#12 again (or with a wrong passphrase) is refused", r.describe())
    h3 = t.init_home("keys-p12-wrong", BOB)
    r = t.run(h3, "--passphrase-fd", "0", "key", "import", p12, input=b"wrong\n")
    t.check_rc(r, 1, "PKCS#12 with a wrong passphrase: exit 1")
    t.check_error_line(r, "PKCS#12 wrong passphrase", "passphrase")
    r = t.run(h3, "key", "import", p12)
    t.check(r.rc != 0 and "passphrase" in r.err_text,
            "PKCS#12 without a terminal or --passphrase-fd: asks for one", r.describe())
    # A protected native key: openssl reads it with the passphrase; negotiation asks for it.
    h4 = t.init_home("keys-protected", ALICE)
    r = t.run(h4, "--passphrase-fd", "0", "key", "generate", "--protect", input=b"hunter2 x\n")
    t.check_rc(r, 0, "key generate --protect")
    kf = [os.path.join(h4, "keys", f) for f in os.listdir(os.path.join(h4, "keys"))][0]
    body = open(kf).read()
    t.check("ENCRYPTED PRIVATE KEY" in body and oct(os.stat(kf).st_mode & 0o777) == "0o600",
            "the key file is encrypted PKCS#8, mode 0600", body[:60])
    p = subprocess.run(["openssl", "pkey", "-in", kf, "-passin", "pass:hunter2 x", "-noout",
                        "-text"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.check(p.returncode == 0, "openssl pkey reads the protected key", p.stderr.decode())
    asn = subprocess.run(["openssl", "asn1parse", "-in", kf], stdout=subprocess.PIPE).stdout
    t.check(b"id-scrypt" in asn or b"scrypt" in asn, "the key file uses scrypt", asn[:300])
    r = t.run(h4, "key", "show")
    t.check(r.rc == 0 and "passphrase-protected" in r.out_text,
            "key show needs no passphrase and says protected", r.describe())
    b = t.init_home("protected-peer", BOB)
    native(b)
    ra, rb, tr = negotiate(h4, b, passfd_a="hunter2 x")
    t.check_rc(ra, 0, "negotiate with a protected key and --passphrase-fd")
    ra, rb, tr = negotiate(h4, b, passfd_a="wrong")
    t.check_rc(ra, 1, "negotiate with a wrong passphrase: exit 1")
    t.check("passphrase" in ra.err_text, "wrong passphrase: said so", ra.err_text)
    # OpenPGP: bind by JID, fingerprint as SHA-256 SPKI, export gives the key gpg made.
    h5 = t.init_home("keys-pgp", ALICE)
    r = t.run(h5, "key", "import", "--openpgp", env=dict(os.environ, **ENV_A))
    t.check_rc(r, 0, "bind an OpenPGP key by the account's JID")
    r = t.run(h5, "--json", "key", "fingerprint", env=dict(os.environ, **ENV_A))
    js = json.loads(r.out_text) if r.rc == 0 else {}
    t.check(js.get("openpgp_fingerprint") == fa and len(js.get("fingerprint", "")) == 64,
            "key fingerprint --json of an OpenPGP key", r.describe())
    r = t.run(h5, "key", "export", env=dict(os.environ, **ENV_A))
    g2 = gnupg_home("imp")
    p = sh("gpg", "--homedir", g2, "--batch", "--import", input=r.out)
    t.check(gpg_fpr(g2, fa) == fa, "key export of an OpenPGP key imports into gpg")
    r = t.run(h5, "key", "export", "--secret", env=dict(os.environ, **ENV_A))
    t.check_rc(r, 2, "OpenPGP secret export is refused")
    t.check_error_line(r, "OpenPGP secret export", "GnuPG")
    r = t.run(h5, "key", "import", "--openpgp", "nobody@example.net",
              env=dict(os.environ, **ENV_A))
    t.check(r.rc != 0 and r.err_text.count("esession: error:") == 1,
            "binding a JID without a key fails with one error line", r.describe())

    # --- key-change alerts across backends ----------------------------------------------------
    a, b = fresh_pair("switch", native, native)
    ra, rb, tr = negotiate(a, b)
    t.check_rc(rb, 0, "switch: first session")
    # Alice comes back with an X.509 identity instead of her native key.
    t.check_rc(t.run(a, "key", "import", "--default", alice_id), 0, "switch: import --default")
    t.check_rc(t.run(a, "key", "import", alice_id), 2, "importing the same identity twice fails")
    ra, rb, tr = negotiate(a, b)
    t.check_rc(rb, 0, "switch: the new key is accepted (only an unverified one was seen)")
    kc = t.status_lines(rb, "KEY_CHANGED")
    t.check(len(kc) == 1 and kc[0].endswith("accepted"), "switch: KEY_CHANGED accepted",
            rb.status_text)
    t.check(trust_line(rb, ALICE) == "x509-valid", "switch: the new key is x509-valid",
            rb.status_text)
    # Bob verifies its SAS (and so the key); Alice returns with her OpenPGP key: refused.
    sas = t.status_lines(rb, "SAS")
    t.check_rc(t.run(b, "peer", "verify", ALICE_BARE, "--sas", sas[0].split()[-1]), 0,
               "switch: peer verify --sas")
    t.check_rc(t.run(a, "key", "import", "--default", "--openpgp", env=dict(os.environ, **ENV_A)),
               0, "switch: bind the OpenPGP key as default")
    ra, rb, tr = negotiate(a, b, a_env=ENV_A, b_env=ENV_B)
    t.check_rc(rb, 1, "switch: a different key after a verified one is refused")
    kc = t.status_lines(rb, "KEY_CHANGED")
    t.check(len(kc) == 1 and kc[0].endswith("refused"), "switch: KEY_CHANGED refused",
            rb.status_text)
    # Carol presents the X.509 identity Bob knows as Alice's: KEY_OTHER_JID.
    carol = t.path("carol")
    r = t.run(carol, "init", "--jid", "carol@example.org/x")
    t.check_rc(t.run(carol, "key", "import", alice_id), 0, "carol: import Alice's identity")
    ra, rb, tr = negotiate(carol, b)
    ko = t.status_lines(rb, "KEY_OTHER_JID")
    t.check(len(ko) == 1 and ko[0].endswith(ALICE_BARE), "KEY_OTHER_JID for Alice's key",
            rb.status_text)
    p = pki_line(rb)
    t.check(p is not None and p[3] == "wrong-name",
            "Alice's certificate presented by Carol: wrong-name", rb.status_text)
finally:
    kill_agents()

t.finish()
