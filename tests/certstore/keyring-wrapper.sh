#!/bin/sh
# keyring-wrapper.sh PROGRAM [ARGS...]
#
# Runs PROGRAM in its own D-Bus session with an unlocked gnome-keyring and a
# private HOME/XDG dirs (reference/test-stack.md §4), so libsecret works
# headless and nothing touches the real user's keyring or ~/.gnupg.
# Everything started here dies with dbus-run-session; gpg-agents are stopped
# by the tests themselves (gpgconf --kill all per home).
set -u

if [ -z "${SM_KEYRING_WRAPPED:-}" ]; then
  SM_KEYRING_WRAPPED=1
  export SM_KEYRING_WRAPPED
  unset DBUS_SESSION_BUS_ADDRESS
  exec dbus-run-session -- "$0" "$@"
fi

HOME=$(mktemp -d /tmp/sm-home.XXXXXX) || exit 1
export HOME
XDG_DATA_HOME=$HOME/.local/share
XDG_CONFIG_HOME=$HOME/.config
XDG_CACHE_HOME=$HOME/.cache
export XDG_DATA_HOME XDG_CONFIG_HOME XDG_CACHE_HOME
# The tests never read the machine's policy.
SECUREMAIL_POLICY=$HOME/no-policy.conf
export SECUREMAIL_POLICY
# Temporary GnuPG homes go under HOME too, so the sweep below finds them.
TMPDIR=$HOME/tmp
export TMPDIR
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$TMPDIR"

if ! echo -n testpw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; then
  echo "keyring-wrapper: gnome-keyring-daemon could not start" >&2
  rm -rf "$HOME"
  exit 1
fi

"$@"
rc=$?
# The tests stop their agents in teardown; a test that aborts cannot, so
# stop every agent of every GnuPG home left under HOME (gpgconf per home).
# Bounded: gpg-agent 2.2.40 was seen to wedge under load (it accepts the
# connection and never answers), and an unbounded gpgconf then hung the
# test past its timeout after every subtest had passed; such an agent is
# killed.
find "$HOME" -name gpg-agent.conf 2>/dev/null | while read -r conf; do
  home=$(dirname "$conf")
  if ! GNUPGHOME=$home timeout 10 gpgconf --kill all >/dev/null 2>&1; then
    echo "keyring-wrapper: gpg-agent of $home did not stop; killing it" >&2
    pkill -KILL -f -- "gpg-agent --homedir $home" 2>/dev/null
  fi
done
rm -rf "$HOME"
exit $rc
