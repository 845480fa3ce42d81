# The two commands a newcomer types: `make run` and `make test` (see README.md).
# Everything goes through CMake; each configuration has its own build directory.

CMAKE_FLAGS ?= -G Ninja -DNINEFOLD_WERROR=ON
FUZZ_SECONDS ?= 60

RELEASE := build/release
DEBUG := build/debug
ASAN := build/asan
FUZZ := build/fuzz
TSAN := build/tsan

.PHONY: all deps build debug asan run test test-release test-asan test-tsan fuzz bench bench-server format \
        check-format clean

all: build

deps:
	@scripts/install-deps.sh

$(RELEASE)/build.ninja: | deps
	cmake -S . -B $(RELEASE) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Release
$(DEBUG)/build.ninja: | deps
	cmake -S . -B $(DEBUG) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug
$(ASAN)/build.ninja: | deps
	cmake -S . -B $(ASAN) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=Debug -DNINEFOLD_SANITIZE=ON \
	  -DNINEFOLD_BENCH=OFF
$(TSAN)/build.ninja: | deps
	cmake -S . -B $(TSAN) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNINEFOLD_TSAN=ON \
	  -DNINEFOLD_BENCH=OFF
$(FUZZ)/build.ninja: | deps
	CXX=clang++ cmake -S . -B $(FUZZ) $(CMAKE_FLAGS) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DNINEFOLD_FUZZ=ON

build: $(RELEASE)/build.ninja
	cmake --build $(RELEASE)
debug: $(DEBUG)/build.ninja
	cmake --build $(DEBUG)
asan: $(ASAN)/build.ninja
	cmake --build $(ASAN)

# The main job: serve a demo directory over 9P on tcp!127.0.0.1!5640 and
# unix!/tmp/ninefold.sock plus the ctl tree, until Ctrl-C (RUN_SECONDS=N: for N seconds).
run: build
	scripts/run-demo.sh $(RELEASE)/ninefold build/demo

# Every test: unit and integration tests in a release and in an ASan+UBSan build, the
# bounded fuzz run, and the format check.
test: test-release test-asan test-tsan fuzz check-format

test-release: build
	cd $(RELEASE) && ctest --output-on-failure -j2

test-asan: asan
	cd $(ASAN) && ctest --output-on-failure -j2

# ThreadSanitizer over the multi-threaded parts: the server framework, the back ends, the
# shared ring and shm channel (not the hostile-peer cases, whose races are the point), and
# the client Session (the cases that drive one session from many threads, and the scripted
# server's flush, deadline and disconnect cases), over every transport: with shm, the
# TSan-built server runs the channel on several io threads (placed reads in flight).
test-tsan: $(TSAN)/build.ninja
	cmake --build $(TSAN) --target server_test fs_test shm_test client_test ninefold
	TSAN_OPTIONS=halt_on_error=1 $(TSAN)/tests/server_test
	TSAN_OPTIONS=halt_on_error=1 $(TSAN)/tests/fs_test --gtest_brief=1
	TSAN_OPTIONS=halt_on_error=1 $(TSAN)/tests/shm_test --gtest_brief=1 \
	  --gtest_filter='-*Hostile*:*DeathTest*'
	TSAN_OPTIONS=halt_on_error=1 $(TSAN)/tests/client_test --gtest_brief=1 \
	  --gtest_filter='*OneSessionFromEightThreads/ninefold*:*RandomReadsIntoAllocatedBuffers*/ninefold_shm:*RamfsReadsIntoAlignedMemory*/ninefold_shm:SessionFake.*'

fuzz: $(FUZZ)/build.ninja
	cmake --build $(FUZZ)
	scripts/run-fuzz.sh $(FUZZ) $(FUZZ_SECONDS)

bench: build
	scripts/run-bench.sh $(RELEASE)

# ninefold serve against diod, side by side (docs/performance.md, "Server vs diod").
bench-server: build
	bench/server_vs_diod.sh $(RELEASE)

# The shm transport against unix and tcp, beside the machine's limits (pingpong).
.PHONY: bench-shm
bench-shm: build
	bench/shm_vs_sockets.sh $(RELEASE)

# Instructions per getattr request on each side (callgrind), over shm and unix.
.PHONY: bench-instructions
bench-instructions: build
	bench/request_instructions.sh $(RELEASE)

# ninefold bench (one thread) vs diodload (N threads) against diod, and ninefold bench
# against diod vs ninefold serve (docs/client-performance.md).
.PHONY: bench-client
bench-client: build
	bench/client_vs_diodload.sh $(RELEASE)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')
check-format:
	@bad=$$(for f in $$(git ls-files '*.h' '*.cc'); do \
	  clang-format --dry-run --Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "clang-format disagrees with:" $$bad; \
	  echo "run: make format"; exit 1; fi; echo "check-format: ok"

clean:
	rm -rf build
