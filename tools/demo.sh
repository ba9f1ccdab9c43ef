#!/bin/bash
# tools/demo.sh: the main job end to end on this machine (README "Try it").
#   install the build dependencies, build, start a local demo provider (the
#   test stack: Dovecot + Postfix on 127.0.0.1), run alice's securemail-proxy,
#   send a message to bob through it with swaks (signed and encrypted with
#   S/MIME), then run bob's proxy and fetch the message through it with curl:
#   decrypted, with X-SecureMail-Trust: verified.  Certificates come from a
#   throw-away demo CA (tests/certstore/make-test-ca.sh), as an
#   organisation's CA would issue them.
# Needs root (apt-get, and Dovecot/Postfix run as root here).  Leaves nothing
# running unless --keep is given.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
BUILD=${SM_BUILD_DIR:-$ROOT/build}
DEMO=${SM_DEMO_DIR:-/tmp/securemail-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing build dependencies (Debian packages)"
bash "$ROOT/tools/install-deps.sh"

say "Building with meson"
if [ ! -d "$BUILD" ]; then meson setup "$BUILD" -Dwerror=true >/dev/null; fi
ninja -C "$BUILD" >/dev/null
echo "built $BUILD/proxy/securemail-proxy and $BUILD/proxy/securemail"

say "Starting the demo provider (Dovecot IMAP + Postfix submission, users alice/bob, password 'pass')"
rm -rf "$DEMO"; mkdir -p "$DEMO"; chmod 755 "$DEMO"
bash "$ROOT/tests/stack/mailstack.sh" start "$DEMO/mail"
eval "$(bash "$ROOT/tests/stack/mailstack.sh" env "$DEMO/mail")"
if [ "$KEEP" = 0 ]; then
  trap 'bash "$ROOT/tests/stack/mailstack.sh" stop "$DEMO/mail" >/dev/null 2>&1 || true' EXIT
fi
say "A demo certificate authority: S/MIME certificates for alice and bob (PKCS#12, password p12pass)"
sh "$ROOT/tests/certstore/make-test-ca.sh" init "$DEMO/ca"
chmod -R go+rX "$DEMO/ca"
ls "$DEMO/ca"/*.p12 "$DEMO/ca/ca.pem"
export ROOT BUILD DEMO

# One user's desktop: its own session bus, keyring and proxy.
run_user() {
  env -u DBUS_SESSION_BUS_ADDRESS SM_USER="$1" SM_STEP="$2" \
    bash "$ROOT/tests/stack/keyring-run.sh" bash -c '
  set -euo pipefail
  U=$SM_USER; P=$DEMO/$U; mkdir -p "$P"
  cat > "$P/securemail.conf" <<C
[account]
address = $U@example.test
display_name = ${U^} Example

[upstream]
imap = imaps://localhost:$SM_TEST_IMAPS_PORT
smtp = smtp://localhost:$SM_TEST_SUBMISSION_PORT
username = $U
ca_file = $SM_TEST_CA

[listen]
imap = 127.0.0.1:$([ $U = alice ] && echo 1143 || echo 2143)
smtp = 127.0.0.1:$([ $U = alice ] && echo 1025 || echo 2025)

[crypto]
protocol = smime
C
  export SECUREMAIL_CONFIG=$P/securemail.conf SECUREMAIL_POLICY=$P/no-policy.conf
  SM="$BUILD/proxy/securemail"
  echo "\$ securemail account set-password --stdin      (the provider password, into the keyring)"
  echo pass | "$SM" account set-password --stdin
  echo "\$ securemail certs trust ca.pem                  (the organisation CA)"
  "$SM" certs trust "$DEMO/ca/ca.pem"
  echo "\$ securemail keys import $U.p12                (the S/MIME key from the organisation; passphrase to the keyring)"
  echo p12pass | "$SM" keys import "$DEMO/ca/$U-legacy.p12"
  if [ "$SM_STEP" = send ]; then
    echo "\$ securemail certs import bob.pem                (the certificate of bob, so mail to him is encrypted)"
    "$SM" certs import "$DEMO/ca/bob.pem"
  fi
  LP=$("$SM" account local-password)
  echo "\$ securemail account local-password            -> $LP  (what the mail client uses)"
  "$BUILD/proxy/securemail-proxy" 2> "$P/proxy.log" &
  PROXY=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(grep "^imap = 127" "$P/securemail.conf" | cut -d: -f2)) 2>/dev/null && break; sleep 0.05; done
  IMAP_PORT=$(grep "^imap = 127" "$P/securemail.conf" | cut -d: -f2)
  SMTP_PORT=$(grep "^smtp = 127" "$P/securemail.conf" | cut -d: -f2)
  echo "\$ securemail status"; "$SM" status
  # The proxy starts locked (issue 7; no policy allows auto-unlock here).
  # Not a terminal: the key passphrases come from the login keyring.
  echo "\$ securemail unlock"; "$SM" unlock < /dev/null
  if [ "$SM_STEP" = send ]; then
    echo; echo "\$ securemail client-config thunderbird"; "$SM" client-config thunderbird
    echo; echo "\$ swaks (a real SMTP client) -> alice proxy :$SMTP_PORT, STARTTLS, AUTH PLAIN, to bob"
    swaks --server 127.0.0.1:$SMTP_PORT -tls --tls-verify --tls-ca-path "$XDG_DATA_HOME/securemail/local-tls.pem" --auth PLAIN \
      --auth-user $U@example.test --auth-password "$LP" --from $U@example.test --to bob@example.test \
      --header "Subject: Hello Bob, via SecureMail" --body "Sent by the SecureMail demo at $(date -u)." \
      2>&1 | grep -E "^(<~|~>) *(250|354|235|220)" || true
    echo; echo "\$ swaks with a forged From: (mallory@example.test) is refused:"
    swaks --server 127.0.0.1:$SMTP_PORT -tls --auth PLAIN --auth-user $U@example.test --auth-password "$LP" \
      --from $U@example.test --to bob@example.test --header "From: mallory@example.test" 2>&1 | grep -E "^<~?\* *5" || true
  else
    for _ in $(seq 50); do
      N=$(curl -sS "imap://127.0.0.1:$IMAP_PORT/INBOX" -u "$U@example.test:$LP" -X "STATUS INBOX (MESSAGES)" | grep -o "MESSAGES [0-9]*" | cut -d" " -f2)
      [ "${N:-0}" -ge 1 ] && break; sleep 0.1
    done
    echo; echo "\$ curl directly to the provider (what is stored there: ciphertext only)"
    curl -sS --cacert "$SM_TEST_CA" "imaps://localhost:$SM_TEST_IMAPS_PORT/INBOX;UID=1" -u "$U:pass" | tr -d "\r" \
      | grep -E "^(From|To|Subject|Content-Type)|SecureMail demo" | head -6
    echo; echo "\$ curl (a real IMAP client) -> bob proxy :$IMAP_PORT, fetch message 1"
    curl -sS "imap://127.0.0.1:$IMAP_PORT/INBOX;UID=1" -u "$U@example.test:$LP" | tr -d "\r" \
      | grep -E "^(From|To|Subject|Content-Type|X-SecureMail-[A-Za-z]*):|SecureMail demo" | head -12
    echo; echo "\$ securemail doctor"; "$SM" doctor || true
  fi
  kill $PROXY; wait $PROXY || true
'
}

say "Alice's desktop: proxy on 127.0.0.1:1143/1025, sends to bob"
run_user alice send
say "Bob's desktop: proxy on 127.0.0.1:2143/2025, fetches the message"
run_user bob fetch

say "Done"
cat <<'T'
What you saw: an unchanged IMAP/SMTP client (curl, swaks) talked only to the
local proxy with the local password; the proxy bound the sender to the
account (the forged From: was refused with 550 5.7.1), signed the message
with alice's certificate and encrypted it to bob and alice (S/MIME), queued
it durably and delivered it over verified TLS with the password from the
keyring.  The provider stores only ciphertext; bob's proxy decrypted and
verified it on FETCH, and curl saw the plain message with
X-SecureMail-Trust: verified and the signer.
T
