#!/bin/sh
# install-cni.sh - install the CNI plugin binaries and the flannel network
# configuration onto a Kubernetes node (DaemonSet init container and/or sidecar).
#
# POSIX sh; runs under busybox sh and dash.  Needs only: cp mv rm chmod mkdir cmp
# awk date sleep find env (all busybox applets); timeout and sync when present.
#
# Order and atomicity (see DESIGN.md section 6, reference section 3.3):
#   0. CNI_BIN_DIR and CNI_CONF_DIR must be apart (not one directory, neither
#      inside the other, symlinks resolved); else it stops before any change.
#   1. every binary of $CNI_BIN_SRC is staged next to its destination under a
#      dot-prefixed temporary name (same directory = same filesystem), chmod 0755,
#      fsync'd, and its VERSION answer checked.  Only when ALL staged binaries
#      pass are they renamed over the old ones; a plugin being executed keeps its
#      old inode (no "text file busy"), and an exec never sees a partial file.
#      A broken new binary leaves the host exactly as it was.
#   2. the network configuration is validated (JSON syntax + the fields libcni
#      needs), given a cniVersion if it has none, and written LAST the same way,
#      because its appearance is what tells the runtime the node network is ready.
#   3. with CNI_PLUGINS_CACHE_DIR set (the host's unpack cache of the binaries,
#      see build/README.md), every VERSION check unpacks into it, so the first
#      pod after an install pays no unpack; afterwards the payloads there that no
#      binary of CNI_BIN_DIR names (trailer id) and no process runs from are
#      removed.
#   4. with SLEEP=true (default, like coreos/flannel-cni) the script stays running
#      and rewrites the configuration when the mounted file changes or the
#      installed copy is removed or altered; SIGTERM ends it promptly.
#   5. with CNI_RECLAIM_SECONDS > 0 the sidecar also runs the installed
#      cni-doctor's safe reclaim that often (--reclaim-only --repair): leaked
#      reservations and orphan per-pod chains of containers nothing shows alive,
#      released through the plugins' own DEL (containerd never sends CNI GC).
#
# Environment (defaults in brackets):
#   CNI_BIN_SRC              binaries to install             [/opt/cni/bin]
#   CNI_BIN_DIR              host CNI bin dir                [/host/opt/cni/bin]
#   CNI_CONF_DIR             host CNI conf dir               [/host/etc/cni/net.d]
#   CNI_NETWORK_CONFIG       configuration text; wins over the file      [unset]
#   CNI_NETWORK_CONFIG_FILE  configuration file    [/etc/kube-flannel/cni-conf.json]
#   CNI_CONF_NAME            installed name                  [10-flannel.conflist]
#   CNI_OLD_NAME             removed when it differs         [10-flannel.conf]
#   CNI_DEFAULT_CNI_VERSION  cniVersion added to a configuration without one;
#                            set it empty to refuse such a configuration   [0.3.1]
#   SKIP_CNI_BINARIES        comma-separated names never installed          []
#   UPDATE_CNI_BINARIES      false: never overwrite an existing binary    [true]
#   SLEEP                    true: stay running as a sidecar (also --sleep /
#                            --no-sleep)                                  [true]
#   CNI_CONF_POLL_SECONDS    sidecar poll interval                          [10]
#   CNI_VERSION_TIMEOUT      seconds a VERSION check may take               [30]
#   CNI_PLUGINS_CACHE_DIR    the binaries' unpack cache on the host, as mounted
#                            here (/var/lib/cni/cni-plugins-py on the host);
#                            empty: no warming, no pruning                   []
#   CNI_RECLAIM_SECONDS      sidecar: run cni-doctor's reclaim every this many
#                            seconds (at poll granularity); 0: never          [0]
#   CNI_RECLAIM_ARGS         more cni-doctor flags for the reclaim, e.g.
#                            "--cri-socket /run/containerd/containerd.sock
#                            --grace 600 --cache-dir /var/lib/cni"            []

PROG=install-cni

log() {
	printf '%s %s: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$PROG" "$*" >&2
}

die() {
	log "ERROR: $*"
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: install-cni.sh [--sleep | --no-sleep]
Installs the CNI binaries of $CNI_BIN_SRC into $CNI_BIN_DIR (verified, atomic),
then the network configuration into $CNI_CONF_DIR/$CNI_CONF_NAME.
See the header of this script for the environment variables.
EOF
}

