# serlua build. `make` builds libser.a, libser.so, ser.so and serlua (and the MPI plug-in ser_mpi.so where mpicc exists).
# Sources are discovered by folder: a new src/<area>/*.c is built without editing this file.
#   make test        C unit tests, busted specs, compare.lua smoke run; ends "N passed, N failed, N skipped"
#   make check-asan  the same under AddressSanitizer + UBSan (separate build dir)
#   make bench       ours vs PyTorch, side by side (needs scripts/install-deps.sh --bench)
#   make NATIVE=1    -march=native instead of the portable x86-64-v2 baseline
#   make WERROR=1    warnings are errors (CI)
#   make install PREFIX=/usr/local
#   make ravdess     download RAVDESS into data/ravdess; make whisper-base / whisper-tiny.en: encoders into models/

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
LUA_PKG := lua5.4
PKGS    := $(LUA_PKG) sndfile fftw3f soxr libcjson libzip libprotobuf-c libmicrohttpd
MARCH   := $(if $(NATIVE),-march=native,-march=x86-64-v2)
OPT     ?= -O2
# pkg-config runs lazily, once, on first use: on a fresh machine the packages
# (and pkg-config itself) are installed by the `deps` step before anything compiles.
lazy_once = $(eval $(1) := $$(shell $(2)))$($(1))
PKG_CFLAGS = $(call lazy_once,PKG_CFLAGS,pkg-config --cflags $(PKGS))
PKG_LIBS_CORE = $(call lazy_once,PKG_LIBS_CORE,pkg-config --libs sndfile fftw3f soxr libcjson libzip libprotobuf-c libmicrohttpd)
PKG_LIBS_LUA = $(call lazy_once,PKG_LIBS_LUA,pkg-config --libs $(LUA_PKG))
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE $(OPT) -g $(MARCH) -fPIC -fopenmp \
               -Wall -Wextra -Wshadow -Wno-unused-parameter $(if $(WERROR),-Werror) \
               -MMD -MP -Isrc -I$(BUILD)/gen/onnx $(PKG_CFLAGS) \
               -I/usr/include/x86_64-linux-gnu/openblas-openmp
CFLAGS  += $(CFLAGS_BASE) $(SANITIZE)
LDLIBS_CORE = $(PKG_LIBS_CORE) -lopenblas -lm -fopenmp
LDLIBS_LUA  = $(PKG_LIBS_LUA)
LDFLAGS += $(SANITIZE)

