#!/usr/bin/env bash
# 00_docs_coverage.t: the docs cannot fall behind the code. Every setting
# (GUC) the C code defines, every object src/sql/ creates in schema wsctl
# (functions, views, tables, types), every WS SQLSTATE the code raises and
# every wsctl-sse option is named somewhere in docs/ (README.md counts).
# Needs no service; reads the repository only.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
n=0
failed=0
report() {	# OK(0|1) DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

# documented NAME: the exact name appears in docs/ or README.md.
documented() { grep -rqF -- "$1" "$top/docs" "$top/README.md"; }

# each KIND NAME...: one assertion per kind, listing what is missing.
each() {
	local kind=$1 name missing=() total=0
	shift
	for name in "$@"; do
		total=$((total + 1))
		documented "$name" || missing+=("$name")
	done
	if [ "$total" -eq 0 ]; then
		report 1 "no $kind found in the code (the extraction is broken)"
		return
	fi
	report ${#missing[@]} "all $total ${kind} are documented"
	[ ${#missing[@]} -eq 0 ] || echo "# missing from docs/: ${missing[*]}"
}

cd "$top" || exit 1
mapfile -t gucs < <(grep -ohE '"wsctl\.[a-z_0-9]+"' src/*.c src/*/*.c | tr -d '"' | sort -u)
mapfile -t objects < <(grep -ohE 'CREATE (OR REPLACE )?(FUNCTION|VIEW|TABLE|TYPE) wsctl\.[a-z_0-9]+' src/sql/*.sql |
	awk '{ print $NF }' | sort -u)
# (WS codes are raised in SQL as 'WS404' and in C as MAKE_SQLSTATE('W', 'S', ...).)
mapfile -t states < <({
	grep -ohE "WS[0-9]{3}" src/sql/*.sql src/*.c src/*/*.c
	grep -ohE "MAKE_SQLSTATE\('W', *'S', *'[0-9A-Z]', *'[0-9A-Z]', *'[0-9A-Z]'\)" src/*.c src/*/*.c |
		sed -E "s/[^']*'([^']*)'[^']*/\1/g"
} | sort -u)
# the relay's options, from its getopt_long table
mapfile -t options < <(grep -ohE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' src/relay/wsctl-sse.c |
	sed -E 's/^\{"([^"]+)".*/--\1/' | sort -u)

each "settings (GUCs)" "${gucs[@]}"
each "SQL objects of schema wsctl" "${objects[@]}"
each "WS SQLSTATEs" "${states[@]}"
each "wsctl-sse options" "${options[@]}"

# The check can fail: a name that is nowhere in the docs is reported.
if documented "wsctl.no_such_setting_$$"; then r=1; else r=0; fi
report $r "an undocumented name is caught (control)"

echo "1..$n"
[ "$failed" -eq 0 ]
