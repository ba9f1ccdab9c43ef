#!/bin/bash
# bench/run.sh [BUILD_DIR]: the proxy benchmarks (issue 2), printing ratios
# against a baseline measured in the same run.  Needs root (the mail stack);
# starts and stops its own stack, keyring and proxy.
#   fetch:    2,000 x 50 KB UID FETCH, direct to Dovecot vs through the proxy
#   sessions: RSS per idle session with 200 concurrent sessions
#   smtp:     submissions per second, direct to Postfix vs through the proxy
#             (which signs and spools with fsync before its 250)
#   secure:   500 x 20 KB S/MIME and PGP/MIME messages: first fetch through the
#             proxy vs a gpgsm/gpg --decrypt shell loop, cached second fetch vs
#             plain messages through the proxy, and SEARCH BODY over the
#             cached views vs Dovecot searching plain ones (issue 4)
# BENCH_ONLY=fetch|sessions|smtp|secure runs only that one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
[ -x "$BUILD/proxy/securemail-proxy" ] || { echo "bench: build first (meson setup $BUILD && ninja -C $BUILD)" >&2; exit 1; }
T=$(mktemp -d /tmp/sm-bench.XXXXXX); chmod 755 "$T"
cleanup() { bash "$ROOT/tests/stack/mailstack.sh" stop "$T/mail" >/dev/null 2>&1 || true; rm -rf "$T"; }
trap cleanup EXIT
# Ports apart from the test stack's defaults, so a running test stack is not disturbed.
export SM_STACK_IMAP_PORT=20143 SM_STACK_IMAPS_PORT=20993 SM_STACK_LMTP_PORT=20024 SM_STACK_SMTP_PORT=20025 SM_STACK_SUBMISSION_PORT=20587
bash "$ROOT/tests/stack/mailstack.sh" start "$T/mail" >/dev/null
eval "$(bash "$ROOT/tests/stack/mailstack.sh" env "$T/mail")"
export BUILD ROOT T
env -u DBUS_SESSION_BUS_ADDRESS dbus-run-session -- bash "$ROOT/tests/stack/keyring-run.sh" bash -c '
  set -euo pipefail
  cat > "$T/bench.conf" <<C
[account]
address = carol@example.test
[upstream]
imap = imaps://localhost:$SM_TEST_IMAPS_PORT
smtp = smtp://localhost:$SM_TEST_SUBMISSION_PORT
username = carol
ca_file = $SM_TEST_CA
[crypto]
protocol = openpgp
[listen]
imap = 127.0.0.1:21143
smtp = 127.0.0.1:21025
C
  # The proxies would start locked (issue 7); the policy of the benchmark machine
  # lets them unlock from the keyring, as an administrator may allow.
  printf "[security]\nauto_unlock = login-keyring\n" > "$T/policy.conf"
  export SECUREMAIL_CONFIG=$T/bench.conf SECUREMAIL_POLICY=$T/policy.conf
  echo pass | "$BUILD/proxy/securemail" account set-password --stdin >/dev/null
  LP=$("$BUILD/proxy/securemail" account local-password)
  # The SMTP benchmark signs every message: carol needs a key of her own.
  "$BUILD/proxy/securemail" keys generate --protocol openpgp >/dev/null
  "$BUILD/proxy/securemail-proxy" 2>"$T/proxy.log" &
  PP=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/21143) 2>/dev/null && break; sleep 0.05; done
  COMMON="--proxy-port 21143 --proxy-pid $PP --imaps-port $SM_TEST_IMAPS_PORT --imap-port $SM_TEST_IMAP_PORT --ca $SM_TEST_CA --local-password $LP"
  want() { [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = "$1" ]; }
  if want fetch; then /usr/bin/python3 "$ROOT/bench/imap_bench.py" fetch $COMMON ${BENCH_FETCH_ARGS:-}; fi
  if want sessions; then /usr/bin/python3 "$ROOT/bench/imap_bench.py" sessions $COMMON ${BENCH_SESSION_ARGS:-}; fi
  if want smtp; then
    /usr/bin/python3 "$ROOT/bench/smtp_bench.py" --proxy-port 21025 --submission-port $SM_TEST_SUBMISSION_PORT \
      --ca "$SM_TEST_CA" --local-password "$LP" ${BENCH_SMTP_ARGS:-}
  fi
  kill $PP; wait $PP || true

  want secure || exit 0
  # ---- issue 4: protected messages, as bob (S/MIME from a demo CA, and OpenPGP)
  export XDG_DATA_HOME=$T/bob-data
  cat > "$T/bob.conf" <<C
[account]
address = bob@example.test
[upstream]
imap = imaps://localhost:$SM_TEST_IMAPS_PORT
smtp = smtp://localhost:$SM_TEST_SUBMISSION_PORT
username = bob
ca_file = $SM_TEST_CA
[crypto]
protocol = smime
subject_tags = off
[listen]
imap = 127.0.0.1:21144
smtp = 127.0.0.1:21026
C
  export SECUREMAIL_CONFIG=$T/bob.conf
  SM="$BUILD/proxy/securemail"
  echo pass | "$SM" account set-password --stdin >/dev/null
  LPB=$("$SM" account local-password)
  sh "$ROOT/tests/certstore/make-test-ca.sh" init "$T/ca"
  "$SM" certs trust "$T/ca/ca.pem" >/dev/null
  echo p12pass | "$SM" keys import "$T/ca/bob-legacy.p12" >/dev/null
  "$SM" keys generate --protocol openpgp >/dev/null
  STORE=$XDG_DATA_HOME/securemail/gnupg
  mkdir -m 700 "$T/alice-gpg"
  GNUPGHOME=$T/alice-gpg gpg --batch -q --passphrase "" --quick-gen-key alice@example.test default default never 2>/dev/null
  GNUPGHOME=$STORE gpg --batch -q --export --armor bob@example.test | GNUPGHOME=$T/alice-gpg gpg --batch -q --import 2>/dev/null
  GNUPGHOME=$T/alice-gpg gpg --batch -q --export --armor alice@example.test > "$T/alice.asc"
  "$SM" certs import "$T/alice.asc" >/dev/null
  "$BUILD/proxy/securemail-proxy" 2>"$T/proxy-bob.log" &
  PB=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/21144) 2>/dev/null && break; sleep 0.05; done
  /usr/bin/python3 "$ROOT/bench/secure_bench.py" --proxy-port 21144 --imap-port $SM_TEST_IMAP_PORT \
    --local-password "$LPB" --ca "$T/ca" --alice-home "$T/alice-gpg" --store "$STORE" ${BENCH_SECURE_ARGS:-}
  kill $PB; wait $PB || true
  GNUPGHOME=$STORE gpgconf --kill all; GNUPGHOME=$T/alice-gpg gpgconf --kill all
'
