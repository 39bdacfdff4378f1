# consent_ledger: PGXS build.
#
#   make                 build the extension and the offline verifier
#   make install         install both (the verifier into pg_config --bindir)
#   make unit            build the pure-C unit tests (run by test/run-tests.sh)
#   make installcheck    pg_regress against a running, preloaded server
#
# The whole suite, as CI runs it: bash test/run-tests.sh (see README).

EXTENSION = consent_ledger
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = consent_ledger
PURE_OBJS = src/sha256.o src/merkle.o src/note.o src/json.o src/statement.o
OBJS = src/consent_ledger.o src/keys.o src/catalog.o src/encode.o \
	src/ledger.o src/guard.o src/seal.o src/verify.o src/consent.o src/record.o \
	src/policy.o src/consent_state.o src/custody.o src/audit.o src/writer.o src/subxact.o src/hooks.o src/partition.o src/tiles.o src/tableam.o src/ship.o src/standby.o src/witness.o src/proof.o src/erase.o src/migrate.o src/subject.o src/dataset.o $(PURE_OBJS)
PGFILEDESC = "consent_ledger - ledger tables, consent enforcement, signed audit"

DATA = $(wildcard $(EXTENSION)--*.sql)

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=$(EXTENSION)
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/output_iso

# libpq: a hot standby forwards the audit records of protected reads to
# the primary (src/standby.c), as contrib/dblink links it.
SHLIB_LINK = -lsodium -lcrypto
SHLIB_LINK_INTERNAL = $(libpq)
PG_CPPFLAGS = -I$(srcdir)/src -I$(libpq_srcdir) -DCONSENT_LEDGER_VERSION=\"$(EXTVERSION)\"
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-clobbered

EXTRA_CLEAN = consent-ledger-verify test/unit/bin src/build_id.inc

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers: every object depends on all of ours.
$(OBJS): $(wildcard src/*.h)

# Build id: a hash of the sources the library is compiled from, exposed by
# the library as the read-only setting consent_ledger.build_id.  The test
# runner compares the id of the library a server actually loaded with the
# id of the tree (make -s print-build-id), so it never tests a stale
# install.  src/build_id.inc is rewritten only when the id changes.
CL_BUILD_ID := $(shell cat $(sort $(wildcard $(srcdir)/src/*.c $(srcdir)/src/*.h)) $(srcdir)/Makefile $(srcdir)/$(EXTENSION).control | sha256sum | cut -c1-16)
src/build_id.inc: FORCE
	@echo '#define CONSENT_LEDGER_BUILD_ID "$(CL_BUILD_ID)"' > $@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
src/consent_ledger.o src/consent_ledger.bc: src/build_id.inc
print-build-id:
	@echo $(CL_BUILD_ID)
FORCE:
.PHONY: print-build-id FORCE

# The offline verifier and the unit tests use only the pure code.
PURE_CFLAGS = -std=c99 -O2 -g -Wall -Wextra -Werror -Wmissing-prototypes -Isrc
PURE_SRCS = src/sha256.c src/merkle.c src/note.c src/json.c src/proof.c src/leaf.c src/statement.c

all: consent-ledger-verify

consent-ledger-verify: tools/consent-ledger-verify.c $(PURE_SRCS) src/sha256.h src/merkle.h src/note.h src/json.h src/proof.h src/leaf.h src/statement.h
	$(CC) $(PURE_CFLAGS) -o $@ tools/consent-ledger-verify.c $(PURE_SRCS) -lsodium -lcrypto

install: install-verifier
install-verifier: consent-ledger-verify
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) consent-ledger-verify '$(DESTDIR)$(bindir)/consent-ledger-verify'

UNIT_TESTS = $(patsubst test/unit/%.c,test/unit/bin/%,$(wildcard test/unit/test_*.c))
unit: $(UNIT_TESTS) test/unit/bin/make_export consent-ledger-verify
test/unit/bin/%: test/unit/%.c test/unit/tap.h $(PURE_SRCS)
	@mkdir -p test/unit/bin
	$(CC) $(PURE_CFLAGS) -o $@ $< $(PURE_SRCS) -lsodium -lcrypto

.PHONY: install-verifier unit

# valgrind-check, sanitize-check, fuzz-long (see test/reliability/README.md)
include $(srcdir)/test/reliability.mk