CNI_BIN_SRC=${CNI_BIN_SRC:-/opt/cni/bin}
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}
CNI_CONF_DIR=${CNI_CONF_DIR:-/host/etc/cni/net.d}
CNI_NETWORK_CONFIG=${CNI_NETWORK_CONFIG:-}
CNI_NETWORK_CONFIG_FILE=${CNI_NETWORK_CONFIG_FILE:-/etc/kube-flannel/cni-conf.json}
CNI_CONF_NAME=${CNI_CONF_NAME:-10-flannel.conflist}
CNI_OLD_NAME=${CNI_OLD_NAME:-10-flannel.conf}
# '-', not ':-': an explicitly empty value means "refuse".
CNI_DEFAULT_CNI_VERSION=${CNI_DEFAULT_CNI_VERSION-0.3.1}
SKIP_CNI_BINARIES=${SKIP_CNI_BINARIES:-}
UPDATE_CNI_BINARIES=${UPDATE_CNI_BINARIES:-true}
SLEEP=${SLEEP:-true}
CNI_CONF_POLL_SECONDS=${CNI_CONF_POLL_SECONDS:-10}
CNI_VERSION_TIMEOUT=${CNI_VERSION_TIMEOUT:-30}
CNI_PLUGINS_CACHE_DIR=${CNI_PLUGINS_CACHE_DIR:-}
CNI_RECLAIM_SECONDS=${CNI_RECLAIM_SECONDS:-0}
CNI_RECLAIM_ARGS=${CNI_RECLAIM_ARGS:-}

# PATH given to a plugin during its VERSION check (kubelet passes a minimal env).
CHECK_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Temporary names: dot-prefixed (never looked up as a plugin) and ending in .tmp
# (libcni only loads *.conf, *.conflist, *.json).
TMP_PREFIX=".install-cni.$$."
STATE=""
SLEEP_PID=""

while [ $# -gt 0 ]; do
	case $1 in
	--sleep) SLEEP=true ;;
	--no-sleep) SLEEP=false ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

cleanup() {
	if [ -n "$SLEEP_PID" ]; then
		kill "$SLEEP_PID" 2>/dev/null
		SLEEP_PID=""
	fi
	rm -f "$CNI_BIN_DIR/$TMP_PREFIX"*.tmp "$CNI_CONF_DIR/$TMP_PREFIX"*.tmp 2>/dev/null
	if [ -n "$STATE" ]; then
		rm -rf "$STATE"
		STATE=""
	fi
}

on_signal() {
	log "received $1, exiting"
	exit 0
}

trap cleanup EXIT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT
trap 'on_signal SIGHUP' HUP

is_bool() {
	case $1 in true | false) return 0 ;; *) return 1 ;; esac
}

is_uint() {
	case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

# A name safe to use as a file name in the host directories.
is_safe_name() {
	case $1 in
	'' | . | .. | *[!A-Za-z0-9._-]*) return 1 ;;
	*) return 0 ;;
	esac
}

