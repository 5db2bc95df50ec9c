#!/usr/bin/env bash
# Installs what building and testing mod_twofactor needs on Debian 12:
# Apache and its headers, OpenLDAP, Samba's AD domain controller, the SMTP
# sink, Chromium for the page tests, clang for bindgen, and a Rust
# toolchain if none is on the PATH.
# Safe to run again: it only installs what is missing.
set -euo pipefail

packages=(
  apache2 apache2-dev apache2-utils libapr1-dev libaprutil1-dev
  libclang-dev clang pkg-config
  libssl-dev         # OpenSSL 3 (the system one, as mod_ssl loads it) for the WebAuthn checks
  slapd ldap-utils
  samba samba-ad-dc samba-ad-provision samba-dsdb-modules   # Active Directory for the tests (Samba's AD DC)
  iproute2           # network namespaces: each test's domain controller has a loopback of its own
  postfix            # for /usr/sbin/smtp-sink, a real SMTP server for tests
  chromium chromium-driver
  python3-aiosmtpd   # a TLS-capable SMTP server for the STARTTLS and SMTPS tests
  python3-prometheus-client   # a real parser for the metrics test
  oathtool wrk curl ca-certificates
  valgrind           # the benchmark's instruction counts
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix would ask what kind of mail system this is; only its smtp-sink is used.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Packages may start their services; the tests run their own instances.
  for svc in apache2 slapd postfix samba-ad-dc smbd nmbd winbind; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
