#!/usr/bin/perl
# meta_check.pl: checks a META.json against the PGXN Meta Spec 1.0.0
# (https://pgxn.org/spec/), written from the spec's text for wsctl's
# `make dist` test (test/dist/dist.t); PGXN::Meta::Validator is not packaged
# in Debian.
#
#   test/dist/meta_check.pl [--dist DIR] [FILE]     (FILE defaults to META.json)
#
# Prints "FILE is OK" and exits 0, or one line per violation, each naming
# the JSON path ($.provides.wsctl.file), and exits 1 (2: usage, unreadable
# or not JSON). With --dist DIR, the paths of provides' file and docfile
# and of no_index must also exist under DIR (the unpacked distribution).
#
# What it checks, by the spec's sections:
#   Structure      required keys (name, version, abstract, maintainer,
#                  license, provides, meta-spec); keys the spec does not
#                  define, at any level it defines, must start with x_ or X_
#                  (what is under such a custom key is not looked at)
#   Data types     String (non-empty string, not a number), List (an array,
#                  or one String), Map (an object), Term (>= 2 characters, no
#                  slash, backslash, control or space character), Tag (< 256
#                  characters, no slash, backslash or control character), URI
#                  (scheme:rest), Version (Semantic Versioning 2.0.0),
#                  Version Range (0, a Version, or comma-separated comparisons
#                  with <, <=, >, >=, ==, !=), License String (the spec's list)
#   meta-spec      version 1.0.x (a consumer must refuse what it does not
#                  support), url a URI
#   license        one License String, a List of them, or a Map of license
#                  name to URI; never empty
#   provides       a Map of Term to {file, version required; abstract,
#                  docfile optional}, paths relative and in unix form
#   prereqs        phases configure, build, test, runtime, develop;
#                  relations requires, recommends, suggests, conflicts;
#                  each a Map of Term to Version Range
#   release_status stable, testing or unstable
#   resources      homepage (URI), bugtracker {web URI, mailto address},
#                  repository {url URI, web URI, type lowercase}
#   no_index       {file, directory}: Lists of relative unix paths
use strict;
use warnings;
use B ();
use JSON::PP ();

my $dist;
my @args = @ARGV;
my @files;
while (@args) {
	my $a = shift @args;
	if ($a eq '--dist') {
		$dist = shift @args;
		usage() unless defined $dist && -d $dist;
	} elsif ($a =~ /^-/) {
		usage();
	} else {
		push @files, $a;
	}
}
usage() if @files > 1;
my $file = $files[0] // 'META.json';

sub usage {
	print STDERR "usage: $0 [--dist DIR] [META.json]\n";
	exit 2;
}

open(my $fh, '<:raw', $file) or do { print STDERR "$file: $!\n"; exit 2 };
my $text = do { local $/; <$fh> };
close $fh;
my $meta = eval { JSON::PP->new->utf8->relaxed(0)->decode($text) };
if (!defined $meta) {
	my $e = $@ || 'empty';
	$e =~ s/\s+$//;
	print "$file is not JSON: $e\n";
	exit 2;
}

my @errors;
sub err { push @errors, "$_[0]: $_[1]" }

# --------------------------------------------------------------- data types

# A JSON string (JSON::PP gives numbers numeric flags and strings only POK).
sub is_json_string {
	my ($v) = @_;
	return 0 if !defined $v || ref $v;
	my $flags = B::svref_2object(\$v)->FLAGS;
	return ($flags & B::SVf_POK) && !($flags & (B::SVf_IOK | B::SVf_NOK)) ? 1 : 0;
}

sub check_string {
	my ($path, $v) = @_;
	if (!is_json_string($v)) { err($path, 'must be a String'); return 0 }
	if ($v eq '') { err($path, 'must not be empty (a String has non-zero length)'); return 0 }
	return 1;
}

sub check_map {
	my ($path, $v) = @_;
	return 1 if ref $v eq 'HASH';
	err($path, 'must be a Map (JSON object)');
	return 0;
}