# in_list NAME "a,b , c"
in_list() {
	_want=$1
	_rest=$2,
	while [ -n "$_rest" ]; do
		_item=${_rest%%,*}
		_rest=${_rest#*,}
		# trim blanks
		_item=$(printf '%s' "$_item" | tr -d ' \t')
		[ "$_item" = "$_want" ] && return 0
	done
	return 1
}

# Make a file's data durable before it is renamed into place ("where possible":
# coreutils and busybox sync accept files; otherwise sync everything).
fsync_path() {
	sync "$1" 2>/dev/null || sync
}

# Remove temporary files left by an install-cni killed mid-way (older than 10
# minutes, so a concurrent run's files are not touched).
remove_stale() {
	find "$1" -maxdepth 1 -type f -name '.install-cni.*.tmp' -mmin +10 \
		-exec rm -f {} \; 2>/dev/null
}

validate_settings() {
	is_bool "$UPDATE_CNI_BINARIES" || die "UPDATE_CNI_BINARIES must be true or false, not '$UPDATE_CNI_BINARIES'"
	is_bool "$SLEEP" || die "SLEEP must be true or false, not '$SLEEP'"
	if ! is_uint "$CNI_CONF_POLL_SECONDS" || [ "$CNI_CONF_POLL_SECONDS" -lt 1 ]; then
		die "CNI_CONF_POLL_SECONDS must be a whole number of seconds >= 1, not '$CNI_CONF_POLL_SECONDS'"
	fi
	is_uint "$CNI_RECLAIM_SECONDS" || die "CNI_RECLAIM_SECONDS must be a whole number of seconds, not '$CNI_RECLAIM_SECONDS'"
	if ! is_uint "$CNI_VERSION_TIMEOUT" || [ "$CNI_VERSION_TIMEOUT" -lt 1 ]; then
		die "CNI_VERSION_TIMEOUT must be a whole number of seconds >= 1, not '$CNI_VERSION_TIMEOUT'"
	fi
	is_safe_name "$CNI_CONF_NAME" || die "CNI_CONF_NAME '$CNI_CONF_NAME' is not a plain file name"
	case $CNI_CONF_NAME in
	*.conflist) CONF_KIND=conflist ;;
	*.conf | *.json) CONF_KIND=conf ;;
	*) die "CNI_CONF_NAME '$CNI_CONF_NAME' must end in .conflist, .conf or .json (runtimes ignore other names)" ;;
	esac
	is_safe_name "$CNI_OLD_NAME" || die "CNI_OLD_NAME '$CNI_OLD_NAME' is not a plain file name"
	case $CNI_DEFAULT_CNI_VERSION in
	'') ;;
	*[!0-9.]* | .* | *. | *..*) die "CNI_DEFAULT_CNI_VERSION '$CNI_DEFAULT_CNI_VERSION' is not a version like 1.1.0" ;;
	*.*.*) ;;
	*) die "CNI_DEFAULT_CNI_VERSION '$CNI_DEFAULT_CNI_VERSION' is not a version like 1.1.0" ;;
	esac
}

# ---------------------------------------------------------------- binaries

# check_binary PATH NAME: run PATH as the runtime would for VERSION; prints the
# reason and returns 1 when it is not a working CNI plugin.
check_binary() {
	_errf=$STATE/version.err
	# the launcher of our binaries unpacks into $CNI_PLUGINS_CACHE_DIR (warming
	# the host's cache); other plugins ignore the variable
	_bin=$1
	set -- PATH="$CHECK_PATH" CNI_COMMAND=VERSION
	[ -z "$CNI_PLUGINS_CACHE_DIR" ] || set -- "$@" CNI_PLUGINS_CACHE_DIR="$CNI_PLUGINS_CACHE_DIR"
	if command -v timeout >/dev/null 2>&1; then
		_out=$(printf '{"cniVersion":"1.1.0"}' |
			timeout "$CNI_VERSION_TIMEOUT" env -i "$@" "$_bin" 2>"$_errf")
	else
		_out=$(printf '{"cniVersion":"1.1.0"}' | env -i "$@" "$_bin" 2>"$_errf")
	fi
	_rc=$?
	_err=$(head -c 400 "$_errf" 2>/dev/null | tr '\n' ' ')
	if [ "$_rc" -ne 0 ]; then
		printf 'VERSION exited with status %s: %s%s' "$_rc" "$(printf '%s' "$_out" | head -c 200 | tr '\n' ' ')" "$_err"
		return 1
	fi
	case $_out in
	*'"supportedVersions"'*) return 0 ;;
	esac
	printf 'VERSION output has no "supportedVersions": %s' "$(printf '%s' "$_out" | head -c 200 | tr '\n' ' ')"
	return 1
}

