#!/usr/bin/env bash
# Validates every wire stanza we generate (the demo in spec and Gajim mode, and the vector
# replays) against formats/schemas/stanza.xsd, and checks that the schema refuses a bad <c/>.
set -euo pipefail
esession=$1 vectors=$2 root=$3 unit_tests=$4
xsd="$root/formats/schemas/stanza.xsd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  "$esession" demo | sed -n 's/^  \(<.*\)$/\1/p'
  "$esession" demo --gajim | sed -n 's/^  \(<.*\)$/\1/p'
  for f in "$root"/formats/vectors/kat-1s.json "$root"/formats/vectors/gajim-kat-modp5.json; do
    "$vectors" "$f" 2>/dev/null | grep '^<'
  done
  # Three-message and public-key negotiations, from the unit tests tagged [wire].
  ESESSION_WIRE_DUMP="$tmp/wire" "$unit_tests" "[wire]" >/dev/null
  grep -c . "$tmp/wire" >/dev/null
  cat "$tmp/wire"
} > "$tmp/stanzas"
n=0
while IFS= read -r line; do
  n=$((n + 1))
  printf '%s\n' "$line" > "$tmp/s$n.xml"
  if ! xmllint --noout --schema "$xsd" "$tmp/s$n.xml" 2>"$tmp/err"; then
    echo "schema violation in stanza $n: $line" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
done < "$tmp/stanzas"
[ "$n" -ge 20 ] || { echo "only $n stanzas checked" >&2; exit 1; }
printf '%s\n' '<message xmlns="jabber:client"><c xmlns="http://www.xmpp.org/extensions/xep-0200.html#ns"><data>AA==</data><data>AA==</data></c></message>' > "$tmp/bad.xml"
if xmllint --noout --schema "$xsd" "$tmp/bad.xml" 2>/dev/null; then
  echo "the schema accepted a <c/> with two <data/>" >&2
  exit 1
fi
echo "$n stanzas valid"
