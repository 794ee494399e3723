#!/usr/bin/env python3
"""cli.socat: two esession processes joined by socat (each one's stdout to the other's stdin)
complete a session, both flows; then a stanza goes through. Skipped, with the reason, when socat
is not installed."""

import shutil
import subprocess

from clitest import ALICE, BOB, Test, shq

t = Test("cli.socat")
socat = shutil.which("socat")
if not socat:
    t.skip("socat is not installed (scripts/install-deps installs it)")

for flow in (4, 3):
    a = t.init_home("A%d" % flow, ALICE)
    b = t.init_home("B%d" % flow, BOB)
    if flow == 3:
        for h in (a, b):
            t.check_rc(t.run(h, "key", "generate"), 0, "key generate")
    resp = " ".join(shq(x) for x in [t.esession, "--home", b, "respond"])
    neg = " ".join(shq(x) for x in [t.esession, "--home", a, "negotiate", "--to", BOB,
                                     "--flow", str(flow)])
    p = subprocess.run([socat, "EXEC:%s" % resp, "EXEC:%s" % neg], capture_output=True,
                       timeout=60)
    t.check(p.returncode == 0, "flow %d: socat and both sides exit 0" % flow,
            p.stderr.decode(errors="replace"))
    ra, rb = t.session_rows(a), t.session_rows(b)
    t.check(len(ra) == 1 and len(rb) == 1 and ra[0][2] == rb[0][2] and ra[0][3] == "active",
            "flow %d: one active session on each side, same thread" % flow, (ra, rb))
    st = '<message to="%s" type="chat"><body>through socat</body></message>' % BOB
    e = t.run(a, "encrypt", input=st.encode())
    d = t.run(b, "decrypt", input=e.out)
    t.check_rc(d, 0, "flow %d: decrypt" % flow)
    t.check(b"<body>through socat</body>" in d.out, "flow %d: the stanza arrives" % flow,
            d.out_text)

t.finish()
