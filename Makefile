# wsctl: PGXS build of the extension, plus the demo and test entry points.
#
#   make            build wsctl.so and the extension script
#   make install    install into the PostgreSQL found by pg_config
#   make demo       throwaway environment, a workspace through its lifecycle
#   make example    throwaway environment, the example API server and dashboard
#   make test       install what is missing, start services, run every suite
#   make bench      the benchmarks of test/bench/, figures printed (not in make test)
#   make dist       wsctl-$(EXTVERSION).tar.gz, the PGXN source distribution of HEAD

EXTENSION    = wsctl
EXTVERSION   = 0.3.0
MODULE_big   = wsctl
# src/: the entry point and shared plumbing; src/workers/: one file per
# background worker; src/backends/: what the workers act on, behind the
# InstanceController / StorageProvider interfaces; src/clients/: transports.
# Includes flow one way: workers -> backends -> clients.
SRC_DIRS     = src src/workers src/backends src/clients
OBJS         = $(patsubst %.c,%.o,$(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))

# The extension script is built from ordered files, one concern each.
SQL_SOURCES  = $(sort $(wildcard src/sql/*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql
# Upgrade scripts (wsctl--A--B.sql) sit at the top, never in src/sql/: they
# are installed as they are, for ALTER EXTENSION wsctl UPDATE.
DATA         = $(wildcard $(EXTENSION)--*--*.sql)

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=$(EXTENSION)
# Isolation specs live under test/ (the top level holds only what DESIGN.md lists).
ISOLATION    = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --load-extension=$(EXTENSION) --inputdir=test/isolation

PG_CONFIG   ?= pg_config
PG_CPPFLAGS  = $(addprefix -I,$(SRC_DIRS)) $(shell xml2-config --cflags 2>/dev/null)
PG_CFLAGS    = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK   = -lcurl -lhiredis -lcrypto -larchive -lxml2

# The SSE relay, a program of its own (libevent, hiredis, jansson, OpenSSL),
# installed next to PostgreSQL's programs (pg_config --bindir).
RELAY        = src/relay/wsctl-sse
RELAY_SRC    = src/relay/wsctl-sse.c src/relay/jwt.c
RELAY_CFLAGS = -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter
RELAY_LIBS   = -levent -lhiredis -ljansson -lcrypto

EXTRA_CLEAN  = results/ output_iso/ regression.diffs regression.out $(RELAY)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: every object depends on all of ours, so a
# changed struct can never leave a stale object behind.
$(OBJS): $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.h))

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@

all: $(RELAY)

$(RELAY): $(RELAY_SRC) src/relay/jwt.h
	$(CC) $(RELAY_CFLAGS) -o $@ $(RELAY_SRC) $(RELAY_LIBS)

install: install-relay
install-relay: $(RELAY)
	$(INSTALL_PROGRAM) $(RELAY) '$(DESTDIR)$(bindir)/wsctl-sse'

.PHONY: demo example test bench install-relay
demo:
	./test/demo.sh

example:
	./docs/examples/api-server/run.sh

test:
	./test/run-tests.sh

bench:
	./test/bench/run.sh

# The PGXN source distribution: the committed HEAD (not the work tree) under one
# top directory named name-version, written into DIST_DIR. Refused when
# HEAD's META.json does not carry EXTVERSION (test/dist/dist.t checks the rest).
DIST_DIR    ?= .
DIST_NAME    = $(EXTENSION)-$(EXTVERSION)
.PHONY: dist
dist:
	@git show HEAD:META.json | grep -q '"version": *"$(EXTVERSION)"' || \
		{ echo "make dist: HEAD's META.json does not say version $(EXTVERSION)" >&2; exit 1; }
	@git diff --quiet HEAD -- || echo "make dist: note: uncommitted changes are not in the tarball (it is HEAD)"
	git archive --format=tar.gz --prefix=$(DIST_NAME)/ -o $(DIST_DIR)/$(DIST_NAME).tar.gz HEAD
