# fasterapid — plain GNU make. Objects go under $(BUILD); headers are tracked with -MMD.
#
#   make            build build/fasterapid (installs missing Debian packages first, as root)
#   make run        build and run the daemon in the foreground on conf/fasterapid.yaml
#   make test       every test, then again under AddressSanitizer + UBSan with libc malloc
#   make bench      benchmarks in perf/ (never part of make test); bench-micro: micro only
#   make install    PREFIX=/usr/local SYSCONFDIR=/etc UNITDIR=/lib/systemd/system DESTDIR=
#                   (an existing $(SYSCONFDIR)/fasterapid/fasterapid.yaml is never overwritten)
#   make uninstall  the binary and the unit; the configuration stays
#   MALLOC=libc     link with the C library's malloc instead of jemalloc
#   make fuzz       every libFuzzer target in tests/fuzz/ for FUZZ_SECONDS each (ASan+UBSan, clang)
#   make valgrind   the daemon under valgrind (leaks, invalid accesses), driven by tests/valgrind.sh

.DEFAULT_GOAL := all
SHELL := /bin/bash
.SUFFIXES:
.SECONDARY:

PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
MALLOC  ?= jemalloc
SAN     ?=
CONF    ?= conf/fasterapid.yaml
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10

ifeq ($(SAN),1)
BUILD   ?= build/asan
MALLOC  := libc
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN   := -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
# libFuzzer build (tests/fuzz/): clang, every object instrumented for coverage and sanitizers.
BUILD   ?= build/fuzz
MALLOC  := libc
CC      := $(FUZZ_CC)
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
           -fno-sanitize-recover=all
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     ?= -O2 -g
LDSAN   :=
endif

LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
FA_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread $(OPT) $(WARN) -iquote lib -I$(LLHTTP_INC) $(CFLAGS)
LIBS      := -lev -lyaml -lsystemd -lm -pthread
ifeq ($(MALLOC),jemalloc)
FA_CFLAGS += -DFA_WITH_JEMALLOC
LIBS      += -ljemalloc
endif

# Debian packages the build and the tests need, and one file that proves each is there.
DEB_PKGS  := build-essential pkg-config libev-dev node-llhttp libyaml-dev libjemalloc-dev \
             libcriterion-dev libjsmn-dev libsystemd-dev systemd curl clang-14 libclang-rt-14-dev
DEB_PROBE := /usr/include/ev.h $(LLHTTP_SRC)/llhttp.c /usr/include/yaml.h \
             /usr/include/jemalloc/jemalloc.h /usr/include/criterion/criterion.h /usr/include/jsmn.h \
             /usr/include/systemd/sd-daemon.h /usr/bin/pkg-config /usr/bin/systemd-analyze /usr/bin/curl \
             /usr/bin/clang-14 /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a
BENCH_PKGS  := wrk nginx-light valgrind libyajl-dev
BENCH_PROBE := /usr/bin/wrk /usr/sbin/nginx /usr/bin/valgrind /usr/include/yajl/yajl_parse.h

