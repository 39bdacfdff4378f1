#!/usr/bin/perl
# vg_summary.pl SRCDIR LOGFILE...
#
# Reads valgrind (memcheck) log files, one per process, and prints per log
# file the number of errors and how many of them are attributable to
# consent_ledger: an error is the extension's when a frame of its stack is
# in consent_ledger.so or in a source file under SRCDIR/src (valgrind runs
# with --fullpath-after= so frames carry full source paths).  Prints every
# consent_ledger error with its stack, then the totals as
#   TOTAL <errors> <consent_ledger errors> <log files> <logs with errors>
#         <consent_ledger errors whose innermost non-libc frame is the extension's>
# Errors are counted as reported, not deduplicated (memcheck reports each
# distinct context once per process and counts repeats in ERROR SUMMARY;
# the ERROR SUMMARY figure is printed alongside).
use strict;
use warnings;

my $srcdir = shift @ARGV or die "usage: $0 SRCDIR LOGFILE...\n";
my ($total, $ours, $nlogs, $logs_with) = (0, 0, 0, 0);
my $ours_top = 0;
my @our_blocks;
my %kinds;

foreach my $file (@ARGV)
{
	open(my $fh, '<', $file) or next;
	$nlogs++;
	my (@blocks, @cur);
	my ($cmd, $summary) = ('', undef);
	while (my $line = <$fh>)
	{
		chomp $line;
		next unless $line =~ s/^==\d+== ?//;
		$cmd = $1 if $line =~ /^Command: (.*)/;
		$summary = $1 if $line =~ /^ERROR SUMMARY: (\d+) errors/;
		if ($line eq '')
		{
			push @blocks, [@cur] if @cur;
			@cur = ();
		}
		else
		{
			push @cur, $line;
		}
	}
	push @blocks, [@cur] if @cur;
	close $fh;

	my ($n, $m, $m_top) = (0, 0, 0);
	foreach my $b (@blocks)
	{
		my $head = $b->[0];
		# an error report is a message followed by a stack ("at 0x...")
		next unless grep { /^\s+at 0x/ } @$b;
		next if $head =~ /^(Process terminating|HEAP SUMMARY|LEAK SUMMARY|Memcheck, |Warning: )/;
		$n++;
		(my $kind = $head) =~ s/ of size \d+/ of size N/;
		$kind =~ s/0x[0-9A-Fa-f]+/0x../g;
		$kinds{$kind}++;
		# the error's own stack: up to the allocation/origin sections
		my @stack;
		foreach my $l (@$b[1 .. $#$b])
		{
			last if $l =~ /^\s*(Address|Uninitialised value was created|Block was alloc)/;
			push @stack, $l if $l =~ /^\s+(at|by) 0x/;
		}
		my $is_ours = sub { $_[0] =~ /consent_ledger\.so|\Q$srcdir\E\/(src|tools)\// };
		if (grep { $is_ours->($_) } @stack)
		{
			$m++;
			# innermost frame outside libc, valgrind's preload and libsodium
			my ($first) = grep { !/vgpreload|libc\.so|ld-linux|libsodium/ } @stack;
			my $top = (defined $first && $is_ours->($first)) ? 1 : 0;
			$m_top++ if $top;
			push @our_blocks, "--- $file (" . ($top ? 'in consent_ledger code' : 'consent_ledger on the stack') . ")\n"
			  . join("\n", @$b) . "\n";
		}
	}
	$total += $n;
	$ours += $m;
	$ours_top += $m_top;
	$logs_with++ if $n;
	my $base = $file;
	$base =~ s{.*/}{};
	printf "%-22s %4d errors (%d in consent_ledger)%s  %s\n", $base, $n, $m,
	  (defined $summary ? ", ERROR SUMMARY $summary" : ', no ERROR SUMMARY (killed?)'),
	  substr($cmd, 0, 60)
	  if $n || !defined $summary || $ENV{VG_SUMMARY_ALL};
}
if (%kinds)
{
	print "error kinds:\n";
	printf "  %5d  %s\n", $kinds{$_}, $_ foreach sort { $kinds{$b} <=> $kinds{$a} } keys %kinds;
}
if (@our_blocks)
{
	print "consent_ledger errors:\n";
	print $_ foreach @our_blocks;
}
print "TOTAL $total $ours $nlogs $logs_with $ours_top\n";
