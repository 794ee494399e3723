#!/usr/bin/env python3
"""cli.stream: 1,000 stanzas each way through `encrypt | decrypt`, one encrypt and one decrypt
process per direction, both directions at the same time (so each home has an encrypt and a
decrypt process updating the same session concurrently). Messages, presences and iqs with
bodies; the decrypted output must equal the input, allowing for the 'from', 'to' and <thread/>
that encrypt adds."""

import subprocess

from clitest import ALICE, BOB, Test, expected_after_roundtrip, make_stanzas, normalized

N = 1000
t = Test("cli.stream")
a, b, ra, rb = t.session_pair()
thread = t.status_lines(ra, "ESTABLISHED")[0].split()[1]

directions = []
for (src, dst, sender, peer, tag) in ((a, b, ALICE, BOB, "ab"), (b, a, BOB, ALICE, "ba")):
    stanzas = make_stanzas(N, peer, t.rng, tag)
    inp = t.path("%s.in" % tag)
    with open(inp, "w", encoding="utf-8") as f:
        # Mixed framing: mostly one per line, some back to back, some pretty-printed.
        for i, s in enumerate(stanzas):
            if i % 11 == 5:
                end = s.rindex("</")
                s = s[:end].replace(">", ">\n  ", 1) + "\n" + s[end:]
            f.write(s + ("\n" if i % 7 else "  \n\n" if i % 2 else ""))
    directions.append((src, dst, sender, peer, tag, stanzas, inp))

t.log("running 2 x (encrypt | decrypt) with %d stanzas each way" % N)
procs = []
for (src, dst, sender, peer, tag, stanzas, inp) in directions:
    fin = open(inp, "rb")
    fwire = open(t.path("%s.wire" % tag), "wb")
    fout = open(t.path("%s.out" % tag), "wb")
    ferr_e = open(t.path("%s.enc.err" % tag), "wb")
    ferr_d = open(t.path("%s.dec.err" % tag), "wb")
    enc = subprocess.Popen([t.esession, "--home", src, "encrypt"], stdin=fin,
                           stdout=subprocess.PIPE, stderr=ferr_e)
    tee = subprocess.Popen(["tee", t.path("%s.wire" % tag)], stdin=enc.stdout,
                           stdout=subprocess.PIPE)
    dec = subprocess.Popen([t.esession, "--home", dst, "decrypt"], stdin=tee.stdout,
                           stdout=fout, stderr=ferr_d)
    enc.stdout.close()
    tee.stdout.close()
    procs.append((tag, enc, tee, dec, [fin, fwire, fout, ferr_e, ferr_d]))
for tag, enc, tee, dec, files in procs:
    try:
        rcs = [p.wait(timeout=100) for p in (enc, tee, dec)]
    except subprocess.TimeoutExpired:
        for p in (enc, tee, dec):
            p.kill()
        rcs = [p.wait() for p in (enc, tee, dec)]
        t.check(False, "%s: pipeline timed out" % tag)
    for f in files:
        f.close()
    t.check(rcs[0] == 0, "%s: encrypt exits 0 (got %s)" % (tag, rcs[0]),
            open(t.path("%s.enc.err" % tag), "rb").read().decode(errors="replace"))
    t.check(rcs[2] == 0, "%s: decrypt exits 0 (got %s)" % (tag, rcs[2]),
            open(t.path("%s.dec.err" % tag), "rb").read().decode(errors="replace"))
t.log("pipelines done")

for (src, dst, sender, peer, tag, stanzas, inp) in directions:
    wire = open(t.path("%s.wire" % tag), "rb").read().decode().splitlines()
    out = open(t.path("%s.out" % tag), "rb").read().decode().splitlines()
    t.check(len(wire) == N, "%s: encrypt wrote %d lines (one stanza per line)" % (tag, N),
            len(wire))
    t.check(len(out) == N, "%s: decrypt wrote %d lines" % (tag, N), len(out))
    clear = [w for w in wire if "%s-" % tag in w or "<body>" in w or "<status>" in w]
    t.check(not clear, "%s: no content in clear on the wire" % tag, clear[:2])
    t.check(all(("<c xmlns=\"http://www.xmpp.org/extensions/xep-0200.html#ns\">" in w)
                for w in wire), "%s: every wire stanza carries <c/>" % tag)
    bad = []
    for i, (s, o) in enumerate(zip(stanzas, out)):
        want = expected_after_roundtrip(s, sender, peer, thread)
        try:
            got = normalized(o)
        except Exception as e:  # an unparsable output line
            got = ("unparsable", str(e))
        if got != want:
            bad.append((i, s, o, want, got))
    if not t.check(not bad, "%s: every decrypted stanza equals its input (+from/to/thread); "
                   "%d differ" % (tag, len(bad)),
                   "first: #%d\n in:   %s\n out:  %s\n want: %s\n got:  %s" % bad[0]
                   if bad else None):
        pass

# Both sessions still work both ways after the run.
for (src, dst, sender, peer) in ((a, b, ALICE, BOB), (b, a, BOB, ALICE)):
    e = t.run(src, "encrypt", input=('<message to="%s"><body>after</body></message>'
                                     % peer).encode())
    d = t.run(dst, "decrypt", input=e.out)
    t.check(e.rc == 0 and d.rc == 0 and "<body>after</body>" in d.out_text,
            "%s -> %s: a further stanza goes through" % (sender, peer), e.describe() + "\n"
            + d.describe())
t.finish()
