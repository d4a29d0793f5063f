# rdaxfs: a DAX filesystem for persistent memory, as a Rust kernel module.
#
#   make run     build what is missing, boot the guest with pmem, show rdaxfs working
#   make check   build everything and run every test; ends with "N passed, N failed"
#   make shell   boot the guest and get a shell (exit with Ctrl-A x)
#   make powercut CUTS=200   the power-cut loop (scripts/powercut.sh; POWERCUT_STRICT=1,
#                POWERCUT_MIN/POWERCUT_MAX seconds, POWERCUT_SEED)
#   make mount-time      recovery mount time after a power cut with 0, 10k, 100k files
#   make bench-journal   metadata and fault benchmarks: now, before the journal, ext4-DAX
#   make fstests [TESTS="generic/001 generic/013"] [LIST=qemu/fstests.list] [FSTESTS=tree|tarball]
#                fstests' ./check on rdaxfs and ext4 -o dax in the guest; prints a table
#   make stress DURATION=10m   fsstress + fsx (mmap) + guest-test stress on rdaxfs, then fsck -n
#   make bench [REPS=5] [QUICK=1]   fxmark-style workloads, rdaxfs vs ext4 -o dax, alternating
#                in one boot; table, build/bench/bench.csv and PNG plots (scripts/bench.sh)
#
# KDIR=/path/to/linux builds the module against your own Rust-enabled tree
# (6.12.y or 7.3.y) instead of the cached guest kernel; its series (from
# `make kernelversion` there) selects KVER.
#
# KVER=7.3 (default 6.12) builds, runs and tests against the newest stable
# kernel instead: scripts/kernel.sh fetches and builds it (cached apart from
# 6.12), the module is built in build/src-7.3 (a tree of symlinks to the
# sources, so that no object of one kernel is ever taken for the other's) and
# the initramfs is build/initramfs-7.3.cpio.gz: both kernels' builds coexist.
# `make check` runs both kernels (CHECK_ONLY=6.12 or 7.3: one of them).

TOP    := $(CURDIR)
BUILD  := $(TOP)/build
export PATH := $(HOME)/.cargo/bin:$(PATH)
MUSL   := x86_64-unknown-linux-musl
BINDIR := $(TOP)/target/$(MUSL)/release
ifneq ($(KDIR),)
KDIR_SERIES := $(shell $(MAKE) -s --no-print-directory -C '$(KDIR)' kernelversion 2>/dev/null | cut -d. -f1,2)
ifeq ($(KDIR_SERIES),)
$(error KDIR=$(KDIR) is not a configured kernel tree (make kernelversion failed there))
endif
KVER   ?= $(KDIR_SERIES)
ifneq ($(KVER),$(KDIR_SERIES))
$(error KDIR=$(KDIR) is a $(KDIR_SERIES) tree but KVER=$(KVER): drop KVER or name a $(KVER) tree)
endif
endif
KVER   ?= 6.12
ifeq ($(KVER),6.12)
KDIRFILE := $(BUILD)/kdir
MODOUT   := $(TOP)
INITRD   := $(BUILD)/initramfs.cpio.gz
else
KDIRFILE := $(BUILD)/kdir-$(KVER)
MODOUT   := $(BUILD)/src-$(KVER)
INITRD   := $(BUILD)/initramfs-$(KVER).cpio.gz
endif
KTREE   = $(or $(KDIR),$$(cat $(KDIRFILE)))
PMEM   ?= memmap

.PHONY: all setup kernel module tools guest-bins initramfs run shell check clean corrupt-mount powercut explore mount-time bench-journal bench fstests stress

all: module tools

setup:
	@scripts/setup.sh

kernel: setup
	@mkdir -p $(BUILD)
ifeq ($(KDIR),)
	@KVER=$(KVER) scripts/kernel.sh > $(KDIRFILE).tmp && tail -n 1 $(KDIRFILE).tmp > $(KDIRFILE) && rm -f $(KDIRFILE).tmp
endif

module: kernel
ifneq ($(MODOUT),$(TOP))
	@# Sources only: the 6.12 build leaves its objects next to them in the tree.
	@mkdir -p $(MODOUT) && find $(MODOUT) -type l -delete
	@cd $(TOP) && find Kbuild scripts/bindgen.sh rust format/src -type f \
	  \( -name Kbuild -o -name '*.rs' -o -name '*.c' -o -name '*.h' -o -name '*.sh' \) | \
	  while read -r f; do mkdir -p $(MODOUT)/$$(dirname $$f) && ln -s $(TOP)/$$f $(MODOUT)/$$f; done
endif
	$(MAKE) -C $(KTREE) M=$(MODOUT) $(if $(CLIPPY),CLIPPY=1) modules

tools: setup
	cargo build --release -p rdaxfs-tools

guest-bins: setup
	cargo build --release --target $(MUSL) -p rdaxfs-guest -p rdaxfs-tools

initramfs: module guest-bins
	scripts/initramfs.sh $(MODOUT)/rdaxfs.ko $(BINDIR) $(INITRD)