install_binaries() {
	[ -d "$CNI_BIN_SRC" ] || die "binary source directory $CNI_BIN_SRC does not exist"
	mkdir -p "$CNI_BIN_DIR" || die "cannot create $CNI_BIN_DIR"
	[ -w "$CNI_BIN_DIR" ] || die "$CNI_BIN_DIR is not writable (is the host directory mounted read-write?)"
	remove_stale "$CNI_BIN_DIR"

	_found=0
	_staged=""
	for _src in "$CNI_BIN_SRC"/*; do
		[ -e "$_src" ] || continue # empty directory: the pattern stays literal
		_name=${_src##*/}
		if [ ! -f "$_src" ]; then
			log "skipping $_name: not a regular file"
			continue
		fi
		is_safe_name "$_name" || die "refusing binary with unsafe name '$_name' in $CNI_BIN_SRC"
		_found=$((_found + 1))
		if in_list "$_name" "$SKIP_CNI_BINARIES"; then
			log "skipping $_name (in SKIP_CNI_BINARIES)"
			continue
		fi
		_dst=$CNI_BIN_DIR/$_name
		if [ -d "$_dst" ] && [ ! -L "$_dst" ]; then
			die "$_dst is a directory; host left unchanged"
		fi
		if [ -e "$_dst" ] || [ -L "$_dst" ]; then
			if [ "$UPDATE_CNI_BINARIES" = false ]; then
				log "keeping existing $_dst (UPDATE_CNI_BINARIES=false)"
				continue
			fi
			if [ -x "$_dst" ] && cmp -s "$_src" "$_dst"; then
				log "$_name is up to date"
				continue
			fi
		fi
		_tmp=$CNI_BIN_DIR/$TMP_PREFIX$_name.tmp
		if ! { cp "$_src" "$_tmp" && chmod 0755 "$_tmp" && fsync_path "$_tmp"; }; then
			die "cannot stage $_name in $CNI_BIN_DIR; host left unchanged"
		fi
		if ! _why=$(check_binary "$_tmp" "$_name"); then
			die "new $_name refused, keeping the installed binaries; host left unchanged: $_why"
		fi
		_staged="$_staged $_name"
	done
	[ "$_found" -gt 0 ] || die "no binaries found in $CNI_BIN_SRC"

	# Every new binary answered VERSION: swap them in (rename(2): atomic).
	for _name in $_staged; do
		mv -f "$CNI_BIN_DIR/$TMP_PREFIX$_name.tmp" "$CNI_BIN_DIR/$_name" ||
			die "cannot rename the new $_name into $CNI_BIN_DIR"
		log "installed $CNI_BIN_DIR/$_name"
	done
	if [ -n "$_staged" ]; then
		fsync_path "$CNI_BIN_DIR"
	fi
}

# ------------------------------------------------------------ unpack cache

# trailer_id FILE: the payload id (64 hex) named by the trailer of one of our
# binaries (last 128 bytes: name[32] id[64] sizes/crc[24] magic "CNIPYPL1",
# build/README.md); fails for any other file.  A symlink counts as the file it
# names: the runtime execs that.
trailer_id() {
	[ -f "$1" ] || return 1
	[ "$(tail -c 8 "$1" 2>/dev/null)" = CNIPYPL1 ] || return 1
	_id=$(tail -c 96 "$1" | head -c 64)
	case $_id in
	*[!0-9a-f]*) return 1 ;;
	esac
	[ ${#_id} -eq 64 ] || return 1
	printf '%s' "$_id"
}

# Every installed binary of ours answers VERSION once more with the cache
# pointed at the host's: the binaries that were up to date (not checked above)
# get their payload unpacked too, e.g. after the cache was emptied.
warm_cache() {
	for _src in "$CNI_BIN_SRC"/*; do
		_name=${_src##*/}
		_dst=$CNI_BIN_DIR/$_name
		in_list "$_name" "$SKIP_CNI_BINARIES" && continue
		trailer_id "$_dst" >/dev/null || continue
		if ! _why=$(check_binary "$_dst" "$_name"); then
			log "WARNING: $_dst did not answer VERSION while warming $CNI_PLUGINS_CACHE_DIR: $_why"
		fi
	done
}

