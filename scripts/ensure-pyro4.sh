#!/usr/bin/env bash
# Installs real Pyro4 (Debian python3-pyro4, used by the interop tests and the demo) when
# /usr/bin/python3 cannot import it yet. Extra Debian packages may be named as arguments.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import Pyro4, serpent' >/dev/null 2>&1 || need+=(python3-pyro4 python3-serpent)
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${need[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q "${need[@]}" >/dev/null
