# wsctl: PGXS build of the extension, plus the demo and test entry points.
#
#   make            build wsctl.so and the extension script
#   make install    install into the PostgreSQL found by pg_config
#   make demo       throwaway environment, a workspace through its lifecycle
#   make test       install what is missing, start services, run every suite

EXTENSION    = wsctl
EXTVERSION   = 0.1
MODULE_big   = wsctl
OBJS         = $(patsubst %.c,%.o,$(wildcard src/*.c))

# The extension script is built from ordered files, one concern each.
SQL_SOURCES  = $(sort $(wildcard src/sql/*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=$(EXTENSION)
# Isolation specs live under test/ (the top level holds only what DESIGN.md lists).
ISOLATION    = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --load-extension=$(EXTENSION) --inputdir=test/isolation

PG_CONFIG   ?= pg_config
PG_CPPFLAGS  = -Isrc
PG_CFLAGS    = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK   = -lcurl -lhiredis

EXTRA_CLEAN  = results/ output_iso/ regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: every object depends on all of ours, so a
# changed struct can never leave a stale object behind.
$(OBJS): $(wildcard src/*.h)

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $^ > $@

.PHONY: demo test
demo:
	./test/demo.sh

test:
	./test/run-tests.sh