run: initramfs
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(INITRD) \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-run.img --tests demo --timeout 300

shell: initramfs
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(INITRD) \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-run.img --tests demo,shell --interactive

# The corrupted-image mount test at full length (make check runs 150 images):
#   make corrupt-mount [N=2000] [SEED=1] [MAX=2 (mutations per image)]
N    ?= 2000
SEED ?= 1
MAX  ?= 2
corrupt-mount: initramfs
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(INITRD) \
	  --pmem memmap --smp 2 --tests corrupt-mount --env RDAXFS_CORRUPT_N=$(N) --env RDAXFS_CORRUPT_SEED=$(SEED) --env RDAXFS_CORRUPT_MAX=$(MAX) \
	  --timeout $$(( 600 + $(N) )) --log $(BUILD)/corrupt-mount.log > /dev/null
	@grep -E '^corrupt-mount|RDAXFS-TEST|FAIL' $(BUILD)/corrupt-mount.log
	@scripts/logscan.sh $(BUILD)/corrupt-mount.log
	@grep -q 'RDAXFS-TEST: corrupt-mount PASS' $(BUILD)/corrupt-mount.log

# The crash-state explorer alone: WORKLOADS generated workloads (default 300),
# STRICT=1 fails on any violation, STATES caps the states per crash point,
# BUDGET the states checked per workload (0 = all).
WORKLOADS ?= 300
STRICT ?= 0
STATES ?= 8
BUDGET ?= 40
explore: initramfs
	RDAXFS_GUEST_ENV="RDAXFS_EXPLORE_N=$(WORKLOADS) RDAXFS_EXPLORE_STRICT=$(STRICT) RDAXFS_EXPLORE_STATES=$(STATES) RDAXFS_EXPLORE_BUDGET=$(BUDGET)" \
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(INITRD) \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-explore.img --smp 4 --tests crash-explore --timeout 1500 \
	  --log $(BUILD)/explore.log

# fstests (scripts/fstests.sh): FSTESTS= a fstests tree or tarball (built once,
# cached under ~/.cache/rdaxfs/fstests-<key>); TESTS= or LIST= what to run;
# FSTYPES="rdaxfs ext4" (ext4 is mounted -o dax, the control).
LIST    ?= qemu/fstests.list
FSTYPES ?= rdaxfs ext4
fstests: module guest-bins
	@scripts/fstests.sh all $(if $(TESTS),--tests "$(TESTS)",--list $(LIST)) --fstypes "$(FSTYPES)" \
	  --log $(BUILD)/fstests.log
	@scripts/logscan.sh $(BUILD)/fstests.log

DURATION ?= 10m
stress: module guest-bins
	@scripts/fstests.sh initramfs $(BUILD)/fstests-initramfs.cpio.gz
	@scripts/stress.sh $(DURATION) $(BUILD)/stress.log

# Both kernels must exist first (the 7.3 one unless CHECK_ONLY=6.12 or a
# KDIR73= tree is given).
check: setup
ifneq ($(CHECK_ONLY),7.3)
	@$(MAKE) --no-print-directory kernel
endif
ifeq ($(if $(KDIR73),y)$(filter 6.12,$(CHECK_ONLY)),)
	@$(MAKE) --no-print-directory KVER=7.3 KDIR= kernel
endif
	@scripts/check.sh

CUTS ?= 200
powercut: initramfs tools
	cargo build --release -p rdaxfs-guest
	KDIR=$(KTREE) INITRD=$(INITRD) scripts/powercut.sh --cuts $(CUTS)

# Mount time after a power cut against the number of files:
#   make mount-time [FILES="0 10000 100000"] [MT_CUTS=2 (cuts per file count)]
FILES ?= 0 10000 100000
mount-time: initramfs tools
	cargo build --release -p rdaxfs-guest
	scripts/mount-time.sh --files "$(FILES)" --cuts $(or $(MT_CUTS),2)

# Metadata workloads and allocating faults: rdaxfs now, rdaxfs before the
# journal (OLD=rev) and ext4-DAX, alternating in one boot:
#   make bench-journal [ROUNDS=5] [OLD=edf4cf6^]
bench-journal: initramfs
	scripts/bench-journal.sh --rounds $(or $(ROUNDS),5) --old '$(or $(OLD),edf4cf6^)'

# The benchmark suite (guest test bench-suite): >= 5 alternating repetitions
# after a warm-up, median [min-max] and ratio of medians per workload; the
# plots are also copied to docs/bench/ for the README.
#   make bench [REPS=5] [QUICK=1 (the make check smoke size)] [BENCH_ARGS="--mt-files 0,10000"]
bench: initramfs
	nice scripts/bench.sh $(if $(QUICK),--quick,--docs $(TOP)/docs/bench) $(if $(REPS),--reps $(REPS)) $(BENCH_ARGS)

clean:
	-$(MAKE) -C $(KTREE) M=$(MODOUT) clean 2>/dev/null
	rm -rf $(BUILD) target
