#!/bin/bash
# usage: keyring-run.sh CMD [ARGS...]
#
# Runs CMD with an unlocked, empty gnome-keyring (login keyring password
# "testpw") on a private D-Bus session bus, in a private HOME, then cleans up
# and exits with CMD's exit status.  Meant as the exe_wrapper/wrapper of
# integration tests (run-all.sh runs meson test inside dbus-run-session too).
#
# Each call starts its own session bus with dbus-run-session, even when one is
# already there: the keyring owns the bus name org.freedesktop.secrets, so
# tests that ran in parallel on one bus would share (and tear down) each
# other's keyring.
#
# Environment given to CMD:
#   HOME             a fresh private directory (unless SM_KEEP_HOME is set:
#                    then HOME is kept and nothing in it is removed)
#   XDG_DATA_HOME    $HOME/.local/share  (keyrings/login.keyring lives here)
#   XDG_CONFIG_HOME  $HOME/.config
#   XDG_CACHE_HOME   $HOME/.cache
#   XDG_RUNTIME_DIR  a private mode-0700 directory
#   DBUS_SESSION_BUS_ADDRESS  the private bus
# Everything the wrapper itself says goes to stderr (stdout may be TAP).
# Afterwards every process CMD left behind (gpg-agent of $HOME/.gnupg, the
# keyring daemon, ...) is stopped; they are recognised by a marker variable,
# SM_KEYRING_RUN_ID, in their environment.
set -uo pipefail

if [ "${1:-}" = --inner ]; then
  # Inside our dbus-run-session.
  shift
  if ! printf '%s' testpw | gnome-keyring-daemon --unlock --components=secrets \
         >"$SM_KEYRING_RUN_ID/keyring.log" 2>&1; then
    echo "keyring-run: ERROR: gnome-keyring-daemon --unlock failed:" >&2
    cat "$SM_KEYRING_RUN_ID/keyring.log" >&2
    exit 1
  fi
  "$@"
  exit $?
fi

if [ $# -lt 1 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
for b in dbus-run-session gnome-keyring-daemon; do
  command -v "$b" >/dev/null || { echo "keyring-run: ERROR: $b not installed (run tools/install-deps.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sm-keyring.XXXXXX") || exit 1
export SM_KEYRING_RUN_ID=$tmp
if [ -z "${SM_KEEP_HOME:-}" ]; then
  export HOME=$tmp/home
fi
export XDG_DATA_HOME=$HOME/.local/share
export XDG_CONFIG_HOME=$HOME/.config
export XDG_CACHE_HOME=$HOME/.cache
export XDG_RUNTIME_DIR=$tmp/run
mkdir -p -m 700 "$HOME" "$XDG_RUNTIME_DIR"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"

# Processes (other than ourselves) whose environment carries our marker.
marked_pids() {
  ( unset SM_KEYRING_RUN_ID   # so that grep and awk do not match themselves
    grep -lzxF "SM_KEYRING_RUN_ID=$tmp" /proc/[0-9]*/environ 2>/dev/null \
      | awk -F/ -v self=$$ '$3 != self { print $3 }' )
}

cleaned=0
cleanup() {
  [ $cleaned = 1 ] && return
  cleaned=1
  if [ -z "${SM_KEEP_HOME:-}" ] && [ -d "$HOME/.gnupg" ]; then
    # Bounded: a wedged gpg-agent (seen with 2.2.40 under load) never
    # answers; the marked-process sweep below kills it then.
    GNUPGHOME=$HOME/.gnupg timeout 10 gpgconf --kill all >/dev/null 2>&1 || true
  fi
  local pids p _
  pids=$(marked_pids)
  if [ -n "$pids" ]; then
    kill $pids 2>/dev/null
    for _ in $(seq 30); do
      pids=$(for p in $pids; do
               kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && echo "$p"
             done)
      [ -z "$pids" ] && break
      sleep 0.1
    done
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP

dbus-run-session -- bash "$0" --inner "$@"
rc=$?
cleanup
exit $rc