# Remove the unpacked payloads no binary of CNI_BIN_DIR names.  Only what is
# provably the launcher's and unused goes: a directory named by a 64-hex id
# with the launcher's .complete marker, not named by any installed binary's
# trailer, taken under the cache's extraction lock (no launcher is unpacking)
# and under an exclusive non-blocking lock of the entry itself (every process
# running from an entry holds a shared one); it is renamed to .trash-* (what
# the launcher sweeps as a leftover) and deleted.  A binary elsewhere on the
# host that used a removed entry unpacks it again at its next exec.
prune_cache() {
	if [ ! -d "$CNI_PLUGINS_CACHE_DIR" ] || [ -L "$CNI_PLUGINS_CACHE_DIR" ]; then
		return 0
	fi
	if ! command -v flock >/dev/null 2>&1; then
		log "no flock(1): not pruning $CNI_PLUGINS_CACHE_DIR"
		return 0
	fi
	_keep=" "
	for _f in "$CNI_BIN_DIR"/*; do
		if _id=$(trailer_id "$_f"); then
			_keep="$_keep$_id "
		fi
	done
	for _entry in "$CNI_PLUGINS_CACHE_DIR"/*; do
		_id=${_entry##*/}
		case $_id in
		*[!0-9a-f]*) continue ;;
		esac
		[ ${#_id} -eq 64 ] || continue
		case $_keep in
		*" $_id "*) continue ;;
		esac
		if [ ! -d "$_entry" ] || [ -L "$_entry" ] || [ ! -f "$_entry/.complete" ]; then
			continue
		fi
		_trash=$CNI_PLUGINS_CACHE_DIR/.trash-install-cni-$$-$_id
		# shellcheck disable=SC2016 # $1/$2 belong to the inner sh
		if flock -x "$CNI_PLUGINS_CACHE_DIR/.lock" flock -n -x "$_entry" \
			sh -c 'mv "$1" "$2" && rm -rf "$2"' sh "$_entry" "$_trash"; then
			log "removed unused payload $_id from $CNI_PLUGINS_CACHE_DIR"
		else
			log "kept payload $_id in $CNI_PLUGINS_CACHE_DIR: in use (or not removable)"
		fi
	done
}

# ------------------------------------------------------------ configuration

