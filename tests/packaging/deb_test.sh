#!/bin/sh
# The Debian package, as an admin would get it: `cpack -G DEB` in a build
# directory makes thinkit_VERSION_ARCH.deb; it must declare that it replaces
# thin-provisioning-tools, hold the binary, a link per tool, gzipped man pages,
# completions, the initramfs-tools hook and the dracut module; install with
# dpkg into a scratch root; every installed tool must answer -V there; and
# lintian (when installed) must report no errors.
#
#   deb_test.sh BUILD_DIR SOURCE_DIR
# Exit 77 (skipped) without cpack, dpkg-deb or dpkg-shlibdeps.
set -eu
build=$1
src=$2
for t in cpack dpkg-deb dpkg dpkg-shlibdeps; do
  command -v "$t" >/dev/null 2>&1 || { echo "SKIP: $t not installed"; exit 77; }
done
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

(cd "$build" && cpack -G DEB -B "$scratch/out" >"$scratch/cpack.log" 2>&1) || { cat "$scratch/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$scratch"/out/thinkit_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no thinkit_*.deb in cpack's output"
case "$(basename "$deb")" in
  thinkit_[0-9]*.[0-9]*.[0-9]*_*.deb) ;;
  *) fail "unexpected package file name $(basename "$deb")" ;;
esac

control=$(dpkg-deb -f "$deb")
# Depends comes from dpkg-shlibdeps: the shared libraries a dynamic thinkit
# links. A static build (-DTHINKIT_STATIC=ON) links none and needs none.
depends="Depends: " static_tags=""
if ! readelf -d "$build/tools/thinkit" 2>/dev/null | grep -q NEEDED; then
  # A static package is for rescue media, not the archive: lintian's
  # statically-linked-binary and embedded-library are what it is.
  depends="" static_tags="--suppress-tags statically-linked-binary,embedded-library"
  echo "$control" | grep -q "^Depends: .*lib" && fail "a static thinkit's package depends on shared libraries"
fi
for field in "Package: thinkit" "Provides: thin-provisioning-tools" "Conflicts: thin-provisioning-tools" \
             "Replaces: thin-provisioning-tools" $depends; do
  echo "$control" | grep -q "^$field" || fail "control has no '$field'"
done

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$scratch/contents"
tools=$(cat "$build/thinkit_tools.txt")
[ -n "$tools" ] || fail "no tool list in $build/thinkit_tools.txt"
need="/usr/sbin/thinkit /usr/share/initramfs-tools/hooks/thinkit /usr/lib/dracut/modules.d/90thinkit/module-setup.sh
/usr/share/doc/thinkit/copyright /usr/share/doc/thinkit/changelog.gz"
for t in $tools; do
  need="$need /usr/sbin/$t"
  [ -f "$src/man/$t.8" ] && need="$need /usr/share/man/man8/$t.8.gz"
  [ -f "$src/completions/$t" ] && need="$need /usr/share/bash-completion/completions/$t"
done
for f in $need; do
  grep -qx "$f" "$scratch/contents" || fail "package lacks $f"
done
if grep -q '/usr/share/man/man8/.*\.8$' "$scratch/contents"; then fail "uncompressed man page in the package"; fi

# Install into a scratch root (its own dpkg database), then run every tool.
root="$scratch/root"
mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
: > "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-not-root --force-depends --force-script-chrootless -i "$deb" \
  >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log"; fail "dpkg -i into a scratch root failed"; }
dpkg --root="$root" -s thinkit | grep -q "^Status: install ok installed" || fail "dpkg does not list thinkit as installed"
for t in thinkit $tools; do
  v=$("$root/usr/sbin/$t" -V) || fail "$t -V exited non-zero"
  [ -n "$v" ] || fail "$t -V printed nothing"
done

if command -v lintian >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  lintian --no-tag-display-limit $static_tags "$deb" >"$scratch/lintian.log" 2>&1 || true
  if grep -q '^E:' "$scratch/lintian.log"; then
    cat "$scratch/lintian.log"
    fail "lintian reports errors"
  fi
  echo "lintian: no errors ($(grep -c '^W:' "$scratch/lintian.log" || true) warnings)"
else
  echo "lintian not installed: not run"
fi
echo "OK: $(basename "$deb") installs and every tool answers -V"
