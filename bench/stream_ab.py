#!/usr/bin/env python3
"""CPU cost per stanza of `esession encrypt` and `esession decrypt` over one stream, for A/B
comparisons of builds on a noisy machine (issue 12).

One fresh session pair is made with the first binary; N stanzas (those of bench/cli.py) are
encrypted to a file once. Then, for each round and each binary in turn (A B A B ...):
- encrypt: the N clear stanzas, from a fresh copy of the sender's home (output discarded);
- decrypt: the encrypted file, from a fresh copy of the receiver's home (a stream can only be
  decrypted once, in order: the copy is the snapshot taken before the first decryption).
Each process's CPU time (user + system, from wait4) is divided by N. The medians per binary are
printed; with --perf DIR, one more decrypt and encrypt per binary run under `perf record -g`.
With --instructions, one more encrypt and decrypt per binary run under valgrind's callgrind,
whose instruction counts (per stanza, start-up included) do not depend on the machine's load.

Usage: bench/stream_ab.py [--stanzas N] [--rounds R] [--perf DIR] [--instructions]
                          ESESSION [ESESSION ...]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import negotiate, stanza  # noqa: E402


def cpu_of(cmd, stdin_path, stdout_path):
    with open(stdin_path, "rb") as i, open(stdout_path, "wb") as o:
        p = subprocess.Popen(cmd, stdin=i, stdout=o)
        _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed")
    return ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("esession", nargs="+")
    ap.add_argument("--stanzas", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--perf", help="also record perf profiles into this directory")
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions per stanza with valgrind --tool=callgrind")
    args = ap.parse_args()
    bins = [os.path.abspath(b) for b in args.esession]
    n = args.stanzas
    d = tempfile.mkdtemp(prefix="esession-ab-")
    try:
        negotiate(bins[0], d, "C", "D")
        clear = os.path.join(d, "clear.xml")
        with open(clear, "w") as f:
            for i in range(n):
                f.write(stanza(i))
        for home in ("C", "D"):
            shutil.copytree(os.path.join(d, home), os.path.join(d, home + ".snap"))
        enc = os.path.join(d, "enc.xml")
        cpu_of([bins[0], "-q", "--home", os.path.join(d, "C"), "encrypt"], clear, enc)

        def fresh(home):
            work = os.path.join(d, home + ".work")
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(os.path.join(d, home + ".snap"), work)
            return work

        results = {b: {"enc": [], "dec": []} for b in bins}
        out = os.path.join(d, "out.xml")
        for _ in range(args.rounds):
            for b in bins:
                results[b]["enc"].append(
                    cpu_of([b, "-q", "--home", fresh("C"), "encrypt"], clear, out))
                results[b]["dec"].append(
                    cpu_of([b, "-q", "--home", fresh("D"), "decrypt"], enc, out))
                with open(out) as f:
                    if sum(1 for _ in f) != n:
                        sys.exit(f"{b}: decrypt lost stanzas")
        for b in bins:
            e = statistics.median(results[b]["enc"]) / n * 1e6
            dd = statistics.median(results[b]["dec"]) / n * 1e6
            runs = " ".join(f"{x / n * 1e6:.1f}" for x in results[b]["enc"])
            druns = " ".join(f"{x / n * 1e6:.1f}" for x in results[b]["dec"])
            print(f"{b}: encrypt {e:.2f} us/stanza [{runs}], decrypt {dd:.2f} us/stanza [{druns}]; "
                  f"slower process limits a pipe to {1e6 / max(e, dd):,.0f} stanzas/s")
        if args.instructions:
            for b in bins:
                counts = []
                for verb, src, home in (("encrypt", clear, "C"), ("decrypt", enc, "D")):
                    data = os.path.join(d, "callgrind.out")
                    cpu_of(["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={data}",
                            b, "-q", "--home", fresh(home), verb], src, out)
                    with open(data) as f:
                        total = next(int(line.split()[1]) for line in f
                                     if line.startswith("summary:"))
                    counts.append(f"{verb} {total / n:,.0f}")
                print(f"{b}: instructions per stanza: {', '.join(counts)}")
        if args.perf:
            os.makedirs(args.perf, exist_ok=True)
            for k, b in enumerate(bins):
                for verb, src, home in (("decrypt", enc, "D"), ("encrypt", clear, "C")):
                    data = os.path.join(args.perf, f"{k}-{verb}.data")
                    cpu_of(["perf", "record", "-q", "--call-graph", "dwarf", "-o", data, "--", b, "-q", "--home",
                            fresh(home), verb], src, out)
                    print(f"perf profile of {b} {verb}: {data}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
