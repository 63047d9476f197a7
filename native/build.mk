# Make fragment for the native addon; `include native/build.mk` from the
# top-level Makefile (paths are relative to the repository root). Built with
# g++ directly: no node-gyp, no python, no header downloads.
#
#   make native                                   (via the top-level Makefile)
#   make -f native/build.mk build/Release/sluice_native.node   (standalone)

# Prefix of the running node; its headers live in $(NODEDIR)/include/node.
NODEDIR ?= $(shell node -p "require('path').resolve(process.execPath,'../..')")
NATIVE_CXX ?= g++
NATIVE_OUT := build/Release/sluice_native.node
NATIVE_SRCS := $(wildcard native/*.cc)
NATIVE_HDRS := $(wildcard native/*.h)
NATIVE_CXXFLAGS := -O2 -std=c++17 -fPIC -shared -fno-exceptions -fvisibility=hidden \
	-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-DNAPI_DISABLE_CPP_EXCEPTIONS -DNAPI_VERSION=8 \
	-I$(NODEDIR)/include/node -Inode_modules/node-addon-api
NATIVE_LDLIBS := -lbpf -lelf -lz

.PHONY: native
native: $(NATIVE_OUT)

# Linked to a temporary name and renamed, so a process that has the old addon
# loaded keeps its (unlinked) copy and a failed build leaves no partial file.
$(NATIVE_OUT): $(NATIVE_SRCS) $(NATIVE_HDRS) native/build.mk
	@if [ ! -f "$(NODEDIR)/include/node/node_api.h" ]; then \
	  echo "error: Node-API headers not found at $(NODEDIR)/include/node/node_api.h" >&2; \
	  echo "       install the node headers for this node or set NODEDIR=<prefix containing include/node>" >&2; \
	  exit 1; \
	fi
	@if [ ! -f node_modules/node-addon-api/napi.h ]; then \
	  echo "error: node_modules/node-addon-api/napi.h missing; run npm ci" >&2; exit 1; \
	fi
	@mkdir -p $(@D)
	$(NATIVE_CXX) $(NATIVE_CXXFLAGS) -o $@.tmp $(NATIVE_SRCS) $(NATIVE_LDLIBS)
	@mv -f $@.tmp $@
