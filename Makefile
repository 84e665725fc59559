# Colibri -- the two commands are `make run` and `make test`.
#
#   make run     install missing build packages, build, and run the daemon in
#                the foreground on ./run (socket ./run/colibri.sock)
#   make test    install, build (normal and ASan+UBSan), check the format
#                (clang-format), run every suite (the end-to-end one too);
#                the last line is "N passed, N failed"
#   make bench   benchmarks (not tests), each beside a reference, as ratios
#   make bench-scale  every command on a board of 1,000,000 tasks (minutes;
#                BENCH_SCALE_TASKS=20000 for a quick run), beside raw SQLite
#   make e2e     only the end-to-end suite: the real pi from npm, unconfined
#                and in bubblewrap through an agent profile
#   make fuzz    libFuzzer targets for a bounded time (clang)
#   make load    the load tests (tests/load/run.sh)
#   make install DESTDIR=...

BUILD ?= build
ASAN_BUILD ?= build-asan
# The PostgreSQL backend is a module of the normal build (src/store/store-postgres.so,
# built when libpq is found), loaded by the daemon only for --store postgresql://...
MESON_OPTS ?=

.PHONY: all deps deps-build build build-asan run test bench bench-scale e2e fuzz load install clean format

all: build

deps:
	@scripts/deps.sh all

deps-build:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# --allow-unconfined: here the operator is the daemon's user, so an agent with its uid takes nothing new.
run: deps-build
	@$(MAKE) --no-print-directory build
	PATH="$(CURDIR)/$(BUILD)/src/tools:$$PATH" $(BUILD)/src/daemon/colibri-daemon --state-dir ./run --config-dir ./run/etc --foreground --allow-unconfined

test: deps
	@$(MAKE) --no-print-directory build build-asan
	@scripts/run-tests.py --build $(BUILD) --asan-build $(ASAN_BUILD)

bench: deps
	@$(MAKE) --no-print-directory build
	@bench/run.sh $(BUILD)

bench-scale: deps
	@$(MAKE) --no-print-directory build
	@BENCH_ONLY=scale bench/run.sh $(BUILD)

e2e: deps
	@$(MAKE) --no-print-directory build
	@tests/e2e/run.sh $(BUILD)

fuzz: deps
	@tests/fuzz/run.sh

load: deps
	@$(MAKE) --no-print-directory build
	@tests/load/run.sh $(BUILD)

install: build
	meson install -C $(BUILD)

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'bench/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