# JSON validator (RFC 8259 syntax; byte-oriented, run with LC_ALL=C) plus the
# checks libcni applies when loading the file.  Writes the (possibly
# cniVersion-completed) text to the file `out` and prints
# "OK <cniVersion> <injected 0|1> <plugin types...>"; on failure prints the
# reason and exits 1.
# shellcheck disable=SC2016 # awk program: $ is awk's, not the shell's
VALIDATE_AWK='
function fail(m) { if (err == "") err = m " (at byte " pos ")"; return 0 }
function bad(m) { print m; exit 1 }
function ws() { while (pos <= n && index(" \t\n\r", substr(s, pos, 1)) > 0) pos++ }
function str(   c, o) {
	pos++; o = ""
	while (pos <= n) {
		c = substr(s, pos, 1)
		if (c == "\"") { pos++; STR = o; return 1 }
		if (c == "\\") {
			c = substr(s, pos + 1, 1)
			if (c != "" && index("\"\\/bfnrt", c) > 0) { o = o "\\" c; pos += 2; continue }
			if (c == "u" && substr(s, pos + 2, 4) ~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) {
				o = o "\\u" substr(s, pos + 2, 4); pos += 6; continue
			}
			return fail("invalid escape in a string")
		}
		if (index(CTL, c) > 0) return fail("control character in a string")
		o = o c; pos++
	}
	return fail("unterminated string")
}
function value(ctx,   c) {
	ws()
	if (pos > n) return fail("unexpected end of input")
	c = substr(s, pos, 1)
	if (c == "{") return object(ctx)
	if (c == "[") return array(ctx)
	if (c == "\"") { if (!str()) return 0; TYPE = "string"; return 1 }
	if (substr(s, pos, 4) == "true") { pos += 4; TYPE = "bool"; return 1 }
	if (substr(s, pos, 5) == "false") { pos += 5; TYPE = "bool"; return 1 }
	if (substr(s, pos, 4) == "null") { pos += 4; TYPE = "null"; return 1 }
	if (match(substr(s, pos, 64), /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/)) {
		pos += RLENGTH; TYPE = "number"; return 1
	}
	return fail("unexpected character \"" c "\"")
}
function object(ctx,   c, key, kctx, ptype) {
	if (++depth > 64) return fail("nesting too deep")
	pos++; ws()
	if (substr(s, pos, 1) == "}") pos++
	else for (;;) {
		ws()
		if (substr(s, pos, 1) != "\"") return fail("expected a string key")
		if (!str()) return 0
		key = STR
		ws()
		if (substr(s, pos, 1) != ":") return fail("expected \":\"")
		pos++
		kctx = ""
		if (ctx == "top" && key == "plugins") kctx = "plugins"
		if (ctx == "top" && key == "cniVersions") kctx = "versions"
		if (!value(kctx)) return 0
		if (ctx == "top") { TOP[key] = TYPE; if (TYPE == "string") TOPS[key] = STR }
		if (ctx == "plugin" && key == "type" && TYPE == "string") ptype = STR
		ws(); c = substr(s, pos, 1)
		if (c == ",") { pos++; continue }
		if (c == "}") { pos++; break }
		return fail("expected \",\" or \"}\"")
	}
	depth--
	if (ctx == "plugin") {
		if (ptype == "") return fail("plugins[" NPLUG "] has no \"type\" string")
		TYPES = TYPES " " ptype
	}
	TYPE = "object"
	return 1
}
function array(ctx,   c, i, ectx) {
	if (++depth > 64) return fail("nesting too deep")
	pos++; ws(); i = 0
	ectx = ""
	if (ctx == "plugins") ectx = "plugin"
	if (substr(s, pos, 1) == "]") pos++
	else for (;;) {
		NPLUG = i
		if (!value(ectx)) return 0
		if (ctx == "plugins" && TYPE != "object") return fail("plugins[" i "] is not an object")
		if (ctx == "versions" && TYPE != "string") return fail("cniVersions[" i "] is not a string")
		i++
		ws(); c = substr(s, pos, 1)
		if (c == ",") { pos++; continue }
		if (c == "]") { pos++; break }
		return fail("expected \",\" or \"]\"")
	}
	if (ctx == "plugins") NPLUGINS = i
	depth--
	TYPE = "array"
	return 1
}
BEGIN { CTL = ""; for (i = 1; i < 32; i++) CTL = CTL sprintf("%c", i) }
{ s = (NR == 1) ? $0 : s "\n" $0 }
END {
	n = length(s); pos = 1; err = ""; depth = 0; NPLUGINS = 0; TYPES = ""
	ws()
	if (pos > n) bad("the configuration is empty")
	start = pos
	if (substr(s, pos, 1) != "{") bad("the configuration is not a JSON object")
	if (!value("top")) bad("invalid JSON: " err)
	ws()
	if (pos <= n) bad("invalid JSON: unexpected data after the object (at byte " pos ")")
	inj = 0
	if ("cniVersion" in TOP) {
		if (TOP["cniVersion"] != "string") bad("\"cniVersion\" must be a string")
		ver = TOPS["cniVersion"]
		if (ver !~ /^[0-9]+\.[0-9]+\.[0-9]+$/) bad("\"cniVersion\" \"" ver "\" is not a version like 1.1.0")
	} else {
		if (defver == "") bad("the configuration has no \"cniVersion\" (add e.g. \"cniVersion\": \"1.1.0\")")
		ver = defver; inj = 1
	}
	if (("cniVersions" in TOP) && TOP["cniVersions"] != "array") bad("\"cniVersions\" must be an array of strings")
	if (kind == "conflist") {
		if (TOP["name"] != "string" || TOPS["name"] == "") bad("a .conflist needs a non-empty \"name\" string")
		if (TOP["plugins"] != "array") bad("a .conflist needs a \"plugins\" array")
		if (NPLUGINS == 0) bad("\"plugins\" is empty")
	} else {
		if (TOP["type"] != "string" || TOPS["type"] == "") bad("a .conf needs a non-empty \"type\" string")
		TYPES = " " TOPS["type"]
	}
	if (inj) s = substr(s, 1, start) "\"cniVersion\":\"" ver "\"," substr(s, start + 1)
	printf "%s\n", s > out
	close(out)
	print "OK " ver " " inj TYPES
	exit 0
}
'

# render_conf SRC OUT: validate SRC, write the text to install to OUT.  Prints
# the awk status line (or the reason of a refusal) on stdout.
render_conf() {
	rm -f "$2"
	LC_ALL=C awk -v kind="$CONF_KIND" -v defver="$CNI_DEFAULT_CNI_VERSION" -v out="$2" \
		"$VALIDATE_AWK" "$1"
}

# snapshot_source OUT: copy the configuration source to OUT (no shell expansion).
snapshot_source() {
	if [ -n "$CNI_NETWORK_CONFIG" ]; then
		printf '%s\n' "$CNI_NETWORK_CONFIG" >"$1"
	elif [ -f "$CNI_NETWORK_CONFIG_FILE" ]; then
		cp "$CNI_NETWORK_CONFIG_FILE" "$1"
	else
		log "no network configuration: CNI_NETWORK_CONFIG is empty and $CNI_NETWORK_CONFIG_FILE does not exist"
		return 1
	fi
}