CORE_DIRS := core ops autograd optim audio augment data eval io pretrained infer export http
CORE_SRC  := $(foreach d,$(CORE_DIRS),$(wildcard src/$(d)/*.c))
LUA_SRC   := $(wildcard src/lua/*.c)
LUA_FILES := $(shell find lua -name '*.lua' | sort)
REPL_SRC  := $(wildcard src/serlua/*.c)
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx/onnx.pb-c.o
LUA_OBJ   := $(LUA_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/embedded_lua.o $(BUILD)/gen/embedded_web.o
WEB_FILES := $(sort $(wildcard web/*))
REPL_OBJ  := $(REPL_SRC:%.c=$(BUILD)/%.o)

CTEST_SRC := $(wildcard tests/c/test_*.c)
CTEST_BIN := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
GRADCHECK_SRC := $(wildcard tests/c/gradcheck/*.c)
GRADCHECK_OBJ := $(GRADCHECK_SRC:%.c=$(BUILD)/%.o)
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/c/lib/*.c))

# test objects are intermediate in the pattern chain; keep them for incremental builds
.SECONDARY:

# The MPI plug-in is built only where mpicc exists (see its rule below).
MPICC ?= mpicc

.PHONY: all test mpi-plugin check-asan bench install clean deps fuzz ravdess whisper-base whisper-tiny.en
all: deps $(BUILD)/libser.a $(BUILD)/libser.so $(BUILD)/ser.so $(BUILD)/serlua mpi-plugin

# Installs missing Debian packages (and says which) before the first build.
deps: $(BUILD)/.deps-ok
$(BUILD)/.deps-ok: scripts/install-deps.sh
	@mkdir -p $(BUILD)
	@scripts/install-deps.sh
	@touch $@

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libser.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libser.so: $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS_CORE)

# Lua sources are compiled into the binaries (package.preload), so ser.so and
# serlua are self-contained; chunk names keep the lua/ser/... paths for tracebacks.
$(BUILD)/gen/embedded_lua.c: scripts/embed-lua.lua $(LUA_FILES) | deps
	@mkdir -p $(dir $@)
	lua5.4 scripts/embed-lua.lua $@ $(LUA_FILES)

# ONNX's protobuf schema (third_party/onnx/onnx.proto) -> C by protoc-c at build time, so the
# generated code always matches the installed libprotobuf-c (src/export/ writes ONNX with it).
$(BUILD)/gen/onnx/onnx.pb-c.c $(BUILD)/gen/onnx/onnx.pb-c.h: third_party/onnx/onnx.proto | deps
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen/onnx -Ithird_party/onnx third_party/onnx/onnx.proto
$(BUILD)/gen/onnx/onnx.pb-c.o: $(BUILD)/gen/onnx/onnx.pb-c.c
	$(CC) $(CFLAGS) -Wno-error -c $< -o $@
$(patsubst %.c,$(BUILD)/%.o,$(wildcard src/export/*.c) tests/c/test_onnx.c): $(BUILD)/gen/onnx/onnx.pb-c.h

$(BUILD)/gen/embedded_lua.o: $(BUILD)/gen/embedded_lua.c
	$(CC) $(CFLAGS) -c $< -o $@

# serve.lua's web page (web/*) is compiled in the same way: no files to find at run time.
$(BUILD)/gen/embedded_web.c: scripts/embed-web.lua $(WEB_FILES) | deps
	@mkdir -p $(dir $@)
	lua5.4 scripts/embed-web.lua $@ $(WEB_FILES)

$(BUILD)/gen/embedded_web.o: $(BUILD)/gen/embedded_web.c
	$(CC) $(CFLAGS) -c $< -o $@

# -z nodelete: lua_close() dlcloses ser.so while OpenMP worker threads from
# libgomp may still reference it; keeping it mapped avoids a crash at exit.
$(BUILD)/ser.so: $(LUA_OBJ) $(BUILD)/libser.a
	$(CC) -shared -o $@ $(LUA_OBJ) $(BUILD)/libser.a $(LDFLAGS) $(LDLIBS_CORE) -Wl,-z,nodelete

$(BUILD)/serlua: $(REPL_OBJ) $(LUA_OBJ) $(BUILD)/libser.a
	$(CC) -o $@ $(REPL_OBJ) $(LUA_OBJ) $(BUILD)/libser.a $(LDFLAGS) $(LDLIBS_LUA) -lreadline $(LDLIBS_CORE) -Wl,-E

# The MPI plug-in (docs/distributed.md): a Lua C module linked against Open MPI, built
# only where mpicc exists and loaded only under mpirun; serlua and ser.so never link MPI.
# It links core/half.c (the 16-bit float conversions of gradient compression) and
# nothing else of the core. -z nodelete keeps its exit handler mapped after lua_close.
# mpicc is looked for when the recipe runs, after `deps` may have installed it.
mpi-plugin: deps
	@if command -v $(MPICC) >/dev/null 2>&1; then $(MAKE) --no-print-directory -q $(BUILD)/ser_mpi.so || $(MAKE) --no-print-directory $(BUILD)/ser_mpi.so; fi
$(BUILD)/ser_mpi.so: src/mpi/ser_mpi.c src/core/half.c src/core/comm.h src/core/half.h | deps
	$(MPICC) $(CFLAGS_BASE) $(SANITIZE) -shared -o $@ src/mpi/ser_mpi.c src/core/half.c $(LDFLAGS) -Wl,-z,nodelete

$(BUILD)/tests/test_gradcheck: $(GRADCHECK_OBJ) $(TESTLIB_OBJ) $(BUILD)/libser.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(GRADCHECK_OBJ) $(TESTLIB_OBJ) $(BUILD)/libser.a $(LDFLAGS) -lcmocka $(LDLIBS_CORE)

$(BUILD)/tests/test_%: $(BUILD)/tests/c/test_%.o $(TESTLIB_OBJ) $(BUILD)/libser.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(TESTLIB_OBJ) $(BUILD)/libser.a $(LDFLAGS) -lcmocka $(LDLIBS_CORE)

# The C API's example programs (examples/*.c), compiled as a user would (#include <ser/ser.h>)
# against this tree: $(BUILD)/include/ser points at src/.
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
$(BUILD)/include/ser:
	@mkdir -p $(BUILD)/include
	ln -sfn $(abspath src) $@
$(BUILD)/examples/%: examples/%.c $(BUILD)/libser.a | $(BUILD)/include/ser
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD)/include $< -o $@ $(BUILD)/libser.a $(LDFLAGS) $(LDLIBS_CORE)

test: all $(CTEST_BIN) $(if $(GRADCHECK_SRC),$(BUILD)/tests/test_gradcheck) $(EXAMPLE_BIN)
	@BUILD=$(BUILD) scripts/run-tests.sh

check-asan:
	SER_TEST_SANITIZED=1 $(MAKE) BUILD=build-asan OPT=-O1 \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: all
	@BUILD=$(BUILD) scripts/run-bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/ser \
	           $(DESTDIR)$(PREFIX)/lib/lua/5.4
	install -m 755 $(BUILD)/serlua $(DESTDIR)$(PREFIX)/bin/serlua
	install -m 644 $(BUILD)/libser.a $(DESTDIR)$(PREFIX)/lib/libser.a
	install -m 755 $(BUILD)/libser.so $(DESTDIR)$(PREFIX)/lib/libser.so
	install -m 755 $(BUILD)/ser.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/ser.so
	cd src && find . -name '*.h' ! -path './lua/*' ! -path './serlua/*' -exec install -D -m 644 {} $(DESTDIR)$(PREFIX)/include/ser/{} \;
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/^#define SER_VERSION "\(.*\)"/\1/p' src/ser.h)|' \
	  scripts/ser.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ser.pc

# Downloads RAVDESS speech (1440 files, MD5-checked, resumable) into data/ravdess.
ravdess:
	scripts/fetch-ravdess.sh data/ravdess

# Download a pretrained Whisper encoder from the Hugging Face hub into models/<name>
# (resumable; checked by value against the encoder digest in scripts/whisper-digests.txt).
whisper-base whisper-tiny.en: $(BUILD)/serlua
	SERLUA=$(BUILD)/serlua scripts/fetch-whisper.sh $@ models/$@

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)

# Fuzzing (issue 6; needs `scripts/install-deps.sh --fuzz`): tests/fuzz/run.sh builds the libFuzzer
# targets with clang (-fsanitize=fuzzer,address,undefined) into build-fuzz/, replays every input
# in tests/fuzz/regress/<target>/, then fuzzes each target FUZZ_SECONDS seconds, one at a time.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh
