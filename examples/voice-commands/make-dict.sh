#!/bin/sh
# make-dict.sh GRAMMAR CMUDICT: the pronunciations of every word of a JSGF grammar.
set -eu
words=$(sed -e 's|//.*||' -e 's/<[^>]*>//g' -e '/^#/d' -e '/^grammar/d' -e 's/public//g' "$1" |
        tr -c 'a-z\n' ' ' | tr ' ' '\n' | grep -v '^$' | sort -u)
for w in $words; do
    grep -E "^$w(\([0-9]+\))? " "$2" || { echo "make-dict.sh: '$w' is not in $2" >&2; exit 1; }
done