# write_conf RENDERED: put it in place atomically (temp in the same directory,
# fsync, rename), then remove CNI_OLD_NAME.
write_conf() {
	_dst=$CNI_CONF_DIR/$CNI_CONF_NAME
	if [ -f "$_dst" ] && cmp -s "$1" "$_dst"; then
		log "$_dst is up to date"
	else
		_tmp=$CNI_CONF_DIR/$TMP_PREFIX$CNI_CONF_NAME.tmp
		if ! { cp "$1" "$_tmp" && chmod 0644 "$_tmp" && fsync_path "$_tmp" && mv -f "$_tmp" "$_dst"; }; then
			rm -f "$_tmp"
			log "cannot write $_dst"
			return 1
		fi
		fsync_path "$CNI_CONF_DIR"
		log "wrote $_dst"
	fi
	if [ "$CNI_OLD_NAME" != "$CNI_CONF_NAME" ] && { [ -e "$CNI_CONF_DIR/$CNI_OLD_NAME" ] || [ -L "$CNI_CONF_DIR/$CNI_OLD_NAME" ]; }; then
		rm -f "$CNI_CONF_DIR/$CNI_OLD_NAME" || {
			log "cannot remove $CNI_CONF_DIR/$CNI_OLD_NAME"
			return 1
		}
		log "removed old $CNI_CONF_DIR/$CNI_OLD_NAME"
	fi
	return 0
}

# install_conf: snapshot, validate and write the configuration.  Returns 1 (after
# logging why) when it was refused; the installed configuration is then untouched.
install_conf() {
	snapshot_source "$STATE/source.new" || return 1
	cp "$STATE/source.new" "$STATE/source.seen"
	if ! _res=$(render_conf "$STATE/source.new" "$STATE/rendered.new"); then
		log "configuration refused, keeping $CNI_CONF_DIR/$CNI_CONF_NAME as it is: ${_res:-validator failed}"
		return 1
	fi
	set -f
	# shellcheck disable=SC2086 # split the status line into words
	set -- $_res
	set +f
	_ver=$2
	_inj=$3
	shift 3
	if [ "$_inj" = 1 ]; then
		log "WARNING: the configuration has no cniVersion; installing it with \"cniVersion\": \"$_ver\" (CNI_DEFAULT_CNI_VERSION)"
	fi
	for _t in "$@"; do
		if [ ! -x "$CNI_BIN_DIR/$_t" ]; then
			log "WARNING: the configuration uses plugin \"$_t\", which is not in $CNI_BIN_DIR"
		fi
	done
	if ! write_conf "$STATE/rendered.new"; then
		rm -f "$STATE/source.seen" # not installed: the sidecar retries at its next poll
		return 1
	fi
	mv -f "$STATE/rendered.new" "$STATE/rendered"
	return 0
}

# One sidecar poll: reinstall when the source changed or the installed copy was
# removed or altered.  A refused source is reported once, not on every poll.
sync_conf() {
	if ! snapshot_source "$STATE/source.poll" 2>/dev/null; then
		return 0
	fi
	if ! cmp -s "$STATE/source.poll" "$STATE/source.seen"; then
		log "network configuration source changed"
		install_conf
		return 0
	fi
	if [ -f "$STATE/rendered" ] && ! cmp -s "$STATE/rendered" "$CNI_CONF_DIR/$CNI_CONF_NAME"; then
		log "$CNI_CONF_DIR/$CNI_CONF_NAME is missing or was changed; rewriting it"
		write_conf "$STATE/rendered"
	fi
	return 0
}

