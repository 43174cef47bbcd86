#!/usr/bin/env bash
# Write or read the input encoding of the fuzz targets (tests/fuzz/README.md): a frame is a
# 2-byte big-endian length and its bytes; the length 0xFFFF separates messages.
#   tests/fuzz/pack.sh FRAME... [-- FRAME...]... > FILE   one argument per frame, "--"
#                                                        between messages
#   tests/fuzz/pack.sh -d FILE                            print FILE's messages and frames
set -euo pipefail
export LC_ALL=C

if [ "${1:-}" = "-d" ]; then
    [ $# -eq 2 ] || { echo "usage: $0 -d FILE" >&2; exit 2; }
    read -r -a b <<<"$(od -An -v -tu1 "$2" | tr -s ' \n' '  ')"
    n=${#b[@]} i=0 msg=0 fr=0
    echo "message 0"
    while [ $((i + 2)) -le "$n" ]; do
        len=$((b[i] * 256 + b[i + 1]))
        i=$((i + 2))
        if [ "$len" -eq 65535 ]; then
            msg=$((msg + 1)) fr=0
            echo "message $msg"
            continue
        fi
        [ $((i + len)) -gt "$n" ] && len=$((n - i))
        out=""
        for ((k = i; k < i + len; k++)); do
            c=${b[k]}
            if [ "$c" -ge 32 ] && [ "$c" -lt 127 ] && [ "$c" -ne 92 ]; then
                out+=$(printf '%b' "\\x$(printf %02x "$c")")
            else
                out+=$(printf '\\x%02x' "$c")
            fi
        done
        printf '  frame %d (%d bytes): %s\n' "$fr" "$len" "$out"
        fr=$((fr + 1))
        i=$((i + len))
    done
    exit 0
fi

for a in "$@"; do
    if [ "$a" = "--" ]; then
        printf '\xff\xff'
        continue
    fi
    len=${#a}
    if [ "$len" -ge 65535 ]; then
        echo "$0: a frame of $len bytes: the encoding allows 65534" >&2
        exit 1
    fi
    printf '%b' "\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))"
    printf '%s' "$a"
done
