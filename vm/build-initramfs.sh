#!/bin/sh
# Builds the test VM's initramfs: static busybox, vm/init, and the modules
# that mount the host root over virtio-9p, taken from the Debian kernel KVER.
# usage: vm/build-initramfs.sh KVER OUTPUT.cpio.gz
set -eu
kver=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"
moddir=/lib/modules/$kver/kernel
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
[ -n "$busybox" ] || { echo "busybox-static is not installed" >&2; exit 1; }
[ -d "$moddir" ] || { echo "no modules for kernel $kver in $moddir" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/modules"
cp "$busybox" "$stage/bin/busybox"
cp "$here/init" "$stage/init"
chmod 755 "$stage/init"
: > "$stage/modules.list"
for m in $mods; do
	f=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n 1)
	if [ -z "$f" ]; then
		# Built in (6.12 has VIRTIO_PCI=y) or merged into another module
		# (6.12's netfs contains fscache): nothing to load. If 9p truly
		# cannot load, the VM says so when it mounts the host root.
		grep -q "/$m.ko" "/lib/modules/$kver/modules.builtin" 2>/dev/null ||
			echo "note: no module $m for $kver, skipping" >&2
		continue
	fi
	case "$f" in
	*.xz) xz -dc "$f" > "$stage/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" > "$stage/modules/$m.ko" ;;
	*) cp "$f" "$stage/modules/$m.ko" ;;
	esac
	echo "$m" >> "$stage/modules.list"
done
(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
