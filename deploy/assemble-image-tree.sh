#!/bin/sh
# assemble-image-tree.sh - build, in a plain directory, the file tree that
# deploy/Containerfile adds to its base image (no container engine needed).
#
#   deploy/assemble-image-tree.sh OUT_DIR [CONTEXT_DIR]
#
# CONTEXT_DIR is the build context (default: the repository root); the recipe is
# $CONTAINERFILE (default CONTEXT_DIR/deploy/Containerfile).  Result:
#   OUT_DIR/rootfs/   the files of every COPY, with their --chmod modes
#   OUT_DIR/config    the image metadata, one instruction a line:
#                     FROM <image> / ENV <k>=<v> / ENTRYPOINT <json array>
# Understood: FROM, COPY [--chmod=NNNN] <one source> <dest>, ENV k=v, LABEL,
# ENTRYPOINT ["exec", "form"], comments, continuation lines.  Anything else is
# refused, so the recipe cannot drift away from what this script reproduces.
set -u

die() {
	printf 'assemble-image-tree: %s\n' "$*" >&2
	exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	die "usage: $0 OUT_DIR [CONTEXT_DIR]"
fi
OUT=$1
CONTEXT=${2:-$(cd "$(dirname "$0")/.." && pwd)}
CONTAINERFILE=${CONTAINERFILE:-$CONTEXT/deploy/Containerfile}
[ -f "$CONTAINERFILE" ] || die "no recipe at $CONTAINERFILE"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
	die "$OUT exists and is not empty"
fi
ROOTFS=$OUT/rootfs
mkdir -p "$ROOTFS" || die "cannot create $ROOTFS"
: >"$OUT/config" || die "cannot write $OUT/config"

# do_copy MODE SRC DEST (Docker semantics for one source)
do_copy() {
	_mode=$1
	_src=$CONTEXT/$2
	case $3 in
	/*) _dest=$ROOTFS$3 ;;
	*) die "COPY destination must be absolute: $3" ;;
	esac
	if [ -d "$_src" ]; then
		# a directory source copies its contents into the destination directory
		mkdir -p "$_dest" || die "cannot create $_dest"
		for _f in "$_src"/* "$_src"/.[!.]* "$_src"/..?*; do
			[ -e "$_f" ] || continue
			_n=${_f##*/}
			cp -R "$_f" "$_dest/$_n" || die "cannot copy $_f"
			[ -z "$_mode" ] || chmod -R "$_mode" "$_dest/$_n" || die "cannot chmod $_dest/$_n"
		done
		[ -n "$(ls -A "$_dest")" ] || printf 'assemble-image-tree: warning: %s is empty\n' "$2" >&2
	elif [ -f "$_src" ]; then
		case $3 in
		*/) mkdir -p "$_dest" && _dest=$_dest${2##*/} ;;
		*) mkdir -p "$(dirname "$_dest")" ;;
		esac || die "cannot create the parent of $_dest"
		cp "$_src" "$_dest" || die "cannot copy $_src"
		[ -z "$_mode" ] || chmod "$_mode" "$_dest" || die "cannot chmod $_dest"
	else
		die "COPY source not found in the context: $2"
	fi
}

instruction() {
	set -f
	# shellcheck disable=SC2086 # word splitting is the parsing
	set -- $1
	set +f
	[ $# -gt 0 ] || return 0
	_op=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
	shift
	case $_op in
	FROM) printf 'FROM %s\n' "$*" >>"$OUT/config" ;;
	LABEL) ;;
	ENV)
		for _kv in "$@"; do
			case $_kv in
			*=*) printf 'ENV %s\n' "$_kv" >>"$OUT/config" ;;
			*) die "ENV must use the k=v form: ENV $*" ;;
			esac
		done
		;;
	ENTRYPOINT)
		case $* in
		\[*\]) printf 'ENTRYPOINT %s\n' "$*" >>"$OUT/config" ;;
		*) die "ENTRYPOINT must use the exec (JSON) form" ;;
		esac
		;;
	COPY)
		_mode=""
		while [ $# -gt 0 ]; do
			case $1 in
			--chmod=*) _mode=${1#--chmod=} ;;
			--*) die "COPY option not understood: $1" ;;
			*) break ;;
			esac
			shift
		done
		[ $# -eq 2 ] || die "COPY must have exactly one source and one destination: COPY $*"
		do_copy "$_mode" "$1" "$2"
		;;
	*) die "instruction not understood (teach this script first): $_op" ;;
	esac
}

_acc=""
while IFS= read -r _line || [ -n "$_line" ]; do
	case $_line in
	'#'* | '') [ -z "$_acc" ] && continue ;;
	esac
	case $_line in
	*\\)
		_acc="$_acc${_line%\\} "
		continue
		;;
	esac
	instruction "$_acc$_line"
	_acc=""
done <"$CONTAINERFILE"
[ -z "$_acc" ] || instruction "$_acc"
printf 'assemble-image-tree: %s assembled from %s\n' "$OUT" "$CONTAINERFILE" >&2
