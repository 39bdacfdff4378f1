#!/usr/bin/env bash
# The Debian package, as a DBA installs it (SPEC section 11), run by
# test/run-tests.sh as suite "package" (root only: it installs with apt-get):
#
#   1. builds postgresql-15-consent-ledger_<version>_amd64.deb from a copy of
#      the tree with dpkg-buildpackage (debian/: debhelper + pg_buildext),
#      <version> being default_version of consent_ledger.control;
#   2. checks its file list (library, control file, every install and upgrade
#      script of the tree, the offline verifier, its link on PATH, its man
#      page);
#   3. installs it with "apt-get install ./<deb>";
#   4. runs the installed verifier from PATH and reads its man page;
#   5. runs the regression suite (sql/, expected/) against the installed
#      package: debian/tests/installcheck, i.e. pg_buildext installcheck, a
#      throw-away pg_virtualenv cluster that preloads the library;
#   6. leaves the system as it found it: purges the package (unless it was
#      installed before) and puts back the files a "make install" had put at
#      the package's paths (the other suites load the tree's build from there),
#      or, when another install replaced the package's files during the check
#      (dpkg -V; that fails the check, which then tested something else),
#      those newer files.
#
# Output: "ok N - ..." / "not ok N - ..." lines for the steps and pg_regress's
# own "test NAME ... ok" lines, which run-tests.sh counts like the others.
#
#   usage: bash test/package.sh SOURCE_TREE WORK_DIR PORT
set -u
src=$1
work=$2
port=$3
n=0
failed=0

