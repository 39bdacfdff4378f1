# Reliability gauntlet targets; the Makefile includes this file.
#
#   make valgrind-check   regression + isolation suites with the server under
#                         valgrind memcheck (test/reliability/valgrind.sh; root
#                         builds and installs first)
#   make sanitize-check   the same suites against an ASan+UBSan build of the
#                         extension, server started with libasan preloaded
#                         (test/reliability/sanitize.sh; SAN_INSTALL=private
#                         by default: the system install is not touched)
#   make fuzz-long        every libFuzzer target for FUZZ_SECONDS each
#                         (default 300) via test/fuzz/run.sh
#
# The TAP soak (test/tap/006_soak.pl) runs with the tap suite of
# test/run-tests.sh; SOAK_SECONDS=600 makes it longer.

# Never the default goal, wherever the Makefile includes this file.
cl_saved_default_goal := $(.DEFAULT_GOAL)

FUZZ_SECONDS ?= 300
# (:= now, while this file is the last one read)
CL_TEST_DIR := $(dir $(lastword $(MAKEFILE_LIST)))

valgrind-check:
	bash $(CL_TEST_DIR)reliability/valgrind.sh

sanitize-check:
	bash $(CL_TEST_DIR)reliability/sanitize.sh

fuzz-long:
	sh $(CL_TEST_DIR)fuzz/run.sh $(FUZZ_SECONDS)

.PHONY: valgrind-check sanitize-check fuzz-long

.DEFAULT_GOAL := $(cl_saved_default_goal)
