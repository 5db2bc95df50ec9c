#!/usr/bin/env bash
# Builds the Debian package of mod_twofactor from the release build:
#
#   packaging/build-deb.sh [TARGET_DIR]
#
# TARGET_DIR is Cargo's target directory (default: $CARGO_TARGET_DIR, else
# target/ in the workspace). The package is written to TARGET_DIR/debian/
# as mod-twofactor_<version>_<arch>.deb and its path is printed last.
#
# Contents:
#   /usr/lib/apache2/modules/mod_twofactor.so
#   /etc/apache2/mods-available/twofactor.load, twofactor.conf (conffiles)
#   /usr/sbin/twofactorctl
#   /usr/share/doc/mod-twofactor/ (README, LDAP schema, copyright, changelog)
# Installing it enables nothing: "a2enmod twofactor" does, after the
# configuration is filled in.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-${CARGO_TARGET_DIR:-$root/target}}
mkdir -p "$target"
target=$(cd "$target" && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release -p mod_twofactor --target-dir "$target"

package=mod-twofactor
maintainer="mod_twofactor maintainers <maintainers@invalid>"
# [workspace.package] version; a Cargo pre-release (1.2.0-rc.1) sorts
# before its release in Debian only when written 1.2.0~rc.1.
version=$(awk '
  /^\[/ { section = $0; next }
  section == "[workspace.package]" && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }
' Cargo.toml)
[ -n "$version" ] || { echo "build-deb: no version in [workspace.package] of Cargo.toml" >&2; exit 1; }
version=${version/-/\~}
arch=$(dpkg --print-architecture)
# The module ABI this build was compiled against (Debian's apache2-bin
# provides apache2-api-<MMN>).
mmn=$(apxs -q HTTPD_MMN 2>/dev/null || true)
mmn=${mmn:-20120211}

release="$target/release"
for f in libmod_twofactor.so twofactorctl; do
  [ -f "$release/$f" ] || { echo "build-deb: $release/$f is missing" >&2; exit 1; }
done

out="$target/debian"
staging="$out/staging"
doc="$staging/usr/share/doc/$package"
rm -rf "$staging"
umask 022
install -d "$staging/DEBIAN" "$staging/usr/lib/apache2/modules" "$staging/etc/apache2/mods-available" \
  "$staging/usr/sbin" "$doc"

install -m 0644 "$release/libmod_twofactor.so" "$staging/usr/lib/apache2/modules/mod_twofactor.so"
install -m 0755 "$release/twofactorctl" "$staging/usr/sbin/twofactorctl"
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$staging/usr/lib/apache2/modules/mod_twofactor.so" "$staging/usr/sbin/twofactorctl"
fi
install -m 0644 apache-conf/twofactor.load apache-conf/twofactor.conf "$staging/etc/apache2/mods-available/"
install -m 0644 README.md apache-conf/twofactor.schema apache-conf/twofactor.ldif "$doc/"

cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mod_twofactor

Files: *
Copyright: the mod_twofactor authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not
 use this file except in compliance with the License. You may obtain a copy
 of the License at
 .
     http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
 WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
 License for the specific language governing permissions and limitations
 under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
COPYRIGHT
chmod 0644 "$doc/copyright"

changelog_date=$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")
cat > "$doc/changelog.Debian" <<CHANGELOG
$package ($version) unstable; urgency=medium

  * Release $version.

 -- $maintainer  $changelog_date
CHANGELOG
gzip -9n "$doc/changelog.Debian"
chmod 0644 "$doc/changelog.Debian.gz"

# Shared libraries the two binaries need, with minimum versions.
shlibs="libc6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
  work="$out/shlibdeps"
  rm -rf "$work"
  mkdir -p "$work/debian"
  printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$work/debian/control"
  if found=$(cd "$work" && dpkg-shlibdeps -O -e "$staging/usr/lib/apache2/modules/mod_twofactor.so" \
    -e "$staging/usr/sbin/twofactorctl" 2>"$work/stderr"); then
    shlibs=${found#shlibs:Depends=}
  else
    cat "$work/stderr" >&2
    exit 1
  fi
  rm -rf "$work"
fi

cat > "$staging/DEBIAN/conffiles" <<'CONFFILES'
/etc/apache2/mods-available/twofactor.load
/etc/apache2/mods-available/twofactor.conf
CONFFILES

cat > "$staging/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    echo "mod_twofactor installed: edit /etc/apache2/mods-available/twofactor.conf, then: a2enmod twofactor && apachectl -t && systemctl reload apache2"
fi
exit 0
POSTINST

# On removal (not on upgrade) the module is disabled first, so that Apache
# is not left with a LoadModule line for a file that no longer exists.
cat > "$staging/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ]; then
    if [ -e /etc/apache2/mods-enabled/twofactor.load ] || [ -L /etc/apache2/mods-enabled/twofactor.load ]; then
        if command -v a2dismod >/dev/null 2>&1; then
            a2dismod -m -q -f twofactor
        fi
    fi
fi
exit 0
PRERM

# On purge dpkg removes the conffiles; a2dismod only forgets the markers
# a2enmod/a2dismod keep for the module, if there are any. Key, password and
# secret files an administrator created are left alone.
cat > "$staging/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ] && command -v a2dismod >/dev/null 2>&1; then
    for marker in /var/lib/apache2/module/*/twofactor; do
        if [ -e "$marker" ]; then
            a2dismod -m -p -q -f twofactor >/dev/null 2>&1 || true
            break
        fi
    done
fi
exit 0
POSTRM
chmod 0755 "$staging/DEBIAN/postinst" "$staging/DEBIAN/prerm" "$staging/DEBIAN/postrm"
chmod 0644 "$staging/DEBIAN/conffiles"

installed_size=$(du -sk --exclude=DEBIAN "$staging" | cut -f1)
cat > "$staging/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: apache2-bin, apache2-api-$mmn, $shlibs
Recommends: ldap-utils
Section: httpd
Priority: optional
Description: Apache module for a second authentication factor behind a VPN gateway
 mod_twofactor adds a second authentication factor to Apache HTTPD 2.4
 sites behind an SSL-VPN gateway that checks the first factor and names
 the user in a request header. A request is let through only if it comes
 from the gateway and the user has completed a second factor (TOTP app or
 hardware token, emailed passcode or recovery code) in this browser
 session. All state is kept in LDAP, so any number of servers share it.
 .
 The package contains the module, a commented configuration to enable with
 "a2enmod twofactor", the administration tool twofactorctl, and the LDAP
 schema (in /usr/share/doc/mod-twofactor).
CONTROL
chmod 0644 "$staging/DEBIAN/control"

deb="$out/${package}_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$staging" "$deb" >/dev/null
echo "$deb"
