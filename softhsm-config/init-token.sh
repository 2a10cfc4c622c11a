#!/usr/bin/env bash
# Create a SoftHSM token in its own directory, never under $HOME.
# usage: init-token.sh STATE_DIR LABEL SO_PIN USER_PIN
# Writes STATE_DIR/softhsm2.conf and prints "export SOFTHSM2_CONF=..." on stdout.
set -euo pipefail
if [ $# -ne 4 ]; then
  echo "usage: $0 STATE_DIR LABEL SO_PIN USER_PIN" >&2
  exit 2
fi
state=$(mkdir -p "$1" && cd "$1" && pwd)
label=$2 so_pin=$3 pin=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state/tokens"
chmod 0700 "$state/tokens"
conf="$state/softhsm2.conf"
if [ ! -f "$conf" ]; then
  sed "s#@TOKENDIR@#$state/tokens#" "$here/softhsm2.conf.in" > "$conf"
fi
SOFTHSM2_CONF="$conf" softhsm2-util --init-token --free --label "$label" \
  --so-pin "$so_pin" --pin "$pin" >/dev/null
echo "export SOFTHSM2_CONF=$conf"
