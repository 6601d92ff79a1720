#!/bin/sh
# Container entrypoint: `deckhand <command>`, `serve` when none is given; options alone go to serve
# (`--role worker` → `deckhand serve --role worker`). `serve` applies migrations itself (serialised across replicas).
set -eu
DECKHAND_HOME="${DECKHAND_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
if [ "$#" -eq 0 ]; then
  set -- serve
else
  case "$1" in --version | -v | --help | -h) ;; -*) set -- serve "$@" ;; esac
fi
exec node "$DECKHAND_HOME/bin/deckhand.mjs" "$@"
