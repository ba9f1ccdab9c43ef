#!/bin/bash
# Install every Debian package SecureMail Desktop needs to build and test.
#
# Idempotent. When every package is already installed (one dpkg-query call)
# it returns at once, so local re-runs cost nothing; under CI (CI=true) or
# with SM_DEPS_FORCE=1 it always runs `apt-get update` + `apt-get install`,
# which is what a fresh machine needs anyway.
#
# Output is quiet; on failure the tail of the apt log is printed.
set -euo pipefail

PKGS=(
  # build
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev llvm
  libglib2.0-dev glib-networking libgtk-3-dev libsecret-1-dev libgpgme-dev
  libetpan-dev libgnutls28-dev libsqlite3-dev libayatana-appindicator3-dev gettext
  libsoup-3.0-dev libjson-glib-dev
  # headless GUI, session bus, keyring
  xvfb xauth gnome-keyring dbus dbus-x11 libglib2.0-bin
  # crypto
  gnupg gpgsm gpg-agent openssl ca-certificates
  # real mail stack (tests/stack/mailstack.sh) and its probes
  curl dovecot-imapd dovecot-lmtpd postfix libsasl2-modules ssl-cert
  libsecret-tools imagemagick x11-apps x11-utils xdotool
  swaks libnet-ssleay-perl libauthen-sasl-perl python3 python3-aiosmtpd
  # client certificates on a PKCS#11 token (issue 7): softhsm2 and p11tool
  softhsm2 gnutls-bin
  # tray
  trayer haskell-status-notifier-item-utils
  # benchmarks
  hyperfine
  # where a hung test process was stuck (tests/integration/sm-test-harness.c)
  gdb
)

die() { echo "install-deps: ERROR: $*" >&2; exit 1; }

missing_pkgs() {
  # Prints the packages of PKGS that are not fully installed ("ii").
  local installed
  installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PKGS[@]}" 2>/dev/null \
              | awk '$1 == "ii" { print $2 }' || true)
  local p
  for p in "${PKGS[@]}"; do
    grep -qxF -- "$p" <<<"$installed" || echo "$p"
  done
}

missing=$(missing_pkgs | tr '\n' ' ')
force=0
[ "${CI:-}" = true ] && force=1
[ "${SM_DEPS_FORCE:-0}" = 1 ] && force=1

if [ -z "$missing" ] && [ $force = 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "packages missing (${missing}); run as root: sudo bash $0"

log=$(mktemp /tmp/sm-install-deps.XXXXXX.log)
policy_tmp=""
cleanup() {
  [ -n "$policy_tmp" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}
trap cleanup EXIT

fail() {
  echo "install-deps: ERROR: $1 failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

start=$SECONDS
[ -n "$missing" ] && echo "install-deps: installing: $missing" || echo "install-deps: refreshing all ${#PKGS[@]} packages"

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg instead of failing at once.
APT=(apt-get -q -o DPkg::Lock::Timeout=600)

if ! "${APT[@]}" update >>"$log" 2>&1; then
  # With nothing missing an unreachable mirror is not fatal: the packages are there.
  [ -z "$missing" ] || fail "apt-get update"
  echo "install-deps: warning: apt-get update failed, but nothing is missing; continuing" >&2
  exit 0
fi

# Postfix asks questions unless preseeded; "No configuration" leaves no
# /etc/postfix/main.cf, which is fine: the test stack always passes -c DIR.
debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select No configuration
postfix postfix/mailname string localhost
EOF

# Never start the distribution's dovecot/postfix while installing: the tests run
# their own instances on other ports. Some images already have such a policy.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  policy_tmp=1
fi

"${APT[@]}" install -y --no-install-recommends "${PKGS[@]}" >>"$log" 2>&1 || fail "apt-get install"

still=$(missing_pkgs | tr '\n' ' ')
[ -z "$still" ] || fail "install (still missing: $still)"

rm -f "$log"
echo "install-deps: done in $((SECONDS - start)) s"
