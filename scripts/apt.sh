# apt helpers for the setup scripts (sourced, not run).
#
# apt-get refuses at once when another package manager holds its lock, as
# unattended-upgrades does on a fresh Raspberry Pi. DPkg::Lock::Timeout makes it wait
# for the dpkg lock, but apt 2.6 ignores it for the package lists lock that
# `apt-get update` takes, so apt_get also retries while a lock is held, up to
# APT_LOCK_TIMEOUT_S (300 s) in all.

APT_LOCK_TIMEOUT_S=${APT_LOCK_TIMEOUT_S:-300}

apt_get() {
  local sudo="" deadline=$((SECONDS + APT_LOCK_TIMEOUT_S)) err told="" left
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  err=$(mktemp)
  while :; do
    left=$((deadline - SECONDS))
    ((left < 0)) && left=0
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$left" "$@" 2>"$err"; then
      rm -f "$err"
      return 0
    fi
    if ! grep -q "Could not get lock" "$err"; then
      cat "$err" >&2
      rm -f "$err"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      cat "$err" >&2
      echo "setup: the apt lock was still held after ${APT_LOCK_TIMEOUT_S} s (another apt-get," \
        "or unattended-upgrades); run this again once it has finished, or set APT_LOCK_TIMEOUT_S" >&2
      rm -f "$err"
      return 1
    fi
    if [[ -z $told ]]; then
      echo "setup: another package manager holds the apt lock; waiting for it" \
        "(up to ${APT_LOCK_TIMEOUT_S} s)" >&2
      told=1
    fi
    sleep 2
  done
}

# Installs those of the given Debian packages that are missing (no-op when none are).
apt_ensure() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]}"
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
