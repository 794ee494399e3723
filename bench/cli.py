#!/usr/bin/env python3
"""Benchmarks of the esession command line against its peers, in one run (issue 3).

(a) one `esession encrypt` invocation for one ~300-byte message stanza (process start, state
    load and commit included) against `gpg --sign --encrypt` of the same stanza to one recipient;
(b) streaming `encrypt | decrypt` throughput of ~300-byte message stanzas, both processes
    running, with the CPU time each process used.

Usage: bench/cli.py [--esession PATH] [--runs N] [--stanzas N] [--part a|b]
Homes and the GnuPG home live in one temporary directory (same file system for all).
"""
import argparse
import re
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ALICE = "alice@example.org/pda"
BOB = "bob@example.com/laptop"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd, stdin_path, runs):
    samples = []
    for _ in range(runs):
        with open(stdin_path, "rb") as f:
            t0 = time.perf_counter()
            subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, check=True, close_fds=False)
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def perf_time(cmd, stdin_path, runs):
    """Mean wall time (ms) and its spread over |runs| runs, measured by `perf stat -r`: the
    process is spawned without the overhead of a Python parent (about 1.5 ms here)."""
    perf = shutil.which("perf")
    if not perf:
        return None
    with open(stdin_path, "rb") as f:
        r = subprocess.run([perf, "stat", "-r", str(runs), "--"] + cmd, stdin=f,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    m = re.search(r"([0-9.]+) \+- ([0-9.]+) seconds time elapsed", r.stderr.decode())
    return (float(m.group(1)) * 1000, float(m.group(2)) * 1000) if m else None


def primitive_us_per_stanza():
    """Microseconds OpenSSL needs to encrypt and MAC 512 bytes (an encrypted ~300-byte stanza's
    plaintext is padded and its <c/> content MACed: both under 512 bytes)."""
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    total = 0.0
    for args in (["-evp", "aes-256-ctr"], ["-hmac", "sha256"]):
        r = subprocess.run([openssl, "speed", "-seconds", "1", "-bytes", "512"] + args,
                           capture_output=True, text=True)
        last = r.stdout.strip().splitlines()[-1].split()
        kbps = float(last[-1].rstrip("k"))  # thousands of bytes per second
        total += 512 / (kbps * 1000) * 1e6
    return total


def negotiate(es, d, a="A", b="B"):
    """Two homes |a| and |b| under |d| with a session between them."""
    for home, jid in ((a, ALICE), (b, BOB)):
        run([es, "-q", "--home", os.path.join(d, home), "init", "--jid", jid])
    a2b, b2a = os.path.join(d, a + "2" + b), os.path.join(d, b + "2" + a)
    os.mkfifo(a2b)
    os.mkfifo(b2a)
    bob = subprocess.Popen(f'exec "{es}" -q --home "{d}/{b}" respond > "{b2a}" < "{a2b}"',
                           shell=True)
    run(f'exec "{es}" -q --home "{d}/{a}" negotiate --to {BOB} < "{b2a}" > "{a2b}"', shell=True)
    if bob.wait() != 0:
        sys.exit("negotiation failed")


def stanza(i):
    body = ("stanza %06d " % i) + "x" * 220
    return f'<message to="{BOB}" type="chat"><body>{body}</body></message>\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--esession", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                       "cli", "esession"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--stanzas", type=int, default=200000)
    ap.add_argument("--part", choices=("a", "b"), help="run only part (a) or only part (b)")
    args = ap.parse_args()
    es = os.path.abspath(args.esession)
    d = tempfile.mkdtemp(prefix="esession-bench-")
    try:
        if args.part != "b":
            part_a(es, d, args)
        if args.part != "a":
            part_b(es, d, args)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def part_a(es, d, args):
    negotiate(es, d)
    one = os.path.join(d, "one.xml")
    with open(one, "w") as f:
        f.write(stanza(0))
    print(f"stanza: {os.path.getsize(one)} bytes")

    # (a) esession encrypt, one invocation per stanza. Every run consumes counters; the
    # stanzas are never delivered (this session is not used again).
    es_cmd = [es, "-q", "--home", os.path.join(d, "A"), "encrypt"]
    es_med, es_p90 = timed(es_cmd, one, args.runs)
    es_perf = perf_time(es_cmd, one, args.runs)
    print(f"(a) esession encrypt, one stanza: median {es_med:.2f} ms, p90 {es_p90:.2f} ms "
          "(spawned by Python)")
    if es_perf:
        print(f"(a) esession encrypt, one stanza: mean {es_perf[0]:.2f} +- {es_perf[1]:.2f} ms "
              "(perf stat)")

    gpg = shutil.which("gpg")
    if gpg:
        g = os.path.join(d, "gnupg")
        os.mkdir(g, 0o700)
        for uid in ("xmpp:alice@example.org", "xmpp:bob@example.com"):
            run([gpg, "--batch", "--homedir", g, "--pinentry-mode", "loopback",
                 "--passphrase", "", "--quick-gen-key", uid, "default", "default", "never"],
                stderr=subprocess.DEVNULL)
        cmd = [gpg, "--batch", "--homedir", g, "--trust-model", "always", "--sign",
               "--encrypt", "-u", "xmpp:alice@example.org", "-r", "xmpp:bob@example.com"]
        run(cmd, stdin=open(one, "rb"), stdout=subprocess.DEVNULL)  # warm the agent
        gpg_med, gpg_p90 = timed(cmd, one, args.runs)
        print(f"(a) gpg --sign --encrypt, one stanza: median {gpg_med:.2f} ms, "
              f"p90 {gpg_p90:.2f} ms (spawned by Python) -> esession is "
              f"{gpg_med / es_med:.1f}x faster")
        gpg_perf = perf_time(cmd, one, args.runs)
        if gpg_perf and es_perf:
            print(f"(a) gpg --sign --encrypt, one stanza: mean {gpg_perf[0]:.2f} +- "
                  f"{gpg_perf[1]:.2f} ms (perf stat) -> esession is "
                  f"{gpg_perf[0] / es_perf[0]:.1f}x faster")
    else:
        print("(a) gpg: not installed (apt-get install gnupg), comparison skipped")


def part_b(es, d, args):
    # (b) streaming throughput, on a fresh session (the stanzas of (a) never reached Bob).
    negotiate(es, d, "C", "D")
    n = args.stanzas
    src = os.path.join(d, "many.xml")
    with open(src, "w") as f:
        for i in range(n):
            f.write(stanza(i))
    out = os.path.join(d, "out.xml")
    t0 = time.perf_counter()
    enc = subprocess.Popen(["/usr/bin/time", "-f", "enc %U %S", es, "-q", "--home",
                            os.path.join(d, "C"), "encrypt"], stdin=open(src, "rb"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dec = subprocess.Popen(["/usr/bin/time", "-f", "dec %U %S", es, "-q", "--home",
                            os.path.join(d, "D"), "decrypt"], stdin=enc.stdout,
                           stdout=open(out, "wb"), stderr=subprocess.PIPE)
    enc.stdout.close()
    # Both stderr pipes are drained at once, so neither process can block on them.
    e_err, d_err = "", ""
    with ThreadPoolExecutor(2) as pool:
        fe = pool.submit(lambda: enc.stderr.read().decode())
        fd = pool.submit(lambda: dec.stderr.read().decode())
        e_err, d_err = fe.result(), fd.result()
    if enc.wait() != 0 or dec.wait() != 0:
        sys.exit("stream failed: " + e_err + d_err)
    wall = time.perf_counter() - t0
    with open(out) as f:
        got = sum(1 for _ in f)
    if got != n:
        sys.exit(f"stream lost stanzas: {got} of {n}")
    cpu = {}
    for line in (e_err + d_err).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("enc", "dec"):
            cpu[parts[0]] = float(parts[1]) + float(parts[2])
    print(f"(b) encrypt | decrypt, {n} stanzas: {wall:.2f} s, {n / wall:,.0f} stanzas/s; "
          f"CPU per stanza: encrypt {cpu.get('enc', 0) / n * 1e6:.1f} us, "
          f"decrypt {cpu.get('dec', 0) / n * 1e6:.1f} us")
    # The primitive limit: what AES-256-CTR and HMAC-SHA256 of one stanza cost in OpenSSL.
    limit = primitive_us_per_stanza()
    if limit:
        print(f"(b) primitive limit (openssl speed, 512-byte blocks): {limit:.2f} us per stanza "
              f"for AES-256-CTR + HMAC-SHA256 = {1e6 / limit:,.0f} stanzas/s per core")


if __name__ == "__main__":
    main()