# A List; one String counts as a List of one. Returns the elements, or undef.
sub as_list {
	my ($path, $v) = @_;
	return [$v] if is_json_string($v);
	return $v if ref $v eq 'ARRAY';
	err($path, 'must be a List (JSON array) or a String');
	return undef;
}

sub check_term {
	my ($path, $v) = @_;
	return 0 unless check_string($path, $v);
	if (length($v) < 2) { err($path, "Term '$v' must be at least two characters long"); return 0 }
	if ($v =~ m{[/\\\s[:cntrl:]]}) { err($path, "Term '$v' must not contain a slash, backslash, space or control character"); return 0 }
	return 1;
}

sub check_tag {
	my ($path, $v) = @_;
	return 0 unless check_string($path, $v);
	if (length($v) >= 256) { err($path, 'Tag must be fewer than 256 characters long'); return 0 }
	if ($v =~ m{[/\\[:cntrl:]]}) { err($path, "Tag '$v' must not contain a slash, backslash or control character"); return 0 }
	return 1;
}

sub check_uri {
	my ($path, $v) = @_;
	return 0 unless check_string($path, $v);
	if ($v !~ m{^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$}) { err($path, "'$v' is not a URI (scheme:...)"); return 0 }
	return 1;
}

# Semantic Versioning 2.0.0: MAJOR.MINOR.PATCH, no leading zeros, optional
# -prerelease (dot-separated identifiers, numeric ones without leading zeros)
# and +build metadata.
sub is_semver {
	my ($v) = @_;
	return 0 unless $v =~ /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)
		(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
		(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/x;
	my $pre = $4;
	if (defined $pre) {
		for my $id (split /\./, $pre) {
			return 0 if $id =~ /^[0-9]+$/ && $id =~ /^0[0-9]/;
		}
	}
	return 1;
}

sub check_version {
	my ($path, $v) = @_;
	return 0 unless check_string($path, $v);
	if (!is_semver($v)) { err($path, "'$v' is not a semantic version (MAJOR.MINOR.PATCH, https://semver.org/)"); return 0 }
	return 1;
}

# 0 (any version), a Version (at least it), or comparisons AND-ed with commas.
sub check_version_range {
	my ($path, $v) = @_;
	return 1 if defined $v && !ref $v && "$v" eq '0';
	if (!is_json_string($v)) { err($path, 'a Version Range must be a String (or 0)'); return 0 }
	for my $part (split /,/, $v, -1) {
		(my $p = $part) =~ s/^\s+|\s+$//g;
		if ($p eq '0') { next }
		if ($p =~ /^(?:(<=|>=|==|!=|<|>)\s*)?(\S+)$/ && is_semver($2)) { next }
		err($path, "'$v' is not a Version Range ('$p' is neither 0 nor [<|<=|>|>=|==|!=] VERSION)");
		return 0;
	}
	return 1;
}

# A relative path in unix form that stays inside the distribution.
sub check_path {
	my ($path, $v, $kind) = @_;
	return 0 unless check_string($path, $v);
	if ($v =~ m{^/} || $v =~ m{\\} || $v =~ m{^[A-Za-z]:}) { err($path, "'$v' must be a relative path in unix form"); return 0 }
	if (grep { $_ eq '..' } split m{/}, $v) { err($path, "'$v' must not leave the distribution (..)"); return 0 }
	if (defined $dist) {
		my $full = "$dist/$v";
		my $ok = $kind eq 'directory' ? -d $full : -f $full;
		if (!$ok) { err($path, "'$v' is not a $kind of the distribution ($dist)"); return 0 }
	}
	return 1;
}

# Keys a Map of the spec may hold: the listed ones, and custom x_ / X_ ones.
sub check_keys {
	my ($path, $map, @valid) = @_;
	my %valid = map { $_ => 1 } @valid;
	for my $k (sort keys %$map) {
		next if $valid{$k} || $k =~ /^x_/i;
		err("$path.$k", "unknown key (custom keys must start with x_ or X_)");
	}
}

sub check_required {
	my ($path, $map, @keys) = @_;
	for my $k (@keys) {
		err("$path.$k", 'required key is missing') unless exists $map->{$k};
	}
}

# --------------------------------------------------------------- structure

my %LICENSES = map { $_ => 1 } qw(
	agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
	gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
	openssl perl_5 postgresql qpl_1_0 ssleay sun zlib
	open_source restricted unrestricted unknown);
my %PHASES = map { $_ => 1 } qw(configure build test runtime develop);
my %RELATIONS = map { $_ => 1 } qw(requires recommends suggests conflicts);
my %STATUSES = map { $_ => 1 } qw(stable testing unstable);

sub check_meta_spec {
	my ($p, $v) = @_;
	return unless check_map($p, $v);
	check_required($p, $v, 'version');
	check_keys($p, $v, qw(version url));
	if (exists $v->{version} && check_version("$p.version", $v->{version})) {
		err("$p.version", "meta-spec version $v->{version} is not supported (this checker knows 1.0.x)")
			unless $v->{version} =~ /^1\.0\.[0-9]+$/;
	}
	check_uri("$p.url", $v->{url}) if exists $v->{url};
}

sub check_license {
	my ($p, $v) = @_;
	if (ref $v eq 'HASH') {
		err($p, 'a license Map must name at least one license') unless %$v;
		for my $name (sort keys %$v) {
			err("$p.{}", 'a license name must not be empty') if $name eq '';
			check_uri("$p.$name", $v->{$name});
		}
		return;
	}
	my $list = as_list($p, $v) or return;
	err($p, 'must list at least one license') unless @$list;
	for my $i (0 .. $#$list) {
		my $l = $list->[$i];
		next unless check_string("$p\[$i]", $l);
		err("$p\[$i]", "'$l' is not a License String of the spec") unless $LICENSES{$l};
	}
}

sub check_provides {
	my ($p, $v) = @_;
	return unless check_map($p, $v);
	err($p, 'must describe at least one extension') unless %$v;
	for my $ext (sort keys %$v) {
		my $ep = "$p.$ext";
		check_term("$ep (extension name)", $ext);
		my $e = $v->{$ext};
		next unless check_map($ep, $e);
		check_required($ep, $e, qw(file version));
		check_keys($ep, $e, qw(file version abstract docfile));
		check_path("$ep.file", $e->{file}, 'file') if exists $e->{file};
		check_version("$ep.version", $e->{version}) if exists $e->{version};
		check_string("$ep.abstract", $e->{abstract}) if exists $e->{abstract};
		check_path("$ep.docfile", $e->{docfile}, 'file') if exists $e->{docfile};
	}
}

sub check_prereqs {
	my ($p, $v) = @_;
	return unless check_map($p, $v);
	for my $phase (sort keys %$v) {
		next if $phase =~ /^x_/i;
		my $pp = "$p.$phase";
		if (!$PHASES{$phase}) { err($pp, "unknown phase (configure, build, test, runtime, develop)"); next }
		next unless check_map($pp, $v->{$phase});
		for my $rel (sort keys %{ $v->{$phase} }) {
			next if $rel =~ /^x_/i;
			my $rp = "$pp.$rel";
			if (!$RELATIONS{$rel}) { err($rp, "unknown relationship (requires, recommends, suggests, conflicts)"); next }
			next unless check_map($rp, $v->{$phase}{$rel});
			for my $name (sort keys %{ $v->{$phase}{$rel} }) {
				check_term("$rp.$name (name)", $name);
				check_version_range("$rp.$name", $v->{$phase}{$rel}{$name});
			}
		}
	}
}

sub check_resources {
	my ($p, $v) = @_;
	return unless check_map($p, $v);
	check_keys($p, $v, qw(homepage bugtracker repository));
	check_uri("$p.homepage", $v->{homepage}) if exists $v->{homepage};
	if (exists $v->{bugtracker} && check_map("$p.bugtracker", $v->{bugtracker})) {
		my $b = $v->{bugtracker};
		check_keys("$p.bugtracker", $b, qw(web mailto));
		check_uri("$p.bugtracker.web", $b->{web}) if exists $b->{web};
		if (exists $b->{mailto} && check_string("$p.bugtracker.mailto", $b->{mailto})) {
			err("$p.bugtracker.mailto", "'$b->{mailto}' is not an email address")
				unless $b->{mailto} =~ /^[^\s@]+@[^\s@]+$/;
		}
	}
	if (exists $v->{repository} && check_map("$p.repository", $v->{repository})) {
		my $r = $v->{repository};
		check_keys("$p.repository", $r, qw(url web type));
		check_uri("$p.repository.url", $r->{url}) if exists $r->{url};
		check_uri("$p.repository.web", $r->{web}) if exists $r->{web};
		if (exists $r->{type} && check_string("$p.repository.type", $r->{type})) {
			err("$p.repository.type", "'$r->{type}' must be lowercase") if $r->{type} ne lc $r->{type};
		}
	}
}

sub check_no_index {
	my ($p, $v) = @_;
	return unless check_map($p, $v);
	check_keys($p, $v, qw(file directory));
	for my $kind (qw(file directory)) {
		next unless exists $v->{$kind};
		my $list = as_list("$p.$kind", $v->{$kind}) or next;
		check_path("$p.$kind\[$_]", $list->[$_], $kind) for 0 .. $#$list;
	}
}

if (ref $meta ne 'HASH') {
	err('$', 'the metadata must be a Map (JSON object)');
} else {
	# meta-spec first: a consumer must give up on a version it does not know.
	check_required('$', $meta, qw(name version abstract maintainer license provides meta-spec));
	check_keys('$', $meta, qw(name version abstract maintainer license provides meta-spec
		description generated_by tags no_index prereqs release_status resources));
	check_meta_spec('$.meta-spec', $meta->{'meta-spec'}) if exists $meta->{'meta-spec'};
	check_term('$.name', $meta->{name}) if exists $meta->{name};
	check_version('$.version', $meta->{version}) if exists $meta->{version};
	check_string('$.abstract', $meta->{abstract}) if exists $meta->{abstract};
	if (exists $meta->{maintainer}) {
		if (my $list = as_list('$.maintainer', $meta->{maintainer})) {
			err('$.maintainer', 'must name at least one maintainer') unless @$list;
			check_string("\$.maintainer[$_]", $list->[$_]) for 0 .. $#$list;
		}
	}
	check_license('$.license', $meta->{license}) if exists $meta->{license};
	check_provides('$.provides', $meta->{provides}) if exists $meta->{provides};
	check_string('$.description', $meta->{description}) if exists $meta->{description};
	check_string('$.generated_by', $meta->{generated_by}) if exists $meta->{generated_by};
	if (exists $meta->{tags}) {
		if (my $list = as_list('$.tags', $meta->{tags})) {
			check_tag("\$.tags[$_]", $list->[$_]) for 0 .. $#$list;
		}
	}
	check_no_index('$.no_index', $meta->{no_index}) if exists $meta->{no_index};
	check_prereqs('$.prereqs', $meta->{prereqs}) if exists $meta->{prereqs};
	if (exists $meta->{release_status} && check_string('$.release_status', $meta->{release_status})) {
		err('$.release_status', "'$meta->{release_status}' is not stable, testing or unstable")
			unless $STATUSES{ $meta->{release_status} };
	}
	check_resources('$.resources', $meta->{resources}) if exists $meta->{resources};
}

if (@errors) {
	print "$file is invalid (PGXN Meta Spec 1.0.0):\n";
	print "  $_\n" for @errors;
	exit 1;
}
print "$file is OK\n";
exit 0;
