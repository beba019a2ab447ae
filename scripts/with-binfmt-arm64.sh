#!/bin/sh
# Run a command with the kernel able to exec arm64 (aarch64) ELF files through
# qemu-user-static, and leave binfmt_misc as it was found: mount it only if it
# is not mounted, register a handler only if no enabled one handles aarch64,
# and unregister/unmount exactly what this script added, also on failure.
# The handler gets the F flag: the kernel opens the interpreter now, so it
# works inside chroots and other mount namespaces that do not have it.
#
#     scripts/with-binfmt-arm64.sh COMMAND [ARG...]
#
# Exit status: the command's; 77 (nothing run) when qemu-user-static or
# binfmt_misc is unavailable.
set -eu
BINFMT=/proc/sys/fs/binfmt_misc
NAME=cni-plugins-aarch64
QEMU=${QEMU_AARCH64:-/usr/libexec/qemu-binfmt/aarch64-binfmt-P}
# ELF64, little-endian, e_machine EM_AARCH64 (0xb7); the mask of Debian's entry
MAGIC='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

if [ ! -x "$QEMU" ]; then
    echo "with-binfmt-arm64: $QEMU missing (install qemu-user-static)" >&2
    exit 77
fi
mounted=""
registered=""
# shellcheck disable=SC2317 # called by the EXIT trap
undo() {
    if [ -n "$registered" ]; then echo -1 >"$BINFMT/$NAME"; fi
    if [ -n "$mounted" ]; then umount "$BINFMT"; fi
}
trap undo EXIT
trap 'exit 130' INT TERM

if [ ! -e "$BINFMT/register" ]; then
    if ! mount -t binfmt_misc binfmt_misc "$BINFMT"; then
        echo "with-binfmt-arm64: cannot mount binfmt_misc on $BINFMT" >&2
        exit 77
    fi
    mounted=1
fi
handled=""
for entry in "$BINFMT"/*; do
    case $entry in */register | */status) continue ;; esac
    [ -f "$entry" ] || continue
    if grep -qx enabled "$entry" && grep -q "^magic 7f454c460201010000000000000000000200b700" "$entry"; then
        handled=$entry
    fi
done
if [ -z "$handled" ]; then
    if ! printf ':%s:M::%s:%s:%s:FP\n' "$NAME" "$MAGIC" "$MASK" "$QEMU" >"$BINFMT/register"; then
        echo "with-binfmt-arm64: cannot register $NAME" >&2
        exit 77
    fi
    registered=1
fi
status=0
"$@" || status=$?
exit "$status"
