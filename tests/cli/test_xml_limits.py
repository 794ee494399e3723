#!/usr/bin/env python3
"""cli.xml-limits: the stanza reader is a conforming XML parser with one size limit.

    test_xml_limits.py ESESSION [ESESSION_COUNTERS]

- 64 MiB of an unterminated comment, processing instruction or CDATA section (between stanzas
  and inside one) piped into `decrypt` is refused with exit 2 within about the size limit: the
  writer sees the pipe close after at most a few MiB, and the process's peak memory stays small.
  Before, such a construct was buffered without bound and rescanned on every read.
- What is not XML is refused by `encrypt` (exit 2, nothing written, no counter spent): a '<' in
  an attribute value, a raw control character through a reference. A man in the middle who
  rewrites a genuine encrypted stanza's clear `id` that way gets `decrypt` to exit 2 with
  nothing on stdout, and the session stays usable.
- Prefixed attributes, default-namespace changes, xml:lang and nested prefixes come out of
  `decrypt` namespace-well-formed and as the same infoset that went into `encrypt`.
- `encrypt` refuses, before spending a counter, a stanza whose encrypted form would exceed the
  1 MiB a receiver reads (exit 2); the next stanza encrypts and decrypts.
"""

import os
import re
import subprocess
import threading
import time

from clitest import BOB, EXIT_INPUT, EXIT_OK, Test, memory_bound

t = Test("cli.xml-limits")
a, b, _, _ = t.session_pair("lim")

MIB = 1 << 20


def pump(home, command, head, total=64 * MIB):
    """Writes |head| then filler up to |total| bytes into `esession COMMAND`; returns the
    result, the bytes the writer got into the pipe, and the peak RSS (KiB)."""
    p = subprocess.Popen([t.esession, "--home", home, command], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    written = [0]

    def writer():
        chunk = b"a" * (64 * 1024)
        try:
            p.stdin.write(head)
            written[0] += len(head)
            while written[0] < total:
                p.stdin.write(chunk)
                written[0] += len(chunk)
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    th = threading.Thread(target=writer)
    t0 = time.monotonic()
    th.start()
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, out, err, written[0], usage.ru_maxrss, time.monotonic() - t0


for label, head in (("comment between stanzas", b"<!--"),
                    ("PI between stanzas", b"<?x "),
                    ("comment in a stanza", b"<message to='%s'><!--" % BOB.encode()),
                    ("CDATA in a stanza", b"<message to='%s'><![CDATA[" % BOB.encode()),
                    ("attribute value", b"<message to='")):
    rc, out, err, written, rss, secs = pump(b, "decrypt", head)
    t.check(rc == EXIT_INPUT and out == b"" and err.count(b"esession: error: ") == 1,
            "%s: refused (exit 2, one error line)" % label, (rc, out[:100], err))
    t.check(written <= 8 * MIB, "%s: refused within the limit (%d bytes written of 64 MiB)"
            % (label, written))
    t.check(rss < memory_bound(64 * 1024), "%s: peak memory %d KiB" % (label, rss))
    t.log("%s: %.2f s, %d bytes written, peak RSS %d KiB" % (label, secs, written, rss))

# --- not XML ---
bad_id = ("<message to='%s' id='a<?x&#6;'><body>hi</body></message>\n" % BOB).encode()
r = t.run(a, "encrypt", input=bad_id)
t.check_rc(r, EXIT_INPUT, "encrypt: '<' in an attribute value")
t.check(r.out == b"", "encrypt: nothing written", r.out)

r = t.run(a, "encrypt", input=("<message to='%s' id='m1'><body>genuine</body></message>\n"
                               % BOB).encode())
t.check_rc(r, EXIT_OK, "encrypt a genuine stanza")
line = r.out
forged = re.sub(rb'id="m1"', b"id='a<?x&#6;'", line, count=1)
t.check(forged != line, "the id could be rewritten", line)
d = t.run(b, "decrypt", input=forged)
t.check_rc(d, EXIT_INPUT, "decrypt: a stanza whose clear id is not XML")
t.check(d.out == b"", "decrypt: nothing on stdout", d.out)
d = t.run(b, "decrypt", input=line)
t.check_rc(d, EXIT_OK, "decrypt: the genuine stanza afterwards")
t.check(b"genuine" in d.out, "decrypt: its body", d.out)

# --- namespaced attributes survive the round trip, namespace-well-formed (issue 13, defect 2) ---
payload = ("<p:x xmlns:p='urn:example:p' p:a='v'><p:y p:b='w' xml:lang='en'/></p:x>"
           "<z xmlns='urn:z' xmlns:q='urn:q' q:c='1'><q:n xmlns='' a='2'/></z>")
r = t.run(a, "encrypt", input=("<message to='%s'>%s</message>\n" % (BOB, payload)).encode())
t.check_rc(r, EXIT_OK, "encrypt prefixed attributes")
d = t.run(b, "decrypt", input=r.out)
if t.check_rc(d, EXIT_OK, "decrypt prefixed attributes"):
    import xml.etree.ElementTree as ET
    try:
        got = [c for c in ET.fromstring(d.out) if not c.tag.endswith("}thread")]
    except ET.ParseError as e:
        got = None
        t.check(False, "decrypt's output is namespace-well-formed XML", "%s: %s" % (e, d.out))
    want = list(ET.fromstring(("<m xmlns='jabber:client'>%s</m>" % payload).encode()))
    if got is not None:
        t.check([ET.tostring(c) for c in got] == [ET.tostring(c) for c in want],
                "the payload comes out as the same infoset", d.out)

# --- the size limit, shared by both sides ---
big = ("<message to='%s'><body>%s</body></message>\n" % (BOB, "x" * 900000)).encode()
r = t.run(a, "encrypt", input=big)
t.check_rc(r, EXIT_INPUT, "encrypt: a 900 kB body would exceed 1 MiB encrypted")
t.check(r.out == b"" and b"1048576" in r.err, "encrypt: nothing written, the limit named",
        r.err)
r = t.run(a, "encrypt", input=("<message to='%s'><body>after</body></message>\n"
                               % BOB).encode())
t.check_rc(r, EXIT_OK, "encrypt after the refusal")
d = t.run(b, "decrypt", input=r.out)
t.check_rc(d, EXIT_OK, "decrypt after the refusal: no counter was spent")
t.check(b"after" in d.out, "decrypt after the refusal: the body", d.out)
# Just under the limit: what encrypt writes, decrypt reads.
fits = ("<message to='%s'><body>%s</body></message>\n" % (BOB, "y" * 700000)).encode()
r = t.run(a, "encrypt", input=fits)
if t.check_rc(r, EXIT_OK, "encrypt a 700 kB body"):
    t.check(len(r.out) <= MIB + 1, "its encrypted form is within 1 MiB (%d)" % len(r.out))
    d = t.run(b, "decrypt", input=r.out)
    t.check_rc(d, EXIT_OK, "decrypt reads what encrypt wrote")
t.finish()
