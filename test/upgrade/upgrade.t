#!/usr/bin/env bash
# upgrade.t: ALTER EXTENSION wsctl UPDATE from 0.1 gives exactly what a fresh
# CREATE EXTENSION wsctl gives, and keeps every row.
#
# Runs against the test cluster of test/services.sh (PGHOST, PGPORT, PGUSER
# from its env.sh; wsctl installed with `make install`), as root:
#   1. installs the kept 0.1 install script, test/upgrade/wsctl--0.1.sql, into
#      the extension directory for the duration of the test (a file already
#      there is put back at the end; the EXIT trap does it on any failure);
#      `make install` never installs it: 0.1 is not installable any more,
#      only upgradable
#   2. in database wsctl_upgrade_old, which the workers do not serve (not
#      wsctl.database, so nothing moves while the test looks):
#      CREATE EXTENSION wsctl VERSION '0.1'; workspaces created, changed and
#      deleted through the 0.1 API by a LOGIN role granted wsctl_api;
#      every row of every table of schema wsctl recorded; then
#      ALTER EXTENSION wsctl UPDATE
#   3. in database wsctl_upgrade_new: CREATE EXTENSION wsctl (the default
#      version)
#   4. compares (a) the rows before and after the update, column by column;
#      (b) the catalogs: test/upgrade/catalog.sql in both databases (objects,
#      extension membership, columns, constraints, indexes, triggers, views,
#      functions with their whole definitions, types, ACLs, owners, comments,
#      pg_init_privs, dependencies), diffed; and the rows the install script
#      itself writes (seed tables); (c) behaviour of the upgraded database:
#      wsctl_api's and PUBLIC's privileges, WS403 on a column a component
#      does not own, the API on the old rows.
# Any difference is a failure, with the diff printed: an upgrade script that
# misses a change of src/sql/ is caught.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../integration/lib.sh
. "$top/test/integration/lib.sh"

OLD_DB=wsctl_upgrade_old
NEW_DB=wsctl_upgrade_new
API_ROLE=wsctl_upgrade_api
NOBODY_ROLE=wsctl_upgrade_nobody
FROM_VERSION=0.1
KEPT_SCRIPT=$top/test/upgrade/wsctl--$FROM_VERSION.sql
# Tables whose rows the workload changes; every other table of schema wsctl
# must hold the same rows in both databases (what the install script seeds).
RUNTIME_TABLES="wsctl.workspaces wsctl.events wsctl.operation_attempts wsctl.archive_orphans"

ext_dir=$(pg_config --sharedir)/extension
lib=$(pg_config --pkglibdir)/wsctl.so
installed=$ext_dir/wsctl--$FROM_VERSION.sql
tmp=$(mktemp -d /tmp/wsctl-upgrade.XXXXXX)
chmod 755 "$tmp"
saved=''