step() {	# step STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

if [ "$(id -u)" != 0 ]; then
	echo "the package suite installs a package: run it as root" >&2
	exit 3
fi

version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$src/consent_ledger.control")
pkg=postgresql-15-consent-ledger
deb=${pkg}_${version}_$(dpkg --print-architecture).deb
pkgdir=$work/package
rm -rf "$pkgdir"
mkdir -p "$pkgdir/consent-ledger-$version"
(cd "$src" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - .) |
	tar -xf - -C "$pkgdir/consent-ledger-$version"

# 0. PGXN META.json: the fields the PGXN Meta Spec 1.0.0 requires, with
# values of its types, the version of consent_ledger.control, and the
# prerequisites the README names
perl -MJSON::PP -e '
	my ($file, $version, $src) = @ARGV;
	local $/; open(my $f, "<", $file) or die "cannot read $file\n";
	my $m = decode_json(<$f>);
	my $semver = qr/^\d+\.\d+\.\d+$/;
	my @licenses = qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
		gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1 openssl perl_5
		postgresql qpl_1_0 ssleay sun zlib open_source restricted unrestricted unknown);
	my @bad;
	push @bad, "name" unless ($m->{name} // "") =~ /^[A-Za-z0-9_-]{2,}$/;
	push @bad, "abstract" unless length($m->{abstract} // "");
	push @bad, "version" unless ($m->{version} // "") =~ $semver && $m->{version} eq "$version.0";
	push @bad, "maintainer" unless ref $m->{maintainer} eq "ARRAY" ? @{$m->{maintainer}} : length($m->{maintainer} // "");
	push @bad, "license" unless grep { $_ eq ($m->{license} // "") } @licenses;
	push @bad, "meta-spec" unless ($m->{"meta-spec"}{version} // "") eq "1.0.0";
	my $p = $m->{provides}{consent_ledger};
	push @bad, "provides" unless $p && ($p->{version} // "") eq "$version.0" && length($p->{abstract} // "")
		&& -f "$src/$p->{file}";
	my $r = $m->{prereqs}{runtime}{requires} // {};
	push @bad, "prereqs $_" for grep { !exists $r->{$_} } qw(PostgreSQL libsodium OpenSSL);
	push @bad, "PostgreSQL 15" unless ($r->{PostgreSQL} // "") =~ /15\.0\.0/;
	die "META.json: bad or missing: @bad\n" if @bad;
' "$src/META.json" "$version" "$src"
step $? "META.json is valid (PGXN Meta Spec 1.0.0) and says version $version.0"

# 1. build
(cd "$pkgdir/consent-ledger-$version" &&
	DEB_BUILD_OPTIONS="parallel=2 noautodbgsym" dpkg-buildpackage -us -uc -b) > "$pkgdir/build.log" 2>&1
status=$?
[ $status = 0 ] || tail -30 "$pkgdir/build.log"
step $status "dpkg-buildpackage builds the package (log: $pkgdir/build.log)"
[ -f "$pkgdir/$deb" ]
step $? "$deb: the version of consent_ledger.control ($version)"
if [ ! -f "$pkgdir/$deb" ]; then
	ls "$pkgdir"
	exit 1
fi
grep -qE '\.[ch]:[0-9]+:[0-9]+: (warning|error):' "$pkgdir/build.log"
[ $? = 1 ]
step $? "the build printed no compiler warning"

# 2. contents
dpkg -c "$pkgdir/$deb" | awk '{print $6}' | sed 's,^\./,/,' > "$pkgdir/files"
missing=""
for f in /usr/lib/postgresql/15/lib/consent_ledger.so \
		 /usr/share/postgresql/15/extension/consent_ledger.control \
		 $(cd "$src" && ls consent_ledger--*.sql | sed 's,^,/usr/share/postgresql/15/extension/,') \
		 /usr/lib/postgresql/15/bin/consent-ledger-verify \
		 /usr/bin/consent-ledger-verify \
		 /usr/share/man/man1/consent-ledger-verify.1.gz; do
	grep -qxF "$f" "$pkgdir/files" || missing="$missing $f"
done
[ -z "$missing" ] || echo "missing from $deb:$missing"
[ -z "$missing" ]
step $? "the package holds the library, the control file, every script, the verifier (on PATH) and its man page"

# 3. install, keeping what a "make install" had put at the package's paths
was_installed=0
dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q "install ok installed" && was_installed=1
(cd / && for f in $(cat "$pkgdir/files"); do [ -f "$f" ] && ! [ -L "$f" ] && echo "${f#/}"; done) > "$pkgdir/kept"
tar -C / -cf "$pkgdir/kept.tar" -T "$pkgdir/kept" 2>/dev/null || : > "$pkgdir/kept.tar"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkgdir/$deb" > "$pkgdir/install.log" 2>&1
status=$?
[ $status = 0 ] || tail -20 "$pkgdir/install.log"
step $status "apt-get install ./$deb"

# 4. the verifier and its man page, as installed
out=$(env PATH=/usr/bin:/bin consent-ledger-verify --help 2>&1)
status=$?
[ $status = 0 ] && echo "$out" | grep -q '^usage:'
step $? "consent-ledger-verify is on PATH (/usr/bin) and runs"
man_text=$(zcat /usr/share/man/man1/consent-ledger-verify.1.gz 2>/dev/null)
bad=""
cmds=$(echo "$out" | sed -n 's/^ *consent-ledger-verify \([a-z]*\).*/\1/p')
for cmd in $cmds; do
	echo "$man_text" | grep -q "^\.B consent-ledger-verify $cmd" || bad="$bad $cmd"
done
# the usage must name subcommands at all, or the check would prove nothing
[ -n "$man_text" ] && [ -n "$cmds" ] && [ -z "$bad" ]
step $? "the man page describes every subcommand of the installed tool${bad:+ (missing:$bad)}"

# 5. installcheck against the installed package
cp -a "$pkgdir/consent-ledger-$version" "$pkgdir/check"
(cd "$pkgdir/check" && PGPORT=$port debian/tests/installcheck) > "$pkgdir/installcheck.log" 2>&1
status=$?
grep -E '^(test | +)?[a-z0-9_ -]+\.\.\. |tests (passed|failed)|^ok [0-9]+|^not ok [0-9]+' "$pkgdir/installcheck.log"
[ $status = 0 ] || sed -n '/regression.diffs \*\*\*\*/,$p' "$pkgdir/installcheck.log" | head -100
step $status "installcheck (debian/tests/installcheck) against the installed package"
# another "make install" into the same paths during the check (a shared
# machine) would have tested something else: say so rather than blame it
changed=$(dpkg -V $pkg 2>/dev/null | awk '$1 ~ /5/ {print $NF}')
[ -z "$changed" ] || echo "files of $pkg changed during the check (another install into its paths?):" $changed
[ -z "$changed" ]
step $? "the package's files were the package's throughout the check (dpkg -V)"

# 6. leave the system as it was
if [ $was_installed = 0 ]; then
	# files someone installed over the package's meanwhile are theirs: keep them too
	(cd / && for f in $changed; do echo "${f#/}"; done) > "$pkgdir/newer"
	tar -C / -cf "$pkgdir/newer.tar" -T "$pkgdir/newer" 2>/dev/null || : > "$pkgdir/newer.tar"
	DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkg > "$pkgdir/purge.log" 2>&1
	status=$?
	tar -C / -xf "$pkgdir/kept.tar" 2>/dev/null
	[ -s "$pkgdir/newer" ] && tar -C / -xf "$pkgdir/newer.tar" 2>/dev/null
	! dpkg-query -W -f='${Status}' $pkg 2>/dev/null | grep -q "install ok installed" && [ $status = 0 ] &&
		{ [ ! -s "$pkgdir/kept" ] || (cd / && xargs ls < "$pkgdir/kept" >/dev/null 2>&1); }
	step $? "package purged, the files that were at its paths put back ($(wc -l < "$pkgdir/kept") files)"
else
	echo "# $pkg was installed before this suite: left installed"
fi

echo "1..$n"
[ $failed = 0 ]
