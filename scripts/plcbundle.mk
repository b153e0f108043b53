# plcbundle.mk: archiving the PLC directory with make.
#
# Include it from your own Makefile, or call it directly:
#
#   make -f scripts/plcbundle.mk archive REPO=/srv/plc
#   make -f scripts/plcbundle.mk status  REPO=/srv/plc
#
# From cron (every few minutes is fine; an overlapping run stops at once,
# saying that another writer holds the repository, and corrupts nothing):
#
#   */10 * * * *  make -s -f /path/to/plcbundle.mk archive REPO=/srv/plc >>/var/log/plc.log 2>&1
#
# Targets:
#   archive  one incremental pass into REPO from PLC_URL, then plc-index
#            (the DID index plc-did and plc-serve's DID routes read)
#   follow   the same pipeline, kept running (plc-export --follow)
#   verify   plc-verify REPO (make exits 2 if it fails; the last line
#            says whether plc-verify found problems, 1, or could not check, 2)
#   status   a short human summary of REPO from its index (needs jq)
#   clean    remove stray temporary files left by a killed writer (only
#            while no writer runs; sealed data is never touched)
#   clone    copy the archive at MIRROR (a URL or a directory) into REPO,
#            every bundle verified; continues REPO when it agrees with MIRROR
#   diff     compare REPO with MIRROR: equal, a prefix, or where they part
#            and which operations differ

REPO     ?= plc-archive
PLC_URL  ?= https://plc.directory
RATE     ?= 90
LAG      ?= 60s
INTERVAL ?= 60s
# Directory holding the plc-* binaries; empty = found on PATH.
PLC_BIN  ?=
# Extra flags for plc-export (for example --count 500 or -q).
EXPORT_FLAGS ?=
# The archive clone and diff read: a plcbundle V1 server, a static host
# serving the repository's files, or a directory.
MIRROR   ?=
# Extra flags for plc-clone (for example --jobs 8 or -q).
CLONE_FLAGS ?=

plc = $(if $(PLC_BIN),$(PLC_BIN)/,)plc

# Every recipe runs under bash with pipefail, so a failing stage fails the
# target and its message names the tool.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: archive follow verify status clean clone diff

define pipeline
$(plc)-export --url '$(PLC_URL)' --repo '$(REPO)' --rate '$(RATE)' --lag '$(LAG)' $(EXPORT_FLAGS) $(1) \
	  | $(plc)-dedup --repo '$(REPO)' \
	  | $(plc)-chunk -q \
	  | $(plc)-seal --repo '$(REPO)' --origin '$(PLC_URL)'
endef

archive:
	$(call pipeline,)
	$(plc)-index --repo '$(REPO)' -q

follow:
	$(call pipeline,--follow --interval '$(INTERVAL)')

# make itself exits 2 whenever a recipe fails, whatever the tool's code, so
# the recipe says which code plc-verify gave and what it means. A script
# that needs plc-verify's own 0/1/2 runs `plc-verify DIR` directly.
verify:
	@$(plc)-verify '$(REPO)'; code=$$?; \
	case $$code in \
	  0) ;; \
	  1) echo "verify: plc-verify found problems in $(REPO) (its exit status 1; make's is 2)" >&2 ;; \
	  *) echo "verify: plc-verify could not check $(REPO) (its exit status $$code; make's is 2)" >&2 ;; \
	esac; \
	exit $$code

# The summary status prints, as a jq program (built up with += so that it
# stays one shell word).
STATUS_JQ  = [.bundles[].operation_count] as $$ops
STATUS_JQ += | "repository:   $(REPO)",
STATUS_JQ +=   "origin:       \(.origin)",
STATUS_JQ +=   "bundles:      \(.last_bundle) (\($$ops | add // 0) operations)",
STATUS_JQ +=   "covers:       \(.bundles[0].start_time // "-") .. \(.bundles[-1].end_time // "-")",
STATUS_JQ +=   "size:         \(.total_size_bytes / 1048576 * 10 | floor / 10) MiB compressed, \(.total_uncompressed_size_bytes / 1048576 * 10 | floor / 10) MiB of JSONL",
STATUS_JQ +=   "head hash:    \(.bundles[-1].hash // "-")",
STATUS_JQ +=   "updated:      \(.updated_at)"

status:
	@test -f '$(REPO)/plc_bundles.json' || { echo "status: $(REPO) holds no archive yet" >&2; exit 2; }
	@jq -r '$(STATUS_JQ)' '$(REPO)/plc_bundles.json'

clean:
	@test -d '$(REPO)' || exit 0; \
	flock -n '$(REPO)/.plc-seal.lock' \
	  find '$(REPO)' -maxdepth 1 -type f \( -name '.[0-9]*.jsonl.zst.tmp' -o -name '.plc_bundles.json.tmp' \) -print -delete \
	  || { echo "clean: a writer is running on $(REPO); try again later" >&2; exit 2; }

need_mirror = @test -n '$(MIRROR)' || { echo "$@: set MIRROR to the archive to read (a URL or a directory)" >&2; exit 2; }

clone:
	$(need_mirror)
	$(plc)-clone --url '$(MIRROR)' --repo '$(REPO)' --origin '$(PLC_URL)' $(CLONE_FLAGS) \
	  | $(plc)-dedup --repo '$(REPO)' \
	  | $(plc)-chunk -q \
	  | $(plc)-seal --repo '$(REPO)' --origin '$(PLC_URL)'

diff:
	$(need_mirror)
	$(plc)-diff '$(REPO)' '$(MIRROR)'
