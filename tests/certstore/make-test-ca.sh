#!/bin/sh
# make-test-ca.sh: a throw-away S/MIME PKI for the certstore tests.
#
#   make-test-ca.sh init DIR           CA, users, an expired and a revoked certificate,
#                                      a CRL, PKCS#12 files (legacy 3DES and OpenSSL 3 default)
#   make-test-ca.sh sign DIR CSR OUT ADDRESS   issue a certificate for a PKCS#10 request
#
# Users (all with emailAddress in the subject and in subjectAltName):
#   alice@example.test, bob@example.test       valid for a year
#   carol@example.test                         expired in 2021
#   dave@example.test                          valid, but revoked on ca.crl
# PKCS#12 passwords are "p12pass".
set -eu

cmd=$1
dir=$2
umask 077

cnf() {
  cat > "$dir/ca.cnf" <<CNF
[ ca ]
default_ca = testca
[ testca ]
dir = $dir
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
x509_extensions = usr_cert
[ policy_any ]
organizationName = optional
commonName = supplied
emailAddress = optional
[ usr_cert ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:copy
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
}

# user NAME ADDRESS [STARTDATE ENDDATE]
user() {
  openssl req -newkey rsa:2048 -nodes -keyout "$dir/$1.key" -out "$dir/$1.csr" \
    -subj "/O=SecureMail Test/CN=$1/emailAddress=$2" 2>/dev/null
  if [ $# -ge 4 ]; then
    openssl ca -batch -config "$dir/ca.cnf" -in "$dir/$1.csr" -out "$dir/$1.pem" \
      -startdate "$3" -enddate "$4" -notext 2>/dev/null
  else
    openssl ca -batch -config "$dir/ca.cnf" -in "$dir/$1.csr" -out "$dir/$1.pem" -notext 2>/dev/null
  fi
}

case "$cmd" in
init)
  mkdir -p "$dir/newcerts"
  : > "$dir/index.txt"
  echo 1000 > "$dir/serial"
  echo 1000 > "$dir/crlnumber"
  cnf
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -subj "/O=SecureMail Test/CN=SecureMail Test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  # A second, unrelated CA (never trusted by the tests).
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" \
    -subj "/O=Elsewhere/CN=Other Test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  user alice alice@example.test
  user bob bob@example.test
  user carol carol@example.test 20200101000000Z 20210101000000Z
  user dave dave@example.test
  openssl ca -batch -config "$dir/ca.cnf" -revoke "$dir/dave.pem" -crl_reason keyCompromise 2>/dev/null
  openssl ca -batch -config "$dir/ca.cnf" -gencrl -out "$dir/ca.crl" 2>/dev/null
  for u in alice bob; do
    # gpgsm 2.2 reads only this legacy form ...
    openssl pkcs12 -export -in "$dir/$u.pem" -inkey "$dir/$u.key" -certfile "$dir/ca.pem" -name "$u" \
      -passout pass:p12pass -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 \
      -out "$dir/$u-legacy.p12"
    # ... and OpenSSL 3 writes PBES2/AES-256 by default.
    openssl pkcs12 -export -in "$dir/$u.pem" -inkey "$dir/$u.key" -certfile "$dir/ca.pem" -name "$u" \
      -passout pass:p12pass -out "$dir/$u-openssl3.p12"
  done
  ;;
sign)
  csr=$3
  out=$4
  address=$5
  cat > "$dir/req.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:$address
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  openssl x509 -req -in "$csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 365 -extfile "$dir/req.ext" -out "$out" 2>/dev/null
  ;;
*)
  echo "usage: $0 init DIR | sign DIR CSR OUT ADDRESS" >&2
  exit 2
  ;;
esac
