#!/bin/bash
# A throwaway real mail stack for the tests: Dovecot (IMAP, IMAPS, LMTP) and
# Postfix (SMTP, submission with STARTTLS + AUTH through Dovecot SASL), all on
# 127.0.0.1, with a private test CA.  Must run as root (Dovecot refuses mail
# access as root, so mail is stored as nobody; Postfix needs root to start).
#
# usage: mailstack.sh start DIR    create DIR (if needed) and start the stack
#        mailstack.sh stop DIR     stop it; nothing is left running
#        mailstack.sh env DIR      print `export` lines for tests (see README.md)
#        mailstack.sh status DIR   exit 0 if the stack in DIR is running
#
# Ports (override with these variables at `start`; `env`/`stop` read back the
# ones that `start` used from DIR/ports.env):
#   SM_STACK_IMAP_PORT=10143        IMAP, plain + STARTTLS
#   SM_STACK_IMAPS_PORT=10993       IMAP over implicit TLS
#   SM_STACK_LMTP_PORT=10024        Dovecot LMTP (Postfix delivers here)
#   SM_STACK_SMTP_PORT=10025        SMTP, no AUTH needed from loopback
#   SM_STACK_SUBMISSION_PORT=10587  submission, STARTTLS and AUTH required
#   SM_STACK_SUBMISSION_CERT_PORT=10588  (submission + 1) submission, STARTTLS
#                                   with a client certificate of the client CA
#                                   instead of AUTH
#   SM_STACK_OAUTH2_PORT=           opt-in (issue 7): Dovecot (and so Postfix
#                                   submission) also takes SASL OAUTHBEARER and
#                                   XOAUTH2, validating bearer tokens at
#                                   http://127.0.0.1:PORT/introspect; the tests
#                                   serve that port (the provider's OAuth server)
# Users alice, bob, carol (password "pass") in the domains localhost and
# example.test; alice@localhost and alice@example.test are the same mailbox.
#
# Based on reference/test-stack.md §2+3 (tested recipe); differences: a test CA
# signs the server certificate, a second unrelated "rogue" CA + certificate
# for untrusted-certificate tests, ports from the environment, a third user,
# recipients checked at RCPT time, and a stop that waits for every process.
set -euo pipefail

