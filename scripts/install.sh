#!/usr/bin/env bash
# Builds and installs mod_twofactor where Debian's Apache expects it:
#   /usr/lib/apache2/modules/mod_twofactor.so
#   /etc/apache2/mods-available/twofactor.load, twofactor.conf
#   /usr/local/sbin/twofactorctl
#   /usr/share/doc/mod-twofactor/ (LDAP schema, README)
# Then: a2enmod twofactor && apachectl -t
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p mod_twofactor

moddir=$(apxs -q LIBEXECDIR)
install -D -m 0644 target/release/libmod_twofactor.so "$moddir/mod_twofactor.so"
install -D -m 0644 apache-conf/twofactor.load /etc/apache2/mods-available/twofactor.load
if [ -e /etc/apache2/mods-available/twofactor.conf ]; then
  install -D -m 0644 apache-conf/twofactor.conf /etc/apache2/mods-available/twofactor.conf.dist
  echo "kept /etc/apache2/mods-available/twofactor.conf; the new example is twofactor.conf.dist"
else
  install -D -m 0644 apache-conf/twofactor.conf /etc/apache2/mods-available/twofactor.conf
fi
install -D -m 0755 target/release/twofactorctl /usr/local/sbin/twofactorctl
install -d /usr/share/doc/mod-twofactor
install -m 0644 apache-conf/twofactor.schema apache-conf/twofactor.ldif README.md /usr/share/doc/mod-twofactor/
echo "installed; now: a2enmod twofactor && apachectl -t"
