"""The negative-vector suite: one file per failure, in negative/ (formats/vectors/README.md).

Each file is an esession-vector/1 negative-case file (SCHEMA.md §6) holding one case, named by
what is wrong, with `expected_outcome.class` naming the failure class the receiver must report.
The cases are derived from the spec-mode transcript spec-4msg.json (and a few from the Gajim
known-answer vector, for the Gajim-mode conventions) by editing wire strings. Called by
generate.py; only the Python standard library is used.
"""
import base64
import copy
import json
import os
import re

NS_C = "http://www.xmpp.org/extensions/xep-0200.html#ns"
# RFC 3526 group 14 prime, for the out-of-range DH values.
P14 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)


def b64(b):
    return base64.b64encode(b).decode()


def mpi(n):
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def flip(v):
    b = bytearray(base64.b64decode(v))
    b[len(b) // 2] ^= 1
    return b64(bytes(b))


def field_re(var):
    return re.compile(r'<field var="%s"(?: type="[^"]*")?>.*?</field>' % re.escape(var))


def field_xml(wire, var):
    m = field_re(var).search(wire)
    assert m, var
    return m.group(0)


def value_of(wire, var):
    return re.search(r"<value>([^<]*)</value>", field_xml(wire, var)).group(1)


def set_value(wire, var, value, index=0):
    """Replaces the text of the |index|-th <value/> of field |var| (XML-escaped)."""
    f = field_xml(wire, var)
    esc = value.replace("&", "&amp;").replace("<", "&lt;").replace("\r", "&#xD;")
    parts = re.split(r"(<value>[^<]*</value>)", f)
    k = -1
    for i, p in enumerate(parts):
        if p.startswith("<value>"):
            k += 1
            if k == index:
                parts[i] = "<value>%s</value>" % esc
    assert k >= index, (var, index)
    return wire.replace(f, "".join(parts), 1)


def remove_field(wire, var):
    return wire.replace(field_xml(wire, var), "", 1)


def duplicate_field(wire, var):
    f = field_xml(wire, var)
    return wire.replace(f, f + f, 1)


def set_element(wire, name, value):
    """Replaces the text of the first <name>…</name> (a <c/> child)."""
    out, n = re.subn(r"<%s>[^<]*</%s>" % (name, name), "<%s>%s</%s>" % (name, value, name), wire,
                     count=1)
    assert n == 1, name
    return out


def element_text(wire, name):
    return re.search(r"<%s>([^<]*)</%s>" % (name, name), wire).group(1)


def spellings(v):
    """Non-canonical spellings of the canonical Base64 value |v| (formats §1.3)."""
    out = {
        "leading-space": " " + v, "trailing-space": v + " ", "leading-tab": "\t" + v,
        "trailing-tab": v + "\t", "trailing-lf": v + "\n", "leading-lf": "\n" + v,
        "inner-lf": v[:4] + "\n" + v[4:], "trailing-crlf": v + "\r\n", "inner-space": v[:4] + " " + v[4:],
        "extra-padding": v + "=" if v.endswith("=") else v + "==",
    }
    if v.endswith("="):
        out["missing-padding"] = v.rstrip("=")
        body = v.rstrip("=")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = alphabet.index(body[-1])
        out["padding-bits"] = body[:-1] + alphabet[last | 1] + v[len(body):]
    else:
        out["padding-inside"] = v[:4] + "=" + v[5:]
    if "+" in v or "/" in v:
        out["url-alphabet"] = v.replace("+", "-").replace("/", "_")
    return out


class Suite:
    def __init__(self, spec):
        self.doc = spec
        s = spec["sessions"][0]
        self.s = s
        self.m = [x["wire"] for x in s["negotiation"]]
        self.st = [x["wire"] for x in s["stanzas"]]
        self.thread = s["thread"]
        self.base = {k: s[k] for k in ("inputs", "thread", "alice_config", "bob_config",
                                       "retained_secrets_before")}
        self.base.update({"file": "spec-4msg.json", "rng_key": "generate.py drbg",
                          "parties": spec["parties"]})
        self.cases = {}

    def msg(self, i):
        return {"ref": "msg %d" % i, "wire": self.m[i - 1]}

    def first(self, upto, receiver):
        """The genuine messages that bring |receiver| to the point where it reads message
        |upto| (1-4), or an established session (upto = 5)."""
        plan = {"bob": [(1, "bob"), (3, "bob")], "alice": [(2, "alice"), (4, "alice")]}
        order = [(1, "bob"), (2, "alice"), (3, "bob"), (4, "alice")]
        out = []
        for i, to in order:
            if i >= upto:
                break
            if (i, to) in plan[receiver] or upto == 5:
                out.append({"ref": "msg %d" % i, "to": to, "wire": self.m[i - 1]})
        return out

    def add(self, name, desc, cls, receiver, first, original, tampered, mutation):
        assert name not in self.cases, name
        case = {"id": name, "description": desc, "receiver": receiver, "deliver_first": first,
                "tampered_wire": tampered, "mutation": mutation,
                "expected_outcome": {"result": "reject", "class": cls}}
        if original is not None:
            case["original"] = original
        self.cases[name] = case

    def neg(self, i, name, desc, cls, tampered, mutation):
        """A case on negotiation message |i|, refused on arrival."""
        receiver = "bob" if i % 2 else "alice"
        self.add("msg%d-%s" % (i, name), desc, cls, receiver, self.first(i, receiver), self.msg(i),
                 tampered, mutation)

    def stanza_case(self, k, name, desc, cls, tampered, mutation, original=True, extra_first=(),
                    survives=False):
        """A case on encrypted stanza |k| (1-based), after the session is established and the
        earlier stanzas of the same direction are delivered."""
        sx = self.s["stanzas"][k - 1]
        receiver = sx["recipient"]
        first = self.first(5, receiver)
        for j in range(k - 1):
            if self.s["stanzas"][j]["recipient"] == receiver:
                first.append({"ref": "stanza %d" % (j + 1), "to": receiver, "wire": self.st[j]})
        first += list(extra_first)
        self.add("stanza%d-%s" % (k, name), desc, cls, receiver, first,
                 {"ref": "stanza %d" % k, "wire": self.st[k - 1]} if original else None, tampered,
                 mutation)
        if survives:
            # An unauthenticated stanza (no <c/>) must not end the session (formats §15.7).
            self.cases["stanza%d-%s" % (k, name)]["session_survives"] = True

    def files(self):
        for name, case in sorted(self.cases.items()):
            yield name, {
                "schema": "esession-vector/1", "scenario": "negative/" + name,
                "description": case["description"] + ". Generated by formats/vectors/negative.py "
                               "from spec-4msg.json.",
                "gajim_compat": self.doc["gajim_compat"], "base_scenario": self.base,
                "cases": [case], "conventions_used": []}


def spec_cases(spec):
    x = Suite(spec)
    m1, m2, m3, m4 = x.m

    # Base64: every field that carries it, each non-canonical spelling (formats §1.3: malformed).
    b64_fields = [(1, "my_nonce"), (1, "dhhashes"), (2, "my_nonce"), (2, "dhkeys"), (2, "nonce"),
                  (2, "counter"), (3, "nonce"), (3, "dhkeys"), (3, "rshashes"), (3, "identity"),
                  (3, "mac"), (4, "nonce"), (4, "srshash"), (4, "identity"), (4, "mac")]
    for i, var in b64_fields:
        for sp, val in spellings(value_of(x.m[i - 1], var)).items():
            x.neg(i, "%s-b64-%s" % (var, sp), "message %d: %s spelled with %s" % (i, var, sp),
                  "malformed", set_value(x.m[i - 1], var, val),
                  {"field": var, "op": "base64 " + sp})
    for k, where in ((1, "data"), (1, "mac")):
        for sp, val in spellings(element_text(x.st[k - 1], where)).items():
            x.stanza_case(k, "%s-b64-%s" % (where, sp), "stanza %d: <%s/> spelled with %s"
                          % (k, where, sp), "malformed",
                          set_element(x.st[k - 1], where, val), {"element": where, "op": sp})
    for where in ("data", "mac"):
        for sp in ("trailing-space", "inner-lf", "missing-padding"):
            val = spellings(element_text(m4, where))[sp]
            x.neg(4, "content-%s-b64-%s" % (where, sp),
                  "message 4: <%s/> of the stanza it carries spelled with %s" % (where, sp),
                  "malformed", set_element(m4, where, val), {"element": where, "op": sp})

    # MPI and decimal encodings.
    d = int.from_bytes(base64.b64decode(value_of(m2, "dhkeys")), "big")
    e = int.from_bytes(base64.b64decode(value_of(m3, "dhkeys")), "big")
    ctr = base64.b64decode(value_of(m2, "counter"))
    x.neg(2, "dhkeys-mpi-leading-zero", "message 2: d with a leading zero octet", "malformed",
          set_value(m2, "dhkeys", b64(b"\0" + mpi(d))), {"field": "dhkeys", "op": "0x00 prefix"})
    x.neg(3, "dhkeys-mpi-leading-zero", "message 3: e with a leading zero octet", "malformed",
          set_value(m3, "dhkeys", b64(b"\0" + mpi(e))), {"field": "dhkeys", "op": "0x00 prefix"})
    x.neg(2, "counter-mpi-leading-zero", "message 2: counter with a leading zero octet",
          "malformed", set_value(m2, "counter", b64(b"\0" + ctr.lstrip(b"\0"))),
          {"field": "counter", "op": "0x00 prefix"})
    for name, v in (("plus", "+1"), ("leading-zero", "01"), ("minus", "-1"), ("space", " 1"),
                    ("fraction", "1.0"), ("hex", "0x1"), ("too-big", "4294967296"), ("empty", "")):
        x.neg(1, "rekey_freq-%s" % name, "message 1: rekey_freq '%s'" % v, "malformed",
              set_value(m1, "rekey_freq", v), {"field": "rekey_freq", "op": "set " + repr(v)})
        x.neg(2, "rekey_freq-%s" % name, "message 2: rekey_freq '%s'" % v, "malformed",
              set_value(m2, "rekey_freq", v), {"field": "rekey_freq", "op": "set " + repr(v)})

    # DH values out of range.
    for name, v in (("zero", 0), ("one", 1), ("p-minus-1", P14 - 1), ("p", P14), ("p-plus-1", P14 + 1)):
        x.neg(2, "dhkeys-%s" % name, "message 2: d = %s" % name, "bad-dh-value",
              set_value(m2, "dhkeys", b64(mpi(v))), {"field": "dhkeys", "op": "set " + name})

    # Lengths.
    for i in (1, 2):
        for n in (7, 65):
            x.neg(i, "my_nonce-%d-bytes" % n, "message %d: my_nonce of %d bytes" % (i, n),
                  "malformed", set_value(x.m[i - 1], "my_nonce", b64(bytes([0x80] + [1] * (n - 1)))),
                  {"field": "my_nonce", "op": "%d bytes" % n})
    x.neg(2, "counter-17-bytes", "message 2: counter of 17 bytes", "malformed",
          set_value(m2, "counter", b64(b"\x01" * 17)), {"field": "counter", "op": "17 bytes"})
    x.neg(2, "counter-empty", "message 2: empty counter", "malformed",
          set_value(m2, "counter", ""), {"field": "counter", "op": "empty"})

    # Each field tampered: refused where it arrives (authentication or policy).
    x.neg(2, "nonce-flipped", "message 2 echoes a wrong nonce", "auth-failed",
          set_value(m2, "nonce", flip(value_of(m2, "nonce"))), {"field": "nonce", "op": "flip"})
    for var, v, cls in (("modp", "15", "not-acceptable"), ("crypt_algs", "aes192-ctr", "not-acceptable"),
                        ("hash_algs", "md5", "not-acceptable"), ("stanzas", "foo", "not-acceptable"),
                        ("init_pubkey", "key", "not-acceptable"), ("sas_algs", "sas99", "not-acceptable"),
                        ("ver", "2.0", "not-acceptable"), ("accept", "0", "not-acceptable")):
        x.neg(2, "%s-not-offered" % var, "message 2 chooses %s = %s, which was not offered" % (var, v),
              cls, set_value(m2, var, v), {"field": var, "op": "set " + v})
    for var, v in (("logging", "always"), ("disclosure", "disk"), ("security", "c2s"),
                   ("compress", "zlib")):
        x.neg(2, "%s-not-offered" % var, "message 2 answers %s = %s, which was not offered" % (var, v),
              "not-acceptable", set_value(m2, var, v), {"field": var, "op": "set " + v})
    # Lengths of the retained-secret hashes (formats §15.2): checked before any MAC.
    short = b64(base64.b64decode(value_of(m3, "rshashes"))[:-1])
    x.neg(3, "rshashes-short", "message 3: an rshashes value one byte shorter than the hash",
          "malformed", set_value(m3, "rshashes", short), {"field": "rshashes", "op": "drop a byte"})
    short = b64(base64.b64decode(value_of(m4, "srshash"))[:-1])
    x.neg(4, "srshash-short", "message 4: srshash one byte shorter than the hash", "malformed",
          set_value(m4, "srshash", short), {"field": "srshash", "op": "drop a byte"})
    # A namespace-qualified attribute has no place in a normalized form (formats §1.5).
    x.neg(1, "qualified-attribute", "message 1: a field with a namespace-qualified attribute",
          "malformed", re.sub(r'<field ([^>]*var="modp")',
                              r'<field xmlns:p="urn:example:p" p:a="1" \1', m1, count=1),
          {"field": "modp", "op": "add p:a"})
    for var in ("nonce", "dhkeys", "identity", "mac"):
        x.neg(3, "%s-flipped" % var, "message 3: %s has one bit flipped" % var, "auth-failed",
              set_value(m3, var, flip(value_of(m3, var))), {"field": var, "op": "flip"})
    x.neg(3, "rshashes-flipped", "message 3: an rshashes value has one bit flipped (MACed)",
          "auth-failed", set_value(m3, "rshashes", flip(value_of(m3, "rshashes"))),
          {"field": "rshashes", "op": "flip"})
    x.neg(3, "accept-false", "message 3 declines", "not-acceptable", set_value(m3, "accept", "0"),
          {"field": "accept", "op": "set 0"})
    for var in ("nonce", "srshash", "identity", "mac"):
        x.neg(4, "%s-flipped" % var, "message 4: %s has one bit flipped" % var, "auth-failed",
              set_value(m4, var, flip(value_of(m4, var))), {"field": var, "op": "flip"})
    x.neg(4, "content-data-flipped", "message 4: the stanza it carries has a bit of <data/> flipped",
          "auth-failed", set_element(m4, "data", flip(element_text(m4, "data"))),
          {"element": "data", "op": "flip"})

    # Tampered in transit, found by the next message the victim reads.
    for var, new, why in (("my_nonce", None, "flipped"), ("dhhashes", None, "flipped"),
                          ("rekey_freq", "2", "raised"), ("crypt_algs", "aes128-ctr", "narrowed")):
        t = set_value(m1, var, new if new else flip(value_of(m1, var)))
        x.add("msg1-%s-%s-in-transit" % (var, why),
              "message 1 reached Bob with %s %s; Alice's message 3 does not verify for him"
              % (var, why), "auth-failed", "bob",
              [{"ref": "msg 1 (tampered)", "to": "bob", "wire": t}], None, m3,
              {"field": var, "op": why, "detected_in": "msg 3"})
    for var in ("my_nonce", "dhkeys", "counter"):
        t = set_value(m2, var, flip(value_of(m2, var)))
        x.add("msg2-%s-flipped-in-transit" % var,
              "message 2 reached Alice with %s flipped; Bob's message 4 does not verify for her" % var,
              "auth-failed", "alice", [{"ref": "msg 2 (tampered)", "to": "alice", "wire": t}], None,
              m4, {"field": var, "op": "flip", "detected_in": "msg 4"})

    # Required fields missing or duplicated.
    required = {1: ["FORM_TYPE", "accept", "logging", "disclosure", "security", "modp", "crypt_algs",
                    "hash_algs", "compress", "stanzas", "init_pubkey", "resp_pubkey", "ver",
                    "rekey_freq", "my_nonce", "sas_algs", "dhhashes"],
                2: ["accept", "modp", "crypt_algs", "hash_algs", "stanzas", "init_pubkey",
                    "resp_pubkey", "rekey_freq", "my_nonce", "sas_algs", "dhkeys", "nonce",
                    "counter"],
                3: ["accept", "nonce", "dhkeys", "rshashes", "identity", "mac"],
                4: ["nonce", "srshash", "identity", "mac"]}
    for i, vars_ in required.items():
        for var in vars_:
            cls = "malformed"
            x.neg(i, "%s-missing" % var, "message %d without %s" % (i, var), cls,
                  remove_field(x.m[i - 1], var), {"field": var, "op": "remove"})
            x.neg(i, "%s-duplicated" % var, "message %d with %s twice" % (i, var), "malformed",
                  duplicate_field(x.m[i - 1], var), {"field": var, "op": "duplicate"})
    x.neg(1, "ver-unknown", "message 1 offers only ver 2.0", "not-acceptable",
          m1.replace("<value>1.0</value>", "<value>2.0</value>"), {"field": "ver", "op": "set 2.0"})

    # The <c/> layer (stanza 1, Alice to Bob).
    s1 = x.st[0]
    c1 = re.search(r'<c xmlns="[^"]*">.*?</c>', s1).group(0)
    data = re.search(r"<data>[^<]*</data>", s1).group(0)
    mac = re.search(r"<mac>[^<]*</mac>", s1).group(0)
    body_clear = s1.replace(c1, "<body>in clear</body>")
    for name, desc, t, cls in (
            ("two-data", "two <data/>", s1.replace(data, data + data), "malformed"),
            ("mac-missing", "no <mac/>", s1.replace(mac, ""), "malformed"),
            ("two-mac", "two <mac/>", s1.replace(mac, mac + mac), "malformed"),
            ("c-empty", "an empty <c/>", s1.replace(c1, '<c xmlns="%s"/>' % NS_C), "malformed"),
            ("two-c", "two stanza-level <c/>", s1.replace(c1, c1 + c1), "malformed"),
            ("c-unknown-child", "an unknown child in <c/>",
             s1.replace(mac, "<extra>AAAA</extra>" + mac), "malformed"),
            ("c-text", "text directly in <c/>", s1.replace(mac, "text" + mac), "malformed"),
            ("c-child-attribute", "an attribute on <data/>",
             s1.replace("<data>", '<data a="1">'), "malformed"),
            ("new-without-rekey", "<new>1</new> where no re-key was sent",
             s1.replace(mac, "<new>1</new>" + mac), "wrong-state"),
            ("new-leading-zero", "<new>01</new>", s1.replace(mac, "<new>01</new>" + mac),
             "malformed"),
            ("old-b64-missing-padding", "an <old/> MAC key that is not canonical Base64",
             s1.replace(mac, "<old>AAA</old>" + mac), "malformed"),

            ("data-flipped", "a bit of <data/> flipped", set_element(s1, "data", flip(element_text(s1, "data"))),
             "auth-failed"),
            ("mac-flipped", "a bit of <mac/> flipped", set_element(s1, "mac", flip(element_text(s1, "mac"))),
             "auth-failed")):
        x.stanza_case(1, name, "stanza 1: " + desc, cls, t, {"op": name})
    # A termination form in clear is Gajim's (T1): in spec mode it is refused.
    clear_term = ('<message xmlns="jabber:client" to="bob@example.com/laptop" '
                  'from="alice@example.org/pda"><thread>%s</thread><feature '
                  'xmlns="http://jabber.org/protocol/feature-neg"><x xmlns="jabber:x:data" '
                  'type="submit"><field var="FORM_TYPE"><value>urn:xmpp:ssn</value></field>'
                  '<field var="terminate"><value>1</value></field></x></feature></message>'
                  % x.thread)
    x.stanza_case(1, "termination-in-clear", "a termination form in clear (spec mode encrypts it)",
                  "auth-failed", clear_term, {"op": "clear termination"}, survives=True)
    x.stanza_case(1, "clear", "stanza 1: a clear <body/> and no <c/> in an established session",
                  "auth-failed", body_clear, {"op": "clear"}, survives=True)
    x.stanza_case(1, "replayed", "stanza 1 delivered twice", "auth-failed", s1, {"op": "replay"},
                  extra_first=[{"ref": "stanza 1", "to": "bob", "wire": s1}])
    x.stanza_case(3, "before-stanza-1", "stanza 3 delivered before stanza 1", "auth-failed", x.st[2],
                  {"op": "reorder"})
    x.cases["stanza3-before-stanza-1"]["deliver_first"] = x.first(5, "bob")

    # Error stanzas (stanza 5: an iq error whose details are in a second <c/> inside <error/>).
    s5 = x.st[4]
    err = re.search(r"<error [^>]*>.*?</error>", s5).group(0)
    inner = re.search(r'<c xmlns="[^"]*">.*?</c>', err).group(0)
    outer = s5.replace(err, "")
    outer_c = re.search(r'<c xmlns="[^"]*">.*?</c>', outer).group(0)
    for name, desc, t, cls in (
            ("inner-c-not-error", "a <c/> inside <error/> of a stanza whose type is not error",
             s5.replace('type="error"', 'type="result"', 1), "malformed"),
            ("two-inner-c", "two <c/> inside <error/>", s5.replace(inner, inner + inner), "malformed"),
            ("inner-data-flipped", "a bit of the inner <data/> flipped",
             s5.replace(inner, set_element(inner, "data", flip(element_text(inner, "data")))),
             "auth-failed"),
            ("outer-c-missing", "only the <c/> inside <error/>", s5.replace(outer_c, ""),
             "malformed"),
            ("c-order-swapped", "the two <c/> exchanged",
             s5.replace(inner, "\0").replace(outer_c, inner).replace("\0", outer_c), "auth-failed")):
        x.stanza_case(5, name, "stanza 5 (iq error): " + desc, cls, t, {"op": name})

    # Decrypted content the receiver must refuse (formats §15): the sender encrypts these bytes.
    env = ('<message xmlns="jabber:client" to="bob@example.com/laptop" from="alice@example.org/pda" '
           'type="chat"><thread>%s</thread></message>' % x.thread)
    for name, plain in (("unbound-prefix", "<p:x/>"), ("unbound-attribute-prefix", '<x a0:b="v"/>'),
                        ("text-outside-elements", "<body>a</body>hello"),
                        ("not-well-formed", "<body>a</bod>"),
                        ("xml-prefix-rebound", '<x xmlns:xml="urn:example:x"/>'),
                        ("xmlns-prefix-declared", '<x xmlns:xmlns="urn:example:x"/>'),
                        ("doctype", "<!DOCTYPE x><x/>"), ("pi", "<?pi x?><x/>"),
                        ("invalid-utf8", None)):
        raw = plain.encode() if plain is not None else b"<body>\xc3\x28</body>"
        raw += b" " * ((16 - len(raw) % 16) % 16)
        case = {"id": "stanza1-content-" + name,
                "description": "stanza 1 decrypts to %s" % (repr(plain) if plain else "invalid UTF-8"),
                "receiver": "bob", "deliver_first": x.first(5, "bob"), "envelope": env,
                "tampered_plaintext_hex": raw.hex(), "mutation": {"op": "plaintext " + name},
                "expected_outcome": {"result": "reject", "class": "malformed"}}
        x.cases[case["id"]] = case
    return x


def gajim_cases(src):
    """A few cases in Gajim mode (the KAT-1 base): the conventions do not loosen the checks."""
    s = src["sessions"][0]
    w = [m["wire"] for m in s["negotiation"]]
    st = s["stanzas"][0]["wire"]
    base = {k: s[k] for k in ("inputs", "thread", "alice_config", "bob_config", "retained_secrets_before")}
    base.update({"file": "gajim-kat-modp5.json", "rng_key": src["rng"]["key"], "parties": src["parties"]})
    first = [{"ref": "msg 1", "to": "bob", "wire": w[0]}, {"ref": "msg 3", "to": "bob", "wire": w[2]}]
    data = re.search(r"<data>[^<]*</data>", st).group(0)
    mac = re.search(r"<mac>[^<]*</mac>", st).group(0)
    c = re.search(r'<c xmlns="[^"]*">.*?</c>', st).group(0)
    cases = {
        "gajim-stanza1-data-b64-trailing-space": ("<data/> with a trailing space", "malformed",
                                                   st.replace("</data>", " </data>", 1)),
        "gajim-stanza1-two-data": ("two <data/>", "malformed", st.replace(data, data + data)),
        "gajim-stanza1-mac-missing": ("no <mac/>", "malformed", st.replace(mac, "")),
        "gajim-stanza1-two-c": ("two <c/>", "malformed", st.replace(c, c + c)),
        "gajim-stanza1-mac-flipped": ("a bit of <mac/> flipped", "auth-failed",
                                      set_element(st, "mac", flip(element_text(st, "mac")))),
    }
    out = {}
    for name, (desc, cls, t) in cases.items():
        case = {"id": name, "description": "Gajim mode, KAT-1 stanza 1: " + desc, "receiver": "bob",
                "deliver_first": first, "original": {"ref": "stanza 1", "wire": st},
                "tampered_wire": t, "mutation": {"op": name},
                "expected_outcome": {"result": "reject", "class": cls}}
        out[name] = {"schema": "esession-vector/1", "scenario": "negative/" + name,
                     "description": case["description"] + ". Generated by formats/vectors/negative.py "
                                    "from gajim-kat-modp5.json.",
                     "gajim_compat": src["gajim_compat"], "base_scenario": base, "cases": [case],
                     "conventions_used": s["conventions_used"]}
    return out


def write_suite(spec, gajim_src, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".json"):
            os.remove(os.path.join(out_dir, f))
    files = dict(spec_cases(spec).files())
    files.update(gajim_cases(gajim_src))
    for name, doc in files.items():
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