LIB_SRC    := $(sort $(wildcard lib/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
LIBFA      := $(BUILD)/libfasterapid.a
BIN        := $(BUILD)/fasterapid

TEST_SRC     := $(sort $(wildcard tests/test_*.c))
TEST_BIN     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
SUPPORT_SRC  := $(sort $(wildcard tests/support/*.c))
SUPPORT_OBJ  := $(SUPPORT_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC    := $(sort $(wildcard perf/bench_*.c))
BENCH_BIN    := $(BENCH_SRC:perf/%.c=$(BUILD)/perf/%)

.PHONY: all deps bench-deps run test check tests bench bench-micro install uninstall clean format \
        fuzz fuzz-smoke fuzz-build valgrind

all: $(BIN)

# Installs what is missing, once; quiet when everything is there.
deps:
	@missing=; for f in $(DEB_PROBE); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "fasterapid: installing Debian packages (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) >/dev/null || exit 1; \
	  else \
	    echo "fasterapid: missing$$missing; run as root: apt-get update && apt-get install -y $(DEB_PKGS)"; exit 1; \
	  fi; \
	fi

bench-deps: deps
	@missing=; for f in $(BENCH_PROBE); do [ -e $$f ] || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PKGS) >/dev/null || exit 1; \
	    systemctl disable --now nginx >/dev/null 2>&1 || true; \
	  else \
	    echo "fasterapid: missing$$missing; run as root: apt-get install -y $(BENCH_PKGS)"; exit 1; \
	  fi; \
	fi

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c | deps
	@mkdir -p $(@D)
	$(CC) -std=c11 $(OPT) -I$(LLHTTP_INC) -w -c $< -o $@

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(FA_CFLAGS) -MMD -MP -c $< -o $@

$(LIBFA): $(LIB_OBJ) $(LLHTTP_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/cmd/fasterapid/main.o $(LIBFA)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUPPORT_OBJ) $(LIBFA)
	$(CC) $(LDSAN) -o $@ $^ -lcriterion $(LIBS)

$(BUILD)/perf/%: $(BUILD)/perf/%.o $(LIBFA)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

# The router benchmark measures the tests' 50-route table (tests/support/api_routes.h).
$(BUILD)/perf/bench_router.o: FA_CFLAGS += -iquote tests

# The in-process request-path benchmark builds its worker with the tests' harness.
$(BUILD)/perf/bench_inproc.o: FA_CFLAGS += -iquote tests
$(BUILD)/perf/bench_inproc: $(BUILD)/perf/bench_inproc.o $(BUILD)/tests/support/inproc.o $(LIBFA)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

# The JSON benchmark compares jsmn (what we use) with yajl, so only it links yajl.
$(BUILD)/perf/bench_json: LIBS += -lyajl

$(BUILD)/perf/floor: perf/floor.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -o $@ $<

tests: $(BIN) $(TEST_BIN)

# Runs every test binary against this build; tests/run.sh prints the totals.
check: tests
	@mkdir -p build/test-logs
	@FASTERAPID_BIN=$(abspath $(BIN)) FA_SRCDIR=$(CURDIR) FA_TOTALS=$(CURDIR)/build/test-totals \
	  FA_TEST_LOGDIR=$(CURDIR)/build/test-logs tests/run.sh $(TEST_BIN)

# Three passes (plain, ASan+UBSan, fuzz smoke); the last line sums them up.
test: deps
	@rm -rf build/test-totals build/test-logs
	@$(MAKE) --no-print-directory check
	@echo "== again under AddressSanitizer + UBSan (libc malloc) =="
	@$(MAKE) --no-print-directory SAN=1 check
	@echo "== fuzz smoke: each target $(FUZZ_SMOKE_SECONDS) s under ASan + UBSan =="
	@$(MAKE) --no-print-directory fuzz-smoke | tee build/fuzz-smoke.log; \
	  st=$${PIPESTATUS[0]}; ok=$$(grep -c '^fuzz: .* ok:' build/fuzz-smoke.log); \
	  echo "$$ok 0" >>build/test-totals; \
	  awk '{ p += $$1; f += $$2 } END { printf "tests: %d passed, %d failed\n", p, f }' build/test-totals; \
	  exit $$st

run: deps $(BIN)
	$(BIN) -c $(CONF)

bench: bench-deps $(BIN) $(BENCH_BIN) $(BUILD)/perf/floor
	@perf/run-micro.sh $(BENCH_BIN)
	@FASTERAPID_BIN=$(abspath $(BIN)) FLOOR_BIN=$(abspath $(BUILD)/perf/floor) perf/load.sh
	@ROUNDS=3 DURATION=5 FASTERAPID_BIN=$(abspath $(BIN)) perf/upstream.sh

bench-micro: bench-deps $(BENCH_BIN)
	@perf/run-micro.sh $(BENCH_BIN)

# ---- fuzzing (tests/fuzz/README.md) ----
# Each target replays its seed corpus tests/fuzz/corpus/<target>/ (crash inputs found once are
# kept there as regression cases), then mutates for the time given. New inputs go to
# build/fuzz/corpus/<target>/, crashes to build/fuzz/crashes/.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_RUN := FUZZ=1 FUZZ_SECONDS=$(FUZZ_SECONDS)

$(BUILD)/tests/fuzz/%.o: FA_CFLAGS += -iquote tests -DFA_FUZZ_SRCDIR='"$(CURDIR)"'
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/support/inproc.o $(LIBFA)
	@mkdir -p $(@D)
	$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz-build: deps
	@$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/fuzz/%)

fuzz: fuzz-build
	@FUZZ_DIR=build/fuzz tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_SRC:tests/fuzz/%.c=%)

fuzz-smoke: fuzz-build
	@FUZZ_DIR=build/fuzz tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_SRC:tests/fuzz/%.c=%)

# ---- valgrind: the daemon (libc malloc, -O1) under memcheck, workers included ----
valgrind: deps bench-deps
	@$(MAKE) --no-print-directory BUILD=build/valgrind MALLOC=libc OPT='-O1 -g' build/valgrind/fasterapid
	@FASTERAPID_BIN=$(abspath build/valgrind/fasterapid) FA_SRCDIR=$(CURDIR) tests/valgrind.sh


# INSTALL_BIN installs a binary built elsewhere (the tests install the one they run).
INSTALL_BIN ?= $(BIN)

install: $(INSTALL_BIN)
	install -D -m 0755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/fasterapid
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/fasterapid/fasterapid.yaml ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/fasterapid/fasterapid.yaml"; \
	else \
	  install -D -m 0644 conf/fasterapid.yaml $(DESTDIR)$(SYSCONFDIR)/fasterapid/fasterapid.yaml; \
	fi
	@mkdir -p $(DESTDIR)$(UNITDIR)
	sed 's|@BINDIR@|$(PREFIX)/bin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' fasterapid.service \
	  > $(DESTDIR)$(UNITDIR)/fasterapid.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/fasterapid.service.tmp $(DESTDIR)$(UNITDIR)/fasterapid.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/fasterapid.service
	@[ -n "$(DESTDIR)" ] || echo "now: systemctl daemon-reload && systemctl enable --now fasterapid"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/fasterapid $(DESTDIR)$(UNITDIR)/fasterapid.service
	@echo "left $(DESTDIR)$(SYSCONFDIR)/fasterapid/ in place (your configuration)"

clean:
	rm -rf build

format:
	clang-format -i lib/*.[ch] cmd/fasterapid/*.c tests/*.c tests/support/*.[ch] perf/*.c

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