usage() { sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "mailstack: ERROR: $*" >&2; exit 1; }
[ $# -eq 2 ] || usage
cmd=$1
D=$(realpath -m "$2")

USERS=(alice bob carol)
DOMAINS=(localhost example.test)
PASSWORD=pass

load_ports() {
  # The ports the stack in $D was started with, else the environment, else defaults.
  if [ -f "$D/ports.env" ]; then
    # shellcheck disable=SC1091
    . "$D/ports.env"
  else
    IMAP_PORT=${SM_STACK_IMAP_PORT:-10143}
    IMAPS_PORT=${SM_STACK_IMAPS_PORT:-10993}
    LMTP_PORT=${SM_STACK_LMTP_PORT:-10024}
    SMTP_PORT=${SM_STACK_SMTP_PORT:-10025}
    SUBMISSION_PORT=${SM_STACK_SUBMISSION_PORT:-10587}
    OAUTH2_PORT=${SM_STACK_OAUTH2_PORT:-}
  fi
  OAUTH2_PORT=${OAUTH2_PORT:-}
  # The next port after submission unless set, so that a stack whose ports
  # were moved as a block (run-all.sh adds 1000, 2000, ...) moves this one
  # too.  A ports.env from before this port existed lacks it.
  SUBMISSION_CERT_PORT=${SUBMISSION_CERT_PORT:-${SM_STACK_SUBMISSION_CERT_PORT:-$((SUBMISSION_PORT + 1))}}
  ALL_PORTS=("$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT" "$SMTP_PORT" "$SUBMISSION_PORT" "$SUBMISSION_CERT_PORT")
}

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_port() {
  local _
  for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.1; done
  return 1
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

dovecot_pid() { cat "$D/dovecot.pid" 2>/dev/null || true; }
postfix_pid() { tr -d ' ' < "$D/postfix/spool/pid/master.pid" 2>/dev/null || true; }

is_running() { pid_alive "$(dovecot_pid)" && pid_alive "$(postfix_pid)"; }

# Every process of the stack: the two masters and their children.
stack_pids() {
  local p
  for p in $(dovecot_pid) $(postfix_pid); do
    pid_alive "$p" || continue
    echo "$p"
    ps -o pid= --ppid "$p" 2>/dev/null || true
  done
}

make_ca() { # DIR CN
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 \
    -subj "/O=SecureMail tests/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null
}

make_leaf_cert() { # CA_DIR CN OUT_CERT OUT_KEY EXTENSION_LINE...
  local ca=$1 cn=$2 cert=$3 key=$4 ext
  shift 4
  ext=$(mktemp)
  printf '%s\n' "basicConstraints = critical, CA:FALSE" "$@" \
    "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid" > "$ext"
  openssl req -newkey rsa:2048 -nodes -subj "/O=SecureMail tests/CN=$cn" \
    -keyout "$key" -out "$cert.csr" 2>/dev/null
  openssl x509 -req -in "$cert.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$cert" 2>/dev/null
  rm -f "$cert.csr" "$ext"
}

make_server_cert() { # CA_DIR OUT_CERT OUT_KEY
  make_leaf_cert "$1" localhost "$2" "$3" "keyUsage = critical, digitalSignature, keyEncipherment" \
    "extendedKeyUsage = serverAuth" "subjectAltName = DNS:localhost, IP:127.0.0.1"
}

make_certs() {
  # The trusted chain: ca/ca.pem signs tls/server.pem (CN=localhost,
  # SAN DNS:localhost, IP:127.0.0.1), which Dovecot and Postfix serve.
  # The rogue pair (rogue/ca.pem signs rogue/cert.pem, same names) is used by
  # no server here; tests use it for certificates that must NOT be trusted.
  # All are throwaway test keys, world-readable so any test can use them.
  mkdir -p "$D/ca" "$D/tls" "$D/rogue"
  if [ ! -s "$D/ca/ca.pem" ] || [ ! -s "$D/tls/server.pem" ]; then
    make_ca "$D/ca" "SecureMail Test CA"
    make_server_cert "$D/ca" "$D/tls/server.pem" "$D/tls/server.key"
  fi
  if [ ! -s "$D/rogue/ca.pem" ] || [ ! -s "$D/rogue/cert.pem" ]; then
    make_ca "$D/rogue" "Rogue Test CA"
    make_server_cert "$D/rogue" "$D/rogue/cert.pem" "$D/rogue/key.pem"
  fi
  chmod 644 "$D"/ca/* "$D"/tls/* "$D"/rogue/*
  openssl verify -CAfile "$D/ca/ca.pem" "$D/tls/server.pem" >/dev/null \
    || die "generated server certificate does not verify against $D/ca/ca.pem"
}

# ---- client certificates (issue 7, branch clientcert) ---------------------
# A separate client CA (clientca/ca.pem) signs clientca/<user>.pem (CN=<user>,
# extendedKeyUsage clientAuth) for every user; clientca/<user>-combined.pem
# holds certificate and key in one file, as [upstream] client_certificate
# takes it.  rogue/client-alice.pem is a CN=alice certificate of the rogue CA:
# a certificate the servers must refuse.  Dovecot asks every TLS client for a
# certificate but does not require one, so password logins keep working.
make_client_cert() { # CA_DIR CN OUT_CERT OUT_KEY
  make_leaf_cert "$@" "keyUsage = critical, digitalSignature" "extendedKeyUsage = clientAuth"
}
make_client_certs() {
  local u
  mkdir -p "$D/clientca"
  if [ ! -s "$D/clientca/ca.pem" ]; then
    make_ca "$D/clientca" "SecureMail Test Client CA"
    for u in "${USERS[@]}"; do
      make_client_cert "$D/clientca" "$u" "$D/clientca/$u.pem" "$D/clientca/$u.key"
      cat "$D/clientca/$u.pem" "$D/clientca/$u.key" > "$D/clientca/$u-combined.pem"
    done
  fi
  if [ ! -s "$D/rogue/client-alice.pem" ]; then
    make_client_cert "$D/rogue" alice "$D/rogue/client-alice.pem" "$D/rogue/client-alice.key"
    cat "$D/rogue/client-alice.pem" "$D/rogue/client-alice.key" > "$D/rogue/client-alice-combined.pem"
  fi
  chmod 644 "$D"/clientca/* "$D"/rogue/*
}
# ---- end client certificates ----------------------------------------------

write_dovecot_conf() {
  local u
  : > "$D/dovecot/users"
  for u in "${USERS[@]}"; do echo "$u:{PLAIN}$PASSWORD::::::" >> "$D/dovecot/users"; done
  # auth_username_format = %Ln: LMTP is given alice@localhost or
  # alice@example.test, IMAP logins give alice; all map to the user "alice".
  cat > "$D/dovecot/dovecot.conf" <<EOF
protocols = imap lmtp
listen = 127.0.0.1
base_dir = $D/dovecot/run
state_dir = $D/dovecot/run/state
instance_name = sm-test-$(basename "$D")
log_path = /dev/stderr
info_log_path = /dev/stderr
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = nobody
mail_gid = nogroup
mail_location = maildir:$D/dovecot/mail/%u/Maildir
disable_plaintext_auth = no
auth_mechanisms = plain login external
# The benchmarks hold 200+ sessions of one user from 127.0.0.1; Dovecot's
# defaults (10 per user and IP, 100 processes per service) would refuse them.
mail_max_userip_connections = 1000
default_process_limit = 1000
default_client_limit = 4000
auth_username_format = %Ln
auth_failure_delay = 0
ssl = yes
ssl_cert = <$D/tls/server.pem
ssl_key = <$D/tls/server.key
# ---- client certificates (issue 7, branch clientcert) ----
# Ask for a client certificate of the client CA (no CRL in the test CA); its
# commonName is the user for SASL EXTERNAL.  Not required: password logins
# without a certificate work as before.  The static passdb answers only for
# EXTERNAL, whose identity the verified certificate already proved.
ssl_ca = <$D/clientca/ca.pem
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_username_from_cert = yes
ssl_cert_username_field = commonName
passdb {
  driver = static
  args = nopassword=y
  mechanisms = external
}
# ---- end client certificates ----
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/dovecot/users
}
userdb {
  driver = static
  args = home=$D/dovecot/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@localhost
}
EOF
}

# ---- OAuth2 (issue 7): opt-in with SM_STACK_OAUTH2_PORT -----------------------
# Dovecot's oauth2 passdb (PasswordDatabase/oauth2, Dovecot >= 2.2.28) asks
# the provider's introspection endpoint (RFC 7662, POST token=...) about each
# bearer token; the answer must say "active": true and name the user in
# "username" (after auth_username_format: "alice").  Only the OAuth2
# mechanisms reach this passdb, and the password logins keep working.  The
# auth cache stays off (Dovecot's default), so a revoked token is refused at
# once.  Postfix submission authenticates through Dovecot, so it follows.
write_dovecot_oauth2_conf() {
  [ -n "$OAUTH2_PORT" ] || return 0
  cat > "$D/dovecot/oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = http://127.0.0.1:$OAUTH2_PORT/introspect
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 10000
EOF
  cat >> "$D/dovecot/dovecot.conf" <<EOF
# OAuth2 (mailstack.sh SM_STACK_OAUTH2_PORT); keeps the mechanisms above
# (EXTERNAL for client certificates)
auth_mechanisms = plain login external oauthbearer xoauth2
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $D/dovecot/oauth2.conf.ext
}
EOF
}
# ---- end of OAuth2 --------------------------------------------------------------

write_postfix_conf() {
  local u dom maps=""
  for dom in "${DOMAINS[@]}"; do
    for u in "${USERS[@]}"; do maps="$maps $u@$dom=ok"; done
  done
  # virtual_mailbox_maps: unknown recipients get 550 at RCPT time instead of
  # a later bounce, which is what a provider does and easier to test.
  cat > "$D/postfix/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $D/postfix/spool
data_directory = $D/postfix/data
mail_owner = postfix
setgid_group = postdrop
myhostname = localhost
mydomain = localhost
myorigin = localhost
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $D/postfix.log
maillog_file_prefixes = $D
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
virtual_mailbox_domains = ${DOMAINS[*]}
virtual_mailbox_maps = inline:{${maps# }}
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
# Never deliver outside the test domains (no DNS, no network): bounce at once.
default_transport = error:outbound mail is disabled in the test stack
relay_transport = error:outbound mail is disabled in the test stack
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $D/dovecot/run/auth-client
smtpd_tls_security_level = may
smtpd_tls_cert_file = $D/tls/server.pem
smtpd_tls_key_file = $D/tls/server.key
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated reject_unauth_destination
EOF
  # Nothing chrooted (column 5 = n): smtpd must reach Dovecot's auth socket.
  cat > "$D/postfix/etc/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
127.0.0.1:$SUBMISSION_CERT_PORT inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_ask_ccert=yes
  -o smtpd_tls_CAfile=$D/clientca/ca.pem
  -o smtpd_sasl_auth_enable=no
  -o smtpd_client_restrictions=permit_tls_all_clientcerts,reject
  -o smtpd_relay_restrictions=permit_tls_all_clientcerts,reject
EOF
  cat >> "$D/postfix/etc/master.cf" <<'EOF'
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}

do_stop() {
  local pids p _ dp had_ports=0
  [ -f "$D/ports.env" ] && had_ports=1
  load_ports
  pids=$(stack_pids | tr '\n' ' ')
  dp=$(dovecot_pid)
  if [ -f "$D/postfix/etc/main.cf" ]; then
    postfix -c "$D/postfix/etc" stop >/dev/null 2>&1 || true
  fi
  pid_alive "$dp" && kill "$dp" 2>/dev/null || true
  # Dovecot takes about 3 s after SIGTERM; wait for every process we knew of.
  for _ in $(seq 100); do
    local left=""
    for p in $pids; do pid_alive "$p" && left="$left $p"; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for p in $pids; do
    if pid_alive "$p"; then
      echo "mailstack: pid $p ($(cat "/proc/$p/comm" 2>/dev/null)) did not stop; killing it" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -f "$D/dovecot.pid"
  if [ $had_ports = 1 ]; then
    for p in "${ALL_PORTS[@]}"; do
      port_open "$p" && echo "mailstack: warning: port $p is still served after stop" >&2
    done
  fi
  return 0
}

do_start() {
  [ "$(id -u)" = 0 ] || die "must run as root (Dovecot stores mail as nobody, Postfix needs root)"
  local b
  for b in dovecot postfix openssl; do
    command -v "$b" >/dev/null || die "$b not installed (run tools/install-deps.sh)"
  done
  if [ -f "$D/ports.env" ] && is_running; then
    echo "mailstack: already running in $D"
    return 0
  fi
  # A half-started stack from an earlier run: stop whatever is left of it.
  [ -f "$D/ports.env" ] && do_stop
  rm -f "$D/ports.env"
  load_ports

  local p busy=""
  for p in "${ALL_PORTS[@]}"; do port_open "$p" && busy="$busy $p"; done
  if [ -n "$busy" ]; then
    echo "mailstack: ERROR: port(s)$busy on 127.0.0.1 already in use by another process:" >&2
    if command -v ss >/dev/null; then
      for p in $busy; do ss -Hltnp "sport = :$p" >&2 || true; done
    fi
    echo "mailstack: stop that stack, or choose other ports with SM_STACK_*_PORT" >&2
    exit 1
  fi

  mkdir -p "$D"/dovecot/{run,mail} "$D"/postfix/{etc,spool,data}
  chmod 755 "$D" "$D/dovecot"
  chown nobody:nogroup "$D/dovecot/mail"       # mail_uid below
  chown postfix:postfix "$D/postfix/data"      # else "open lock file .../master.lock: Permission denied"
  # Delivery runs as nobody: every parent of DIR must be searchable by it.
  runuser -u nobody -- test -w "$D/dovecot/mail" \
    || die "user nobody cannot write $D/dovecot/mail: make every parent of $D world-searchable (chmod o+x)"

  make_certs
  make_client_certs
  write_dovecot_conf
  write_dovecot_oauth2_conf
  write_postfix_conf

  dovecot -F -c "$D/dovecot/dovecot.conf" > "$D/dovecot.log" 2>&1 &
  echo $! > "$D/dovecot.pid"
  {
    echo "IMAP_PORT=$IMAP_PORT"; echo "IMAPS_PORT=$IMAPS_PORT"; echo "LMTP_PORT=$LMTP_PORT"
    echo "SMTP_PORT=$SMTP_PORT"; echo "SUBMISSION_PORT=$SUBMISSION_PORT"
    echo "OAUTH2_PORT=$OAUTH2_PORT"
    echo "SUBMISSION_CERT_PORT=$SUBMISSION_CERT_PORT"
  } > "$D/ports.env"
  for p in "$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT"; do
    if ! wait_port "$p"; then
      echo "mailstack: ERROR: Dovecot did not listen on port $p; $D/dovecot.log says:" >&2
      tail -n 20 "$D/dovecot.log" >&2
      do_stop; exit 1
    fi
  done
  if ! postfix -c "$D/postfix/etc" start > "$D/postfix-start.log" 2>&1; then
    echo "mailstack: ERROR: postfix start failed:" >&2
    cat "$D/postfix-start.log" >&2; tail -n 20 "$D/postfix.log" >&2 2>/dev/null || true
    do_stop; exit 1
  fi
  for p in "$SMTP_PORT" "$SUBMISSION_PORT" "$SUBMISSION_CERT_PORT"; do
    if ! wait_port "$p"; then
      echo "mailstack: ERROR: Postfix did not listen on port $p; $D/postfix.log says:" >&2
      tail -n 20 "$D/postfix.log" >&2 2>/dev/null || true
      do_stop; exit 1
    fi
  done
  echo "mailstack: up in $D (imap $IMAP_PORT, imaps $IMAPS_PORT, lmtp $LMTP_PORT, smtp $SMTP_PORT, submission $SUBMISSION_PORT, submission with client certificate $SUBMISSION_CERT_PORT)"
}

do_env() {
  load_ports
  q() { printf 'export %s=%q\n' "$1" "$2"; }
  q SM_TEST_STACK "$D"
  q SM_TEST_HOST 127.0.0.1
  q SM_TEST_IMAP_PORT "$IMAP_PORT"
  q SM_TEST_IMAPS_PORT "$IMAPS_PORT"
  q SM_TEST_LMTP_PORT "$LMTP_PORT"
  q SM_TEST_SMTP_PORT "$SMTP_PORT"
  q SM_TEST_SUBMISSION_PORT "$SUBMISSION_PORT"
  q SM_TEST_CA "$D/ca/ca.pem"
  q SM_TEST_CA_KEY "$D/ca/ca.key"
  q SM_TEST_SERVER_CERT "$D/tls/server.pem"
  q SM_TEST_SERVER_KEY "$D/tls/server.key"
  q SM_TEST_ROGUE_CA "$D/rogue/ca.pem"
  q SM_TEST_ROGUE_CERT "$D/rogue/cert.pem"
  q SM_TEST_ROGUE_KEY "$D/rogue/key.pem"
  q SM_TEST_SUBMISSION_CERT_PORT "$SUBMISSION_CERT_PORT"
  q SM_TEST_CLIENT_CA "$D/clientca/ca.pem"
  q SM_TEST_CLIENT_CERT_DIR "$D/clientca"
  q SM_TEST_ROGUE_CLIENT_CERT "$D/rogue/client-alice-combined.pem"
  q SM_TEST_USERS "${USERS[*]}"
  q SM_TEST_DOMAINS "${DOMAINS[*]}"
  q SM_TEST_PASSWORD "$PASSWORD"
  q SM_TEST_MAILDIR "$D/dovecot/mail"
  # Set only when the stack was started with SM_STACK_OAUTH2_PORT.
  [ -z "$OAUTH2_PORT" ] || q SM_TEST_OAUTH2_PORT "$OAUTH2_PORT"
}

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  env) do_env ;;
  status) load_ports; is_running ;;
  *) usage ;;
esac
