# Sourced by scripts that install a Debian package they need when it is
# missing (setup.sh installs the project's whole list).
# apt_install PACKAGE…: installs the packages (the index is refreshed only
# when the first attempt fails), as root or through sudo.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: $*" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >&2 ||
    { $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@" >&2; }
}