# The absolute, symlink-free form of directory $1, which need not exist yet:
# its deepest existing ancestor resolved by cd -P, the rest appended as given.
resolve_dir() {
	_p=$1
	_rest=
	case $_p in /*) ;; *) _p=$(pwd -P)/$_p ;; esac
	while :; do
		case $_p in */) [ "$_p" = / ] && break ;; *) break ;; esac
		_p=${_p%/}
	done
	while [ ! -d "$_p" ]; do
		_rest=/${_p##*/}$_rest
		_p=${_p%/*}
		[ -n "$_p" ] || _p=/
	done
	_p=$(cd -P -- "$_p" && pwd -P) || return 1
	printf '%s\n' "${_p%/}$_rest"
}

# The bin dir and the conf dir must be apart: in one directory the runtime
# would try every *.conf* as a plugin and every plugin as a config, and the
# pruning of stale temporary files of one would hit the other.
check_dirs_apart() {
	_bin=$(resolve_dir "$CNI_BIN_DIR") || die "cannot resolve CNI_BIN_DIR $CNI_BIN_DIR"
	_conf=$(resolve_dir "$CNI_CONF_DIR") || die "cannot resolve CNI_CONF_DIR $CNI_CONF_DIR"
	_why=
	if [ "$_bin" = "$_conf" ]; then
		_why="are the same directory ($_bin)"
	else
		case $_conf/ in "${_bin%/}/"*) _why="nest: $_conf is inside $_bin" ;; esac
		case $_bin/ in "${_conf%/}/"*) _why="nest: $_bin is inside $_conf" ;; esac
	fi
	[ -z "$_why" ] ||
		die "CNI_BIN_DIR ($CNI_BIN_DIR) and CNI_CONF_DIR ($CNI_CONF_DIR) $_why after resolving symlinks; use separate directories (host left unchanged)"
}

# ------------------------------------------------------------------ reclaim

# Release what pods whose DEL never came left behind: cni-doctor decides what is
# dead (no libcni cache entry with a live netns, no plugin running for it, its
# address in no namespace, not in the CRI sandbox list when a socket is given,
# older than --grace) and releases it through the plugins' own DEL.  Its
# findings and actions go to our log; a failure is logged, never fatal.
reclaim() {
	_doctor=$CNI_BIN_DIR/cni-doctor
	if [ ! -x "$_doctor" ]; then
		log "reclaim: $_doctor is not installed"
		return 0
	fi
	set -- --reclaim-only --repair --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR"
	# shellcheck disable=SC2086 # CNI_RECLAIM_ARGS is a list of flags
	set -- "$@" $CNI_RECLAIM_ARGS
	if [ -n "$CNI_PLUGINS_CACHE_DIR" ]; then
		env CNI_PLUGINS_CACHE_DIR="$CNI_PLUGINS_CACHE_DIR" "$_doctor" "$@" >"$STATE/reclaim.out" 2>&1
	else
		"$_doctor" "$@" >"$STATE/reclaim.out" 2>&1
	fi
	_status=$?
	while IFS= read -r _line; do
		log "reclaim: $_line"
	done <"$STATE/reclaim.out"
	[ "$_status" -le 1 ] || log "WARNING: reclaim: cni-doctor exited with status $_status"
	return 0
}

# ------------------------------------------------------------------- main

validate_settings
check_dirs_apart
STATE=$(mktemp -d "${TMPDIR:-/tmp}/install-cni.XXXXXX") || die "cannot create a temporary directory"

log "installing CNI binaries from $CNI_BIN_SRC into $CNI_BIN_DIR"
install_binaries
if [ -n "$CNI_PLUGINS_CACHE_DIR" ]; then
	warm_cache
	prune_cache
fi

mkdir -p "$CNI_CONF_DIR" || die "cannot create $CNI_CONF_DIR"
[ -w "$CNI_CONF_DIR" ] || die "$CNI_CONF_DIR is not writable (is the host directory mounted read-write?)"
remove_stale "$CNI_CONF_DIR"
install_conf || die "network configuration not installed"
log "done"

[ "$SLEEP" = true ] || exit 0

log "sidecar mode: watching the network configuration every ${CNI_CONF_POLL_SECONDS}s"
[ "$CNI_RECLAIM_SECONDS" -eq 0 ] || log "sidecar mode: reclaiming leaked pod state every ${CNI_RECLAIM_SECONDS}s"
NEXT_RECLAIM=0
while :; do
	sleep "$CNI_CONF_POLL_SECONDS" &
	SLEEP_PID=$!
	wait "$SLEEP_PID"
	SLEEP_PID=""
	sync_conf
	if [ "$CNI_RECLAIM_SECONDS" -gt 0 ]; then
		_now=$(date +%s)
		if [ "$_now" -ge "$NEXT_RECLAIM" ]; then
			reclaim
			NEXT_RECLAIM=$((_now + CNI_RECLAIM_SECONDS))
		fi
	fi
done
