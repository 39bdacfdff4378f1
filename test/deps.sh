#!/usr/bin/env bash
# Installs the Debian packages the project needs, when run as root and
# something is missing.  Sourced by tools/demo.sh (the build and the demo
# only: cl_install_deps "$cl_build_packages") and test/run-tests.sh and
# test/bench/run.sh (everything: cl_install_deps).
#
# To build, install and run the extension and the offline verifier:
#   postgresql-15, postgresql-server-dev-15  server and PGXS headers
#   libsodium-dev                            Ed25519, key memory, randomness
#   libssl-dev                               SHA-256 (OpenSSL libcrypto)
#   libkrb5-dev                              gssapi.h, included by the server's libpq-be.h
#   libpq-dev                                libpq: a standby forwards read records to the primary (src/standby.c)
#   make, gcc                                the build
# To test it, in addition:
#   postgresql-15-pgtap, libtap-parser-sourcehandler-pgtap-perl   pgTAP + pg_prove
#   libipc-run-perl                          PostgreSQL::Test::Cluster (TAP tests)
#   clang, libclang-rt-14-dev                libFuzzer targets run briefly by the suite
#   openssl                                  independent Ed25519 cross-checks of the TAP tests (required)
#   debhelper, dpkg-dev, postgresql-server-dev-all   the Debian package (pg_buildext; suite "package")
cl_build_packages="postgresql-15 postgresql-server-dev-15 libsodium-dev libssl-dev libkrb5-dev libpq-dev make gcc"
cl_test_packages="postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl \
clang libclang-rt-14-dev openssl debhelper dpkg-dev postgresql-server-dev-all"
cl_packages="$cl_build_packages $cl_test_packages"

# cl_install_deps [PACKAGES]: installs those of PACKAGES (default: all of
# cl_packages) that are missing
cl_install_deps() {
	local missing="" p
	for p in ${1:-$cl_packages}; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages:$missing (run as root to install them)" >&2
		return 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# the Debian postgresql package would start a cluster of its own; we do not need it
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
