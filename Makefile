# rdaxfs: a DAX filesystem for persistent memory, as a Rust kernel module.
#
#   make run     build what is missing, boot the guest with pmem, show rdaxfs working
#   make check   build everything and run every test; ends with "N passed, N failed"
#   make shell   boot the guest and get a shell (exit with Ctrl-A x)
#
# KDIR=/path/to/linux builds the module against your own Rust-enabled 6.12.y
# tree instead of the cached guest kernel.

TOP    := $(CURDIR)
BUILD  := $(TOP)/build
export PATH := $(HOME)/.cargo/bin:$(PATH)
MUSL   := x86_64-unknown-linux-musl
BINDIR := $(TOP)/target/$(MUSL)/release
KTREE   = $(or $(KDIR),$$(cat $(BUILD)/kdir))
PMEM   ?= memmap

.PHONY: all setup kernel module tools guest-bins initramfs run shell check explore clean

all: module tools

setup:
	@scripts/setup.sh

kernel: setup
	@mkdir -p $(BUILD)
ifeq ($(KDIR),)
	@scripts/kernel.sh > $(BUILD)/kdir.tmp && tail -n 1 $(BUILD)/kdir.tmp > $(BUILD)/kdir && rm -f $(BUILD)/kdir.tmp
endif

module: kernel
	$(MAKE) -C $(KTREE) M=$(TOP) $(if $(CLIPPY),CLIPPY=1) modules

tools: setup
	cargo build --release -p rdaxfs-tools

guest-bins: setup
	cargo build --release --target $(MUSL) -p rdaxfs-guest -p rdaxfs-tools

initramfs: module guest-bins
	scripts/initramfs.sh $(TOP)/rdaxfs.ko $(BINDIR) $(BUILD)/initramfs.cpio.gz

run: initramfs
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(BUILD)/initramfs.cpio.gz \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-run.img --tests demo --timeout 300

shell: initramfs
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(BUILD)/initramfs.cpio.gz \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-run.img --tests demo,shell --interactive

# The crash-state explorer alone: N generated workloads (default 300),
# STRICT=1 fails on any violation, STATES caps the states per crash point,
# BUDGET the states checked per workload (0 = all).
N      ?= 300
STRICT ?= 0
STATES ?= 8
BUDGET ?= 40
explore: initramfs
	RDAXFS_GUEST_ENV="RDAXFS_EXPLORE_N=$(N) RDAXFS_EXPLORE_STRICT=$(STRICT) RDAXFS_EXPLORE_STATES=$(STATES) RDAXFS_EXPLORE_BUDGET=$(BUDGET)" \
	scripts/guest.sh --kernel $(KTREE)/arch/x86/boot/bzImage --initrd $(BUILD)/initramfs.cpio.gz \
	  --pmem $(PMEM) --image $(BUILD)/nvdimm-explore.img --smp 4 --tests crash-explore --timeout 1500 \
	  --log $(BUILD)/explore.log

check: setup kernel
	@scripts/check.sh

clean:
	-$(MAKE) -C $(KTREE) M=$(TOP) clean 2>/dev/null
	rm -rf $(BUILD) target
