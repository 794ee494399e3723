#!/usr/bin/env python3
"""Per-invocation cost of sealing and opening one ~300-byte stanza (issue 5), against the peer
tools doing the same work in the same run:

  ox seal     esession seal --format ox -i ALICE -r BOB          gpg -z 0 --sign --encrypt -u A -r B
  ox open     esession open --format ox                          gpg --decrypt
  smime seal  esession seal --format smime -r bob.crt -i alice   openssl cms -sign -nodetach | openssl cms -encrypt
  smime open  esession open --format smime                       openssl cms -decrypt | openssl cms -verify

Every command runs under `sh -c` (the openssl rows are pipelines), timed by `perf stat -r N`
(mean wall time, no Python in the loop; CPU is perf's task-clock, all processes of the command
together, `sh` included). GnuPG homes, keys and certificates are made fresh in a temporary
directory; the agents are warm before timing and killed at the end. The floor rows are what
any command costs here: `true` and `esession --version` under the same `sh -c`.

Streams: the same commands over --stream S stanzas in one esession run (a bridge piping a
conversation through one process), timed by `perf stat -r 3`; the time per stanza is the run's
divided by S. The peers have no such mode (gpg and openssl cms take one object per run), so
their per-stanza time is the per-invocation one above.

Usage: bench/stanzas.py [--esession PATH] [--runs N] [--stream S] [--formats ox,smime]
Rows whose format the binary does not have (an older build) are skipped, saying so.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ALICE = "alice@example.org"
BOB = "bob@example.com"
STANZA = ('<message xmlns="jabber:client" from="%s/pda" to="%s/laptop" type="chat" id="m1">'
          "<thread>th1</thread><body>%s</body></message>\n" % (ALICE, BOB, "x" * 230))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def perf_ms(cmd, runs):
    r = subprocess.run(["perf", "stat", "-r", str(runs), "--", "sh", "-c", cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        return None
    err = r.stderr.decode()
    m = re.search(r"([0-9.]+) \+- ([0-9.]+) seconds time elapsed", err)
    cpu = re.search(r"([0-9.,]+) msec task-clock", err)
    if not m:
        return None
    return (float(m.group(1)) * 1000, float(m.group(2)) * 1000,
            float(cpu.group(1).replace(",", "")) if cpu else float("nan"))


def table(rows, ours_fmt):
    """Prints (name, ours, peer) rows; ours and peer are (ms, ± ms, CPU ms)."""
    print("%-12s %16s %8s %16s %8s %8s" % ("", "esession ms", "CPU ms", "peer ms", "CPU ms",
                                          "ratio"))
    for name, ours, peer in rows:
        if not ours or not peer:
            print("%-12s (failed)" % name)
            continue
        print(("%-12s " + ours_fmt + " %9.2f ± %4.2f %8.2f %7.2fx") %
              (name, ours[0], ours[1], ours[2], peer[0], peer[1], peer[2], peer[0] / ours[0]))


def gpg_home(d, name, uid):
    h = tempfile.mkdtemp(prefix="esb-%s-" % name, dir="/tmp")
    os.chmod(h, 0o700)
    sh(f"gpg --homedir {h} --batch --pinentry-mode loopback --passphrase '' "
       f"--quick-gen-key 'xmpp:{uid}' future-default default never")
    out = sh(f"gpg --homedir {h} --with-colons --list-keys 'xmpp:{uid}'").stdout.decode()
    fpr = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")][0]
    return h, fpr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--esession", default=os.path.join(os.path.dirname(__file__), "..",
                                                       "build-rel", "cli", "esession"))
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--stream", type=int, default=200,
                    help="stanzas in one esession run for the stream rows (0: none)")
    ap.add_argument("--formats", default="ox,smime",
                    help="the stanza formats to bench, comma-separated (default: ox,smime)")
    args = ap.parse_args()
    formats = set(args.formats.split(","))
    if not formats <= {"ox", "smime"}:
        sys.exit("bench/stanzas.py: --formats takes ox and smime")
    es = os.path.abspath(args.esession)
    for tool in ("perf",) + (("gpg",) if "ox" in formats else ()) + (
            ("openssl",) if "smime" in formats else ()):
        if not shutil.which(tool):
            sys.exit("bench/stanzas.py needs %s" % tool)
    d = tempfile.mkdtemp(prefix="esession-bench-stanzas-")
    homes = []
    try:
        st = os.path.join(d, "stanza.xml")
        with open(st, "w") as f:
            f.write(STANZA)
        many = os.path.join(d, "stanzas.xml")
        with open(many, "w") as f:
            f.write(STANZA * max(args.stream, 1))
        rows, streams = [], []

        def stream(name, seal_cmd, open_cmd, sealed_many, peer_seal, peer_open):
            """Adds the stream rows: |seal_cmd| and |open_cmd| read {IN}."""
            if args.stream <= 0:
                return
            subprocess.run(seal_cmd.replace("{IN}", many) + f" > {sealed_many}", shell=True,
                           check=True)
            for verb, cmd, src, peer in (("seal", seal_cmd, many, peer_seal),
                                         ("open", open_cmd, sealed_many, peer_open)):
                r = perf_ms(cmd.replace("{IN}", src) + " > /dev/null", 3)
                per = (r[0] / args.stream, r[1] / args.stream, r[2] / args.stream) if r else None
                streams.append((name + " " + verb, per, peer))

        if "ox" in formats:
            # OpenPGP: Alice and Bob, each certifying the other (ed25519 + cv25519 subkey).
            ga, fa = gpg_home(d, "a", ALICE)
            gb, fb = gpg_home(d, "b", BOB)
            homes += [ga, gb]
            sh(f"gpg --homedir {ga} --export {fa} | gpg --homedir {gb} --batch --import")
            sh(f"gpg --homedir {gb} --export {fb} | gpg --homedir {ga} --batch --import")
            sh(f"gpg --homedir {gb} --batch --yes --quick-sign-key {fa}")
            sh(f"gpg --homedir {ga} --batch --yes --quick-sign-key {fb}")
            sealed = os.path.join(d, "ox.xml")
            ok = subprocess.run(f"'{es}' --gnupg-home {ga} seal --format ox -i {fa} -r {fb} "
                                f"< {st} > {sealed}", shell=True, stderr=subprocess.PIPE)
            if ok.returncode == 0:
                payload = os.path.join(d, "payload.xml")
                with open(payload, "w") as f:
                    f.write(STANZA)  # the same size of plaintext for gpg
                gpgmsg = os.path.join(d, "msg.gpg")
                sh(f"gpg --homedir {ga} --batch -z 0 --sign --encrypt -u {fa} -r {fb} -r {fa} "
                   f"< {payload} > {gpgmsg}")
                rows.append(("ox seal",
                             perf_ms(f"'{es}' --gnupg-home {ga} seal --format ox -i {fa} -r {fb} "
                                     f"< {st} > /dev/null", args.runs),
                             perf_ms(f"gpg --homedir {ga} --batch -z 0 --sign --encrypt -u {fa} "
                                     f"-r {fb} -r {fa} < {payload} > /dev/null", args.runs)))
                rows.append(("ox open",
                             perf_ms(f"'{es}' --gnupg-home {gb} open --format ox < {sealed} "
                                     f"> /dev/null", args.runs),
                             perf_ms(f"gpg --homedir {gb} --batch --decrypt < {gpgmsg} > /dev/null",
                                     args.runs)))
                stream("ox", f"'{es}' --gnupg-home {ga} seal --format ox -i {fa} -r {fb} < {{IN}}",
                       f"'{es}' --gnupg-home {gb} open --format ox < {{IN}}",
                       os.path.join(d, "ox-many.xml"), rows[-2][2], rows[-1][2])
            else:
                print("ox rows skipped: %s" % ok.stderr.decode().strip().splitlines()[-1])
        if "smime" in formats:
            # S/MIME: a CA, Alice and Bob with XmppAddr names (openssl), and the same work by openssl.
            def cert(name, jid):
                sh(f"openssl req -new -newkey rsa:2048 -nodes -keyout {d}/{name}.key -subj /CN={name} "
                   f"-out {d}/{name}.csr")
                with open(f"{d}/{name}.ext", "w") as f:
                    f.write("subjectAltName=otherName:1.3.6.1.5.5.7.8.5;UTF8:%s\n" % jid)
                sh(f"openssl x509 -req -in {d}/{name}.csr -CA {d}/ca.pem -CAkey {d}/ca.key "
                   f"-CAcreateserial -days 2 -extfile {d}/{name}.ext -out {d}/{name}.crt")
                sh(f"cat {d}/{name}.crt {d}/{name}.key > {d}/{name}.pem")
            sh(f"openssl req -x509 -newkey rsa:2048 -nodes -keyout {d}/ca.key -out {d}/ca.pem "
               f"-subj /CN=CA -days 2 -addext basicConstraints=critical,CA:TRUE")
            cert("alice", ALICE)
            cert("bob", BOB)
            sealed_s = os.path.join(d, "smime.xml")
            ok = subprocess.run(f"'{es}' seal --format smime -r {d}/bob.crt -i {d}/alice.pem "
                                f"< {st} > {sealed_s}", shell=True, stderr=subprocess.PIPE)
            if ok.returncode == 0:
                cms = os.path.join(d, "msg.cms")
                sh(f"openssl cms -sign -nodetach -binary -signer {d}/alice.crt -inkey {d}/alice.key -in {st} "
                   f"-outform DER | openssl cms -encrypt -aes256 -binary -inform DER -outform DER "
                   f"{d}/bob.crt {d}/alice.crt > {cms}")
                rows.append(("smime seal",
                             perf_ms(f"'{es}' seal --format smime -r {d}/bob.crt -i {d}/alice.pem "
                                     f"< {st} > /dev/null", args.runs),
                             perf_ms(f"openssl cms -sign -nodetach -binary -signer {d}/alice.crt -inkey {d}/alice.key "
                                     f"-in {st} -outform DER | openssl cms -encrypt -aes256 -binary "
                                     f"-inform DER -outform DER {d}/bob.crt {d}/alice.crt "
                                     f"> /dev/null", args.runs)))
                rows.append(("smime open",
                             perf_ms(f"'{es}' --ca-file {d}/ca.pem open --format smime --identity "
                                     f"{d}/bob.pem < {sealed_s} > /dev/null", args.runs),
                             perf_ms(f"openssl cms -decrypt -inform DER -recip {d}/bob.crt -inkey "
                                     f"{d}/bob.key -in {cms} -outform DER | openssl cms -verify "
                                     f"-inform DER -CAfile {d}/ca.pem > /dev/null", args.runs)))
                stream("smime", f"'{es}' seal --format smime -r {d}/bob.crt -i {d}/alice.pem "
                       f"< {{IN}}", f"'{es}' --ca-file {d}/ca.pem open --format smime "
                       f"--identity {d}/bob.pem < {{IN}}", os.path.join(d, "smime-many.xml"),
                       rows[-2][2], rows[-1][2])
            else:
                print("smime rows skipped: %s" % ok.stderr.decode().strip())
        print("stanza: %d bytes, %d runs each (perf stat: mean wall time, and CPU time)\n" %
              (len(STANZA), args.runs))
        table(rows, "%9.2f ± %4.2f %8.2f")
        for name, cmd in (("floor: true", "true"), ("floor: --version", f"'{es}' --version")):
            r = perf_ms(cmd + " > /dev/null", args.runs)
            print("%-18s %9.2f ± %4.2f %8.2f" % ((name,) + r) if r else name + " (failed)")
        if streams:
            print("\nstreams: %d stanzas in one esession run; time per stanza (ms)\n" %
                  args.stream)
            table(streams, "%9.3f ± %5.3f %8.3f")
    finally:
        for h in homes:
            subprocess.run(["gpgconf", "--homedir", h, "--kill", "gpg-agent"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(h, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
