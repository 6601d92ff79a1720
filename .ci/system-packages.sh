#!/usr/bin/env bash
# The system packages Deckhand needs, installed the same way by CI (.ci/run) and the container image (Dockerfile):
# bubblewrap (isolated local sandboxes), passt (pasta: the sandboxes' network), git; chromium only for browser tests
# (set DECKHAND_BROWSER_TESTS= to leave it out).
set -euo pipefail
need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v pasta >/dev/null 2>&1 || need_apt+=(passt)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v update-ca-certificates >/dev/null 2>&1 || need_apt+=(ca-certificates)
if [ -n "${DECKHAND_BROWSER_TESTS:-1}" ] && ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  rm -rf /var/lib/apt/lists/*
fi
# pasta opens /dev/net/tun as the sandboxes' unprivileged uid. Its usual mode is 0666 (udev, Docker's --device);
# some machines create it 0600, root only, and every sandbox network then fails. Put the usual mode back.
if [ -c /dev/net/tun ] && [ "$(id -u)" = 0 ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  echo "making /dev/net/tun usable by unprivileged users (mode 0666, its usual mode)"
  chmod 0666 /dev/net/tun
fi