# psql_db DB [ROLE] SQL: one statement's output (unaligned, no headers).
psql_db() {
	local db=$1 role=postgres
	if [ $# -eq 3 ]; then role=$2; shift; fi
	psql -X -A -t -q -v ON_ERROR_STOP=1 -U "$role" -d "$db" -c "$2"
}

# state_as DB ROLE SQL: the SQLSTATE the statement fails with as ROLE, or OK.
state_as() {
	local out
	if out=$(psql -X -A -t -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$2" -d "$1" -c "$3" 2>&1); then
		echo OK
	else
		sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' <<<"$out" | head -1
	fi
}

cleanup() {
	for db in "$OLD_DB" "$NEW_DB"; do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $API_ROLE" -c "DROP ROLE IF EXISTS $NOBODY_ROLE" >/dev/null 2>&1
	if [ -n "$saved" ]; then
		mv -f "$saved" "$installed"
	else
		rm -f "$installed"
	fi
	rm -rf "$tmp"
}

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP run as root (it installs the 0.1 script into $ext_dir)"
	exit 0
fi
if [ ! -r "$KEPT_SCRIPT" ]; then
	not_ok "the kept 0.1 script $KEPT_SCRIPT is readable"
	done_testing
fi

# ------------------------------------------------------------ setup
workers_db=$(psql_db postgres "SHOW wsctl.database")
if [ "$workers_db" = "$OLD_DB" ] || [ "$workers_db" = "$NEW_DB" ]; then
	not_ok "the workers serve $workers_db: the test needs databases they do not serve"
	done_testing
fi
default_version=$(sed -nE "s/^default_version[[:space:]]*=[[:space:]]*'([^']*)'.*/\1/p" "$top/wsctl.control")

# Leftovers of an interrupted run go first; then the 0.1 script goes in.
cleanup_leftovers() {
	for db in "$OLD_DB" "$NEW_DB"; do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $API_ROLE" -c "DROP ROLE IF EXISTS $NOBODY_ROLE" >/dev/null 2>&1
}
cleanup_leftovers
if [ -e "$installed" ]; then
	saved=$tmp/saved-wsctl--$FROM_VERSION.sql
	cp -p "$installed" "$saved"
fi
trap cleanup EXIT
install -m 644 "$KEPT_SCRIPT" "$installed"

is "the installed wsctl.control's default version is the repository's ($default_version)" \
	"$(psql_db postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'wsctl'")" "$default_version"

# Every C symbol the 0.1 script names still exists in the one wsctl.so.
missing=()
nm -D --defined-only "$lib" | awk '{ print $3 }' >"$tmp/symbols"
mapfile -t syms < <(grep -oE "'MODULE_PATHNAME', *'[A-Za-z_0-9]+'" "$KEPT_SCRIPT" | sed -E "s/.*'([A-Za-z_0-9]+)'$/\1/" | sort -u)
for s in "${syms[@]}"; do
	grep -qx "$s" "$tmp/symbols" && grep -qx "pg_finfo_$s" "$tmp/symbols" || missing+=("$s")
done
if [ ${#syms[@]} -gt 0 ] && [ ${#missing[@]} -eq 0 ]; then
	ok "$lib exports all ${#syms[@]} C functions 0.1's script names (${syms[*]})"
else
	not_ok "$lib exports the C functions 0.1's script names"
	diag "missing: ${missing[*]:-none found in the script}"
fi

# The chain of update scripts in the repository, from FROM_VERSION to the
# default version: one script per released version (docs/decisions.md).
chain=$FROM_VERSION
chain_scripts=()
v=$FROM_VERSION
while [ "$v" != "$default_version" ]; do
	next=$(cd "$top" && ls wsctl--"$v"--*.sql 2>/dev/null | sed -E "s/^wsctl--$v--(.*)\.sql$/\1/" | head -1)
	[ -n "$next" ] || break
	chain_scripts+=("$ext_dir/wsctl--$v--$next.sql")
	chain="$chain--$next"
	v=$next
done
is "an update path $FROM_VERSION -> $default_version is installed, one script per version ($chain)" \
	"$(psql_db postgres "SELECT path FROM pg_extension_update_paths('wsctl') WHERE source = '$FROM_VERSION' AND target = '$default_version'")" \
	"$chain"

# Roles are the cluster's, not a database's: the databases of this test see
# the roles the cluster's other databases made, so the catalog comparison
# below cannot notice a role (or a role membership) that the update forgets.
# The scripts' text is checked instead: every CREATE ROLE and GRANT role TO
# role of the install script is in 0.1's script or in the update script.
role_statements() {
	grep -ohiE "CREATE ROLE [A-Za-z_0-9]+|GRANT [A-Za-z_0-9]+ TO [A-Za-z_0-9, ]+" "$@" |
		tr 'A-Z' 'a-z' | sed -E 's/[[:space:]]+/ /g; s/ *$//' | sort -u
}
fresh_script=$ext_dir/wsctl--$default_version.sql
role_statements "$fresh_script" >"$tmp/roles.fresh"
role_statements "$KEPT_SCRIPT" "${chain_scripts[@]}" >"$tmp/roles.path"
missing_roles=$(comm -23 "$tmp/roles.fresh" "$tmp/roles.path" | paste -sd ';' -)
if [ -s "$tmp/roles.fresh" ] && [ -z "$missing_roles" ]; then
	ok "every role the install script creates or grants is created or granted on the update path ($(paste -sd ';' - <"$tmp/roles.fresh"))"
else
	not_ok "every role the install script creates or grants is created or granted on the update path"
	diag "missing from the update scripts ($chain): ${missing_roles:-(no role statement found in $fresh_script)}"
fi

# ------------------------------------------------------------ 0.1, used through its API
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c "CREATE DATABASE $OLD_DB" -c "CREATE DATABASE $NEW_DB" >/dev/null 2>"$tmp/err" ||
	{ not_ok "databases created"; diag "$(cat "$tmp/err")"; done_testing; }

if psql_db "$OLD_DB" "CREATE EXTENSION wsctl VERSION '$FROM_VERSION'" >/dev/null 2>"$tmp/err"; then
	is "CREATE EXTENSION wsctl VERSION '$FROM_VERSION' in $OLD_DB" \
		"$(psql_db "$OLD_DB" "SELECT extversion FROM pg_extension WHERE extname = 'wsctl'")" "$FROM_VERSION"
else
	not_ok "CREATE EXTENSION wsctl VERSION '$FROM_VERSION' in $OLD_DB"
	diag "$(cat "$tmp/err")"
	done_testing
fi
# (CREATE EXTENSION made wsctl_api if it was missing.)
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c "CREATE ROLE $API_ROLE LOGIN IN ROLE wsctl_api" -c "CREATE ROLE $NOBODY_ROLE LOGIN" >/dev/null 2>"$tmp/err" ||
	{ not_ok "roles created"; diag "$(cat "$tmp/err")"; done_testing; }

owner_a=11111111-1111-4111-8111-111111111111
owner_b=22222222-2222-4222-8222-222222222222
image=${WSCTL_TEST_IMAGE:-wsctl-busybox:test}
api() { psql_db "$OLD_DB" "$API_ROLE" "$1"; }
w1=$(api "SELECT id FROM wsctl.create_workspace('$owner_a', 'alpha', '$image', 'RUNNING', 'first', 'memo 1')")
w2=$(api "SELECT id FROM wsctl.create_workspace('$owner_a', 'beta', '$image', 'STANDBY', NULL, NULL, 600, 7200)")
w3=$(api "SELECT id FROM wsctl.create_workspace('$owner_b', 'gamma', '$image', 'RUNNING')")
w4=$(api "SELECT id FROM wsctl.create_workspace('$owner_b', 'delta', '$image', 'STANDBY')")
api "SELECT 1 FROM wsctl.update_workspace('$w2', name => 'beta-renamed', memo => 'changed')" >/dev/null &&
	api "SELECT 1 FROM wsctl.set_desired_state('$w3', 'STANDBY')" >/dev/null &&
	api "SELECT 1 FROM wsctl.delete_workspace('$w4')" >/dev/null
rc=$?
rows=$(psql_db "$OLD_DB" "SELECT count(*) FROM wsctl.workspaces")
events=$(psql_db "$OLD_DB" "SELECT count(*) FROM wsctl.events")
if [ $rc -eq 0 ] && [ "$rows" = 4 ] && [ "${events:-0}" -ge 4 ]; then
	ok "0.1's API, called by a wsctl_api member: 4 workspaces created, one renamed, one stopped, one deleted ($events events)"
else
	not_ok "0.1's API, called by a wsctl_api member (rc $rc, $rows rows, $events events)"
fi

# The rows of every table holding the workload's data (RUNTIME_TABLES), with
# 0.1's columns, one line per row; the SELECTs are fixed before the update
# so the same columns are read after. Tables the install script seeds
# (wsctl.locks, ...) may change in an update: they are compared with a
# fresh install's below.
psql_db "$OLD_DB" "
	SELECT format('SELECT %L || ''|'' || t::text FROM (SELECT %s FROM %s) AS t ORDER BY 1;',
				  c.oid::regclass, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), c.oid::regclass)
	  FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid
	 WHERE c.relnamespace = 'wsctl'::regnamespace AND c.relkind IN ('r', 'p')
	   AND c.oid::regclass::text = ANY (string_to_array('$RUNTIME_TABLES', ' '))
	   AND a.attnum > 0 AND NOT a.attisdropped
	 GROUP BY c.oid ORDER BY c.oid::regclass::text" >"$tmp/rows.sql"
rows_ok=1
psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$OLD_DB" -f "$tmp/rows.sql" >"$tmp/rows.before" 2>&1 || rows_ok=0

# ------------------------------------------------------------ the update
if psql_db "$OLD_DB" "ALTER EXTENSION wsctl UPDATE" >/dev/null 2>"$tmp/err"; then
	is "ALTER EXTENSION wsctl UPDATE: $FROM_VERSION -> $default_version" \
		"$(psql_db "$OLD_DB" "SELECT extversion FROM pg_extension WHERE extname = 'wsctl'")" "$default_version"
else
	not_ok "ALTER EXTENSION wsctl UPDATE"
	diag "$(cat "$tmp/err")"
	done_testing
fi
psql_db "$NEW_DB" "CREATE EXTENSION wsctl" >/dev/null 2>"$tmp/err" ||
	{ not_ok "CREATE EXTENSION wsctl in $NEW_DB"; diag "$(cat "$tmp/err")"; done_testing; }

# ------------------------------------------------------------ (a) rows
psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$OLD_DB" -f "$tmp/rows.sql" >"$tmp/rows.after" 2>&1 || rows_ok=0
nrows=$(wc -l <"$tmp/rows.before")
if [ $rows_ok = 1 ] && [ "$nrows" -gt 4 ] && diff -u --label "rows at $FROM_VERSION" --label "rows after the update" \
	"$tmp/rows.before" "$tmp/rows.after" >"$tmp/rows.diff"; then
	ok "every row of the workload's tables is kept with its values ($nrows rows)"
else
	not_ok "every row of the workload's tables is kept with its values ($nrows rows before)"
	head -n 60 "$tmp/rows.diff" | sed 's/^/# /'
fi
ids=$(api "SELECT string_agg(id::text, ' ' ORDER BY name) FROM wsctl.list_workspaces('$owner_a')")
is "the API finds the workspaces created at $FROM_VERSION (list_workspaces)" "$ids" "$w1 $w2"
is "get_workspace on a row from $FROM_VERSION" \
	"$(api "SELECT name || '|' || desired_state || '|' || coalesce(memo, '') FROM wsctl.get_workspace('$w2')")" \
	"beta-renamed|STANDBY|changed"

# ------------------------------------------------------------ (b) the catalogs
catalog() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -f "$top/test/upgrade/catalog.sql"; }
catalog_ok=1
catalog "$OLD_DB" >"$tmp/catalog.old" 2>&1 || catalog_ok=0
catalog "$NEW_DB" >"$tmp/catalog.new" 2>&1 || catalog_ok=0
lines=$(wc -l <"$tmp/catalog.new")
# The description must be a real one: the schema, a table, a C function, a grant.
if [ $catalog_ok = 1 ] && grep -q '^member|schema wsctl$' "$tmp/catalog.new" && grep -q '^relation|wsctl.workspaces|' "$tmp/catalog.new" &&
	grep -q "^function|wsctl._worker_status()|.*language=c" "$tmp/catalog.new" &&
	grep -q '^init_privs|function wsctl.create_workspace(' "$tmp/catalog.new" && [ "$lines" -gt 1000 ]; then
	ok "catalog.sql describes the fresh install ($lines lines: members, relations, functions, grants)"
else
	not_ok "catalog.sql describes the fresh install ($lines lines)"
	head -n 20 "$tmp/catalog.new" | sed 's/^/# /'
	grep -h 'ERROR' "$tmp/catalog.old" | head -n 5 | sed 's/^/# updated: /'
fi
if ! grep -q '^UNDESCRIBED-KIND' "$tmp/catalog.new" "$tmp/catalog.old"; then
	ok "every kind of object in the extension is described by catalog.sql"
else
	not_ok "every kind of object in the extension is described by catalog.sql"
	grep -h '^UNDESCRIBED-KIND' "$tmp/catalog.new" "$tmp/catalog.old" | sort -u | sed 's/^/# /'
fi
if [ $catalog_ok = 1 ] && diff -u --label "updated from $FROM_VERSION ($OLD_DB)" --label "created at $default_version ($NEW_DB)" \
	"$tmp/catalog.old" "$tmp/catalog.new" >"$tmp/catalog.diff"; then
	ok "the updated extension's catalog equals a fresh install's: objects, members, definitions, ACLs, owners, comments, init privileges, dependencies"
else
	not_ok "the updated extension's catalog equals a fresh install's (- updated, + fresh)"
	n_diff=$(grep -c '^[-+][^-+]' "$tmp/catalog.diff")
	diag "$n_diff differing lines; wsctl--$FROM_VERSION--$default_version.sql misses them:"
	head -n 200 "$tmp/catalog.diff" | sed 's/^/# /'
	[ -z "${WSCTL_UPGRADE_DIFF:-}" ] || cp "$tmp/catalog.diff" "$WSCTL_UPGRADE_DIFF"
fi

# Seeded rows: the tables the workload leaves alone hold the same rows as after a fresh install.
psql_db "$NEW_DB" "
	SELECT format('SELECT %L || ''|'' || t::text FROM %s AS t ORDER BY 1;', c.oid::regclass, c.oid::regclass)
	  FROM pg_class AS c
	 WHERE c.relnamespace = 'wsctl'::regnamespace AND c.relkind IN ('r', 'p')
	   AND c.oid::regclass::text <> ALL (string_to_array('$RUNTIME_TABLES', ' '))
	 ORDER BY c.oid::regclass::text" >"$tmp/seed.sql"
seed_ok=1
psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$OLD_DB" -f "$tmp/seed.sql" >"$tmp/seed.old" 2>&1 || seed_ok=0
psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$NEW_DB" -f "$tmp/seed.sql" >"$tmp/seed.new" 2>&1 || seed_ok=0
seeded=$(wc -l <"$tmp/seed.new")
if [ $seed_ok = 1 ] && [ "$seeded" -gt 0 ] && diff -u --label "updated" --label "fresh" "$tmp/seed.old" "$tmp/seed.new" >"$tmp/seed.diff"; then
	ok "the rows the install script writes are the same ($seeded rows of $(grep -c . "$tmp/seed.sql") tables)"
else
	not_ok "the rows the install script writes are the same ($seeded rows)"
	head -n 60 "$tmp/seed.diff" | sed 's/^/# /'
fi
for t in $RUNTIME_TABLES; do
	[ -n "$(psql_db "$NEW_DB" "SELECT to_regclass('$t')")" ] || { not_ok "$t exists (RUNTIME_TABLES is current)"; }
done

# ------------------------------------------------------------ (c) behaviour after the update
w5=$(api "SELECT id FROM wsctl.create_workspace('$owner_a', 'epsilon', '$image', 'STANDBY')" 2>&1)
is "wsctl_api creates a workspace after the update" \
	"$(psql_db "$OLD_DB" "SELECT count(*) FROM wsctl.workspaces WHERE id::text = '$w5' AND name = 'epsilon'" 2>&1)" 1
is "wsctl_api may not read the table wsctl.workspaces (42501)" \
	"$(state_as "$OLD_DB" "$API_ROLE" "SELECT count(*) FROM wsctl.workspaces")" 42501
is "wsctl_api may not call recover_workspace (42501)" \
	"$(state_as "$OLD_DB" "$API_ROLE" "SELECT wsctl.recover_workspace('$w1')")" 42501
is "a role without wsctl_api may not call the API (42501)" \
	"$(state_as "$OLD_DB" "$NOBODY_ROLE" "SELECT wsctl.get_workspace('$w1')")" 42501
is "a role without wsctl_api may not read wsctl.workspace_info (42501)" \
	"$(state_as "$OLD_DB" "$NOBODY_ROLE" "SELECT count(*) FROM wsctl.workspace_info")" 42501
is "PUBLIC may execute no function of schema wsctl" \
	"$(psql_db "$OLD_DB" "SELECT string_agg(oid::regprocedure::text, ', ') FROM pg_proc WHERE pronamespace = 'wsctl'::regnamespace AND has_function_privilege('$NOBODY_ROLE', oid, 'EXECUTE')")" ""
is "PUBLIC may use no table or view of schema wsctl" \
	"$(psql_db "$OLD_DB" "SELECT string_agg(oid::regclass::text, ', ') FROM pg_class WHERE relnamespace = 'wsctl'::regnamespace AND relkind IN ('r', 'v', 'm', 'p', 'S') AND has_table_privilege('$NOBODY_ROLE', oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')")" ""
is "a write to a column the writing component does not own is still WS403" \
	"$(state_as "$OLD_DB" postgres "SET wsctl.component = 'api'; UPDATE wsctl.workspaces SET observed_status = 'RUNNING' WHERE id = '$w1'")" WS403
is "a write by no declared component is still WS403" \
	"$(state_as "$OLD_DB" postgres "UPDATE wsctl.workspaces SET name = 'x' WHERE id = '$w1'")" WS403
is "a bad request is still WS422 (create_workspace with a blank name)" \
	"$(state_as "$OLD_DB" "$API_ROLE" "SELECT wsctl.create_workspace('$owner_a', ' ', '$image')")" WS422
is "a change made through the API after the update is an event in the outbox" \
	"$(psql_db "$OLD_DB" "SELECT count(*) > 0 FROM wsctl.events WHERE workspace_id::text = '$w5'")" t

done_testing
