#!/usr/bin/env python3
"""Gajim mode on the command line writes Gajim's wire (issue 13, defect 7).

Two homes negotiate with --gajim through a relay that records every stanza. Each is compared
with Gajim's own: the offer byte for byte with message 1 of formats/vectors/gajim-kat-modp5.json
once the values that differ per session are put aside, and every stanza for nbxmpp's spelling
of empty elements ("<required />"). Then `terminate` writes Gajim's clear termination form,
type="text-single" on its fields, and `encrypt` writes its stanzas the same way.
"""

import json
import os
import re

from clitest import ALICE, BOB, Test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAT = os.path.join(ROOT, "formats", "vectors", "gajim-kat-modp5.json")


def offer_shape(line):
    """The offer with its per-session values replaced by placeholders."""
    s = line.strip()
    s = re.sub(r' (to|from)="[^"]*"', "", s)
    s = re.sub(r'<thread>[^<]*</thread>', "<thread>T</thread>", s)
    s = re.sub(r'(<field var="my_nonce" type="hidden"><value>)[^<]*', r"\1N", s)
    s = re.sub(r'(<field var="modp" type="list-single">)(<option label="None"><value>\d+</value>'
               r'</option>)+', r"\1G", s)
    s = re.sub(r'(<field var="dhhashes" type="hidden">)(<value>[^<]*</value>)+', r"\1H", s)
    return s


def bad_empty_tags(line):
    """Empty elements written without the space Gajim writes before '/>'."""
    return re.findall(r'<[^>]*[^ ]/>', line)


def main():
    t = Test("gajim")
    with open(KAT) as f:
        kat = json.load(f)
    gajim_offer = kat["sessions"][0]["negotiation"][0]["wire"]

    a = t.init_home("A", ALICE)
    b = t.init_home("B", BOB)
    wire = {"a": [], "b": []}

    def record(who):
        def f(line):
            wire[who].append(line.decode())
            return line
        return f
    ra, rb, _ = t.relay_negotiation(a, ALICE, b, BOB, neg_args=["--gajim"],
                                    resp_args=["--gajim"], a_to_b=record("a"),
                                    b_to_a=record("b"))
    if not (t.check_rc(ra, 0, "negotiate --gajim") and t.check_rc(rb, 0, "respond --gajim")):
        t.finish()
    t.check(len(wire["a"]) == 2 and len(wire["b"]) == 2,
            "four negotiation messages", wire)
    offer = wire["a"][0]
    t.check(offer_shape(offer) == offer_shape(gajim_offer),
            "the CLI's Gajim-mode offer is Gajim's, byte for byte",
            "ours:  %s\ngajim: %s" % (offer_shape(offer), offer_shape(gajim_offer)))
    t.check(offer.count("<required />") == 4, "the offer writes <required /> four times", offer)
    for who in ("a", "b"):
        for i, line in enumerate(wire[who]):
            t.check(not bad_empty_tags(line),
                    "negotiation stanza %d from %s: empty elements as <x />" % (i, who), line)
            t.check(' type="text-single"' in line or i == 0 and who == "a",
                    "negotiation stanza %d from %s: Gajim's field types" % (i, who), line)

    # encrypt: what stays in clear is written as Gajim writes it too (an <amp/> rule here).
    st = ('<message to="%s" type="chat"><body>h\u00e9</body>'
          '<amp xmlns="http://jabber.org/protocol/amp"><rule action="drop" condition="deliver" '
          'value="stored"/></amp></message>\n' % BOB)
    r = t.run(a, "encrypt", input=st.encode())
    t.check_rc(r, 0, "encrypt")
    t.check(r.out_text.count("\n") == 1 and '<rule action="drop" condition="deliver" '
            'value="stored" />' in r.out_text and not bad_empty_tags(r.out_text),
            "encrypt in Gajim mode writes Gajim's spelling", r.out_text)
    d = t.run(b, "decrypt", input=r.out)
    t.check_rc(d, 0, "decrypt")
    t.check("<body>h\u00e9</body>" in d.out_text, "the peer decrypts it", d.describe())

    # terminate: T1, the form in clear with Gajim's field types, no acknowledgement.
    r = t.run(a, "terminate", "--to", BOB)
    t.check_rc(r, 0, "terminate")
    line = r.out_text.strip()
    thread = re.search(r"<thread>([^<]*)</thread>", line)
    t.check(thread is not None, "the termination names its thread", line)
    if thread:
        want = ('<message xmlns="jabber:client" to="%s" from="%s">'
                '<feature xmlns="http://jabber.org/protocol/feature-neg">'
                '<x xmlns="jabber:x:data" type="submit">'
                '<field var="FORM_TYPE" type="text-single"><value>urn:xmpp:ssn</value></field>'
                '<field var="terminate" type="text-single"><value>1</value></field>'
                '</x></feature><thread>%s</thread></message>' % (BOB, ALICE, thread.group(1)))
        t.check(line == want, "the termination is Gajim's, byte for byte",
                "ours: %s\nwant: %s" % (line, want))
    d = t.run(b, "decrypt", input=r.out)
    t.check_rc(d, 0, "decrypt the termination")
    t.check(t.session_status(b, ALICE) == "ended", "the peer's session has ended")
    t.finish()


if __name__ == "__main__":
    main()
