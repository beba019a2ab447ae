/*
 * launcher.c - front of every dist/bin plugin binary.
 *
 * A binary is this launcher followed by a payload (the PyInstaller onedir
 * bundle holding all five plugins, packed by build/build.py as one zlib
 * stream) and a 128-byte trailer naming the plugin and the payload's SHA-256.
 * All five binaries carry the same payload, so one extraction serves all.
 *
 * The launcher is static (no loader, no libc of the host) and the bundle runs on
 * the glibc it carries, through its own loader (see run()): a binary needs
 * nothing from the host but the kernel.
 *
 * At exec we look for <cache>/<id>/ with a completion marker; when present and
 * owned by us (not group/world-writable, on an exec-able filesystem) we run
 * <cache>/<id>/<plugin> (a symlink to the bundle's executable; its basename
 * tells the bundle which plugin to run) with our argv tail, stdin/stdout/stderr
 * untouched and the caller's environment plus what the PyInstaller bootloader
 * would add before restarting itself (see preset_bootloader_env(); the plugins
 * strip it again for delegates and iptables, which must see exactly the
 * caller's environment).  Otherwise we extract into a private temp dir under an
 * exclusive lock, verify the CRC, fsync, write the marker and rename() the
 * whole directory into place, then exec.  Why not PyInstaller onefile: it
 * unpacks into $TMPDIR/_MEI* at every exec (>= 50 ms), fails on noexec /tmp
 * and leaks the directory when SIGKILLed.
 *
 * Errors are CNI error JSON on stdout (plus one line on stderr), exit 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define TRAILER_SIZE 128
#define MAGIC "CNIPYPL1"     /* format version is part of the magic */
#define BUNDLE_EXE "cni-plugins" /* the onedir bundle's executable */
#ifndef LOADER_NAME /* the bundled glibc loader in _internal/; build.py passes it */
#define LOADER_NAME "ld-linux-x86-64.so.2"
#endif
#define MARKER ".complete"
#define LOCK_NAME ".lock"
#define DEFAULT_CACHE "/var/lib/cni/cni-plugins-py"
#define BINDIR_CACHE ".cni-plugins-cache"
#define PRUNE_AGE_SECONDS (7 * 24 * 3600)
#define MAX_CANDIDATES 5

/* CNI error codes: 5 = I/O failure, 999 = internal (Go's types.ErrInternal) */
#define ERR_IO 5
#define ERR_INTERNAL 999

struct trailer {
	char name[32];     /* plugin name, NUL-padded */
	char id[64];       /* hex SHA-256 of the payload bytes */
	uint64_t payload_size; /* compressed bytes right before the trailer */
	uint64_t unpacked_size;
	uint32_t crc;      /* zlib crc32 of the payload bytes */
	uint32_t reserved;
	char magic[8];
};
_Static_assert(sizeof(struct trailer) == TRAILER_SIZE, "trailer layout");

static struct trailer tr;
static char plugin[33];
static char id[65];
static int self_fd = -1;
static off_t payload_off;

/* ------------------------------------------------------------ errors */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static __attribute__((noreturn)) void cni_fail(int code, const char *msg, const char *details)
{
	printf("{\n    \"cniVersion\": \"1.1.0\",\n    \"code\": %d,\n    \"msg\": ", code);
	json_str(msg);
	printf(",\n    \"details\": ");
	json_str(details);
	printf("\n}\n");
	fflush(stdout);
	fprintf(stderr, "%s: %s: %s\n", plugin[0] ? plugin : "cni-plugins", msg, details);
	exit(1);
}

/* Reasons why cache candidates were rejected, for the final error. */
static char why[4096];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	size_t n = strlen(why);
	va_list ap;
	if (n && n < sizeof(why) - 2) {
		why[n++] = ';';
		why[n++] = ' ';
		why[n] = 0;
	}
	va_start(ap, fmt);
	vsnprintf(why + n, sizeof(why) - n, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ self */

/* Open our own file and read the trailer.  /proc/self/exe survives renames
 * and unlinks of the file; without /proc (a bare chroot) the path given to
 * execve (AT_EXECFN) is the fallback.  Returns the path for the bin-dir cache. */
static void open_self(char *path, size_t len)
{
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", path, len - 1);
	if (n > 0) {
		path[n] = 0;
		self_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	}
	if (self_fd < 0) {
		const char *fn = (const char *)getauxval(AT_EXECFN);
		if (!fn || !realpath(fn, path))
			snprintf(path, len, "%s", fn ? fn : "");
		self_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (self_fd < 0 || fstat(self_fd, &st) < 0)
		cni_fail(ERR_INTERNAL, "cannot read own executable", strerror(errno));
	if (st.st_size < TRAILER_SIZE ||
	    pread(self_fd, &tr, sizeof(tr), st.st_size - TRAILER_SIZE) != TRAILER_SIZE ||
	    memcmp(tr.magic, MAGIC, 8) != 0)
		cni_fail(ERR_INTERNAL, "corrupt plugin binary: no payload trailer",
			 "the file is truncated or not a cni-plugins build; reinstall it");
	if (tr.payload_size > (uint64_t)st.st_size - TRAILER_SIZE)
		cni_fail(ERR_INTERNAL, "corrupt plugin binary: payload size exceeds the file",
			 "the file is truncated; reinstall it");
	payload_off = st.st_size - TRAILER_SIZE - (off_t)tr.payload_size;
	memcpy(plugin, tr.name, 32);
	plugin[32] = 0;
	memcpy(id, tr.id, 64);
	id[64] = 0;
	for (int i = 0; i < 64; i++)
		if (!id[i] || !strchr("0123456789abcdef", id[i]))
			cni_fail(ERR_INTERNAL, "corrupt plugin binary: bad payload id", id);
	for (const char *p = plugin; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_", *p))
			cni_fail(ERR_INTERNAL, "corrupt plugin binary: bad plugin name", plugin);
	if (!plugin[0])
		cni_fail(ERR_INTERNAL, "corrupt plugin binary: no plugin name", "");
}

/* ------------------------------------------------------------ trust */

/* Ours: owned by our euid, not writable by group or others. */
static const char *untrusted(const struct stat *st)
{
	static char buf[96];
	if (st->st_uid != geteuid()) {
		snprintf(buf, sizeof(buf), "owned by uid %u, not %u", (unsigned)st->st_uid,
			 (unsigned)geteuid());
		return buf;
	}
	if (st->st_mode & 022) {
		snprintf(buf, sizeof(buf), "group/world-writable (mode %04o)",
			 (unsigned)(st->st_mode & 07777));
		return buf;
	}
	return NULL;
}

/* mkdir -p with 0755 parents and a 0700 leaf. */
static int mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Is the nearest existing ancestor of `path` on a noexec filesystem?  (So we
 * do not create directories we would not use.) */
static int noexec_ancestor(const char *path)
{
	char tmp[PATH_MAX];
	struct statvfs sv;
	char *slash;
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return 0;
	while (statvfs(tmp, &sv) < 0) {
		if (errno != ENOENT || !(slash = strrchr(tmp, '/')) || slash == tmp)
			return 0;
		*slash = 0;
	}
	return (sv.f_flag & ST_NOEXEC) != 0;
}

/* Open cache dir `dir` if usable (creating it), else note why and return -1. */
static int open_cache(const char *dir)
{
	struct stat st;
	struct statvfs sv;
	const char *bad = NULL;
	int fd;
	if (dir[0] != '/') {
		note("%s: not an absolute path", dir);
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (noexec_ancestor(dir)) {
			note("%s: filesystem mounted noexec", dir);
			return -1;
		}
		if (mkdirs(dir) < 0) {
			note("%s: cannot create: %s", dir, strerror(errno));
			return -1;
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		note("%s: cannot open: %s", dir, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (bad = untrusted(&st)) != NULL) {
		note("%s: %s", dir, bad ? bad : strerror(errno));
		close(fd);
		return -1;
	}
	if (fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_NOEXEC)) {
		note("%s: filesystem mounted noexec", dir);
		close(fd);
		return -1;
	}
	return fd;
}

/* A complete, trustworthy entry: returns its fd, holding a shared flock (the
 * fd is inherited across exec, so a pruner never deletes a bundle in use).
 * Returns -1 if absent, -2 if present but not to be trusted (reason noted). */
static int open_entry(int cfd, const char *cdir)
{
	struct stat st;
	const char *bad = NULL;
	const char *what = "";
	int fd = openat(cfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -1 : -2;
	/* Blocks only while a pruner (exclusive) is deleting this very entry. */
	(void)flock(fd, LOCK_SH);
	if (fstat(fd, &st) < 0 || (bad = untrusted(&st)) != NULL) {
		what = "entry";
	} else if (fstatat(fd, MARKER, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		close(fd); /* no marker (or a pruner just removed it) */
		return -1;
	} else if (!S_ISREG(st.st_mode) || (bad = untrusted(&st)) != NULL) {
		what = "marker";
	} else if (fstatat(fd, BUNDLE_EXE, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		   !S_ISREG(st.st_mode) || (bad = untrusted(&st)) != NULL) {
		what = "executable";
	} else {
		return fd;
	}
	note("%s/%s: untrusted %s: %s", cdir, id, what, bad ? bad : "missing or not a file");
	close(fd);
	return -2;
}

/* Spare the bootloader its restart.  A PyInstaller onedir bootloader on Linux
 * cannot point the dynamic linker at _internal/ for itself, so at its first
 * exec it sets LD_LIBRARY_PATH and _PYI_* and exec()s itself again (one more
 * execve + dynamic link, ~1.5 ms).  We set exactly what its first stage sets
 * (PyInstaller 6.22 bootloader, pyi_main.c / pyi_utils_posix.c), so the one
 * exec we do is already its second stage:
 *   _PYI_ARCHIVE_FILE=<real path of the bundle executable> (its /proc/self/exe),
 *   _PYI_PARENT_PROCESS_LEVEL=-1 (the "restarted onedir process" mark),
 *   _PYI_LINUX_PROCESS_NAME=<our comm> (it prctl()s that name back),
 *   LD_LIBRARY_PATH=<real entry dir>/_internal[:<caller's value>] and, if the
 *   caller's value was set and non-empty, LD_LIBRARY_PATH_ORIG=<that value>
 *   (spec/invoke.clean_environ restores it for delegates and iptables),
 * in the bootloader's order (setenv: new names appended, existing replaced in
 * place).  Only for a caller environment without any _PYI_* variable or
 * PYINSTALLER_RESET_ENVIRONMENT: anything else (an inherited bundle
 * environment) is left to the bootloader's own logic, restart included.
 * build.py (a VERSION call under strace must exec the bundle exactly once) and
 * tests/integration/test_binaries.py (our environment must equal the one the
 * bootloader's own restart passes on) fail if a PyInstaller upgrade changes
 * this protocol. */
static void preset_bootloader_env(const char *cdir)
{
	extern char **environ;
	char exe[PATH_MAX], real[PATH_MAX], lib[PATH_MAX + 16], comm[16];
	const char *orig;
	size_t n;
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, "_PYI_", 5) || !strncmp(*e, "PYINSTALLER_RESET_ENVIRONMENT=", 30))
			return;
	if (snprintf(exe, sizeof(exe), "%s/%s/%s", cdir, id, BUNDLE_EXE) >= (int)sizeof(exe) ||
	    !realpath(exe, real))
		return; /* the bootloader will find its own way */
	n = strlen(real);
	if (n <= strlen(BUNDLE_EXE) + 1 || strcmp(real + n - strlen(BUNDLE_EXE), BUNDLE_EXE) ||
	    real[n - strlen(BUNDLE_EXE) - 1] != '/')
		return; /* open_entry() saw a regular file, so this cannot happen */
	n -= strlen(BUNDLE_EXE); /* keep the slash */
	if (snprintf(lib, sizeof(lib), "%.*s_internal", (int)n, real) >= (int)sizeof(lib))
		return;
	/* the kernel's comm: the exec'd file's basename, at most 15 bytes */
	snprintf(comm, sizeof(comm), "%s", plugin);
	orig = getenv("LD_LIBRARY_PATH");
	if (setenv("_PYI_ARCHIVE_FILE", real, 1) || setenv("_PYI_PARENT_PROCESS_LEVEL", "-1", 1) ||
	    setenv("_PYI_LINUX_PROCESS_NAME", comm, 1))
		goto oom;
	if (orig && *orig) { /* the bootloader takes an empty value for unset */
		char *both;
		if (setenv("LD_LIBRARY_PATH_ORIG", orig, 1) || asprintf(&both, "%s:%s", lib, orig) < 0 ||
		    setenv("LD_LIBRARY_PATH", both, 1))
			goto oom;
	} else if (setenv("LD_LIBRARY_PATH", lib, 1)) {
		goto oom;
	}
	return;
oom:
	cni_fail(ERR_INTERNAL, "out of memory", "setting up the bundle's environment");
}

/* The caller's loader variables that would make the bundled ld.so load host
 * libraries into the bundle (built for another libc, they may abort its
 * relocation): moved to _CNI_HOST_<name> for the bundle, and
 * spec/invoke.clean_environ moves them back for delegates and iptables.
 * LD_LIBRARY_PATH needs no stash: --library-path makes ld.so ignore it. */
static const char *const host_loader_vars[] = {"LD_PRELOAD", "LD_AUDIT"};
#define HOST_STASH "_CNI_HOST_"

static void stash_host_loader_vars(void)
{
	for (size_t i = 0; i < sizeof(host_loader_vars) / sizeof(host_loader_vars[0]); i++) {
		const char *name = host_loader_vars[i];
		const char *value = getenv(name);
		char stash[64];
		snprintf(stash, sizeof(stash), HOST_STASH "%s", name);
		if (!value)
			continue;
		if (setenv(stash, value, 1) || unsetenv(name))
			cni_fail(ERR_INTERNAL, "out of memory", "setting up the bundle's environment");
	}
}

/* Exec the bundle through the loader it carries, never the host's:
 *   <entry>/_internal/LOADER --inhibit-cache --library-path <entry>/_internal
 *       --argv0 <entry>/<plugin> <entry>/cni-plugins <our argv tail>
 * so that every library comes from the entry (no /etc/ld.so.cache, no
 * LD_LIBRARY_PATH; build.py patched the loader's /etc/ld.so.preload path away
 * and checked that the entry holds every library any of its ELF files needs).
 * /proc/self/exe is then the loader, which the PyInstaller bootloader
 * recognises (ld-*.so.N) and ignores: it takes realpath(argv[0]) instead, the
 * bundle executable (argv[0] is the plugin's symlink to it, whose basename
 * tells the bundle which plugin to run). */
static __attribute__((noreturn)) void run(const char *cdir, int efd, char **argv)
{
	char path[PATH_MAX], exe[PATH_MAX], loader[PATH_MAX], lib[PATH_MAX];
	char **args;
	int argc = 0, n = 0;
	/* efd stays open (no CLOEXEC): the shared lock lives on in the bundle.  If
	 * the caller closed a standard descriptor, efd may have taken its number:
	 * move it up so the plugin never reads or writes a directory. */
	if (efd < 3) {
		int high = fcntl(efd, F_DUPFD, 3);
		if (high >= 0)
			close(efd);
	}
	if (snprintf(path, sizeof(path), "%s/%s/%s", cdir, id, plugin) >= (int)sizeof(path) ||
	    snprintf(exe, sizeof(exe), "%s/%s/%s", cdir, id, BUNDLE_EXE) >= (int)sizeof(exe) ||
	    snprintf(lib, sizeof(lib), "%s/%s/_internal", cdir, id) >= (int)sizeof(lib) ||
	    snprintf(loader, sizeof(loader), "%s/%s", lib, LOADER_NAME) >= (int)sizeof(loader))
		cni_fail(ERR_IO, "cache path too long", cdir);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		char msg[96];
		snprintf(msg, sizeof(msg), "this build has no plugin named \"%s\"", plugin);
		cni_fail(ERR_INTERNAL, msg, path);
	}
	while (argv[argc])
		argc++;
	args = calloc((size_t)argc + 8, sizeof(*args));
	if (!args)
		cni_fail(ERR_INTERNAL, "out of memory", "building the bundle's argv");
	args[n++] = loader;
	args[n++] = "--inhibit-cache";
	args[n++] = "--library-path";
	args[n++] = lib;
	args[n++] = "--argv0";
	args[n++] = path; /* a full path lets the bundle find itself */
	args[n++] = exe;
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	preset_bootloader_env(cdir);
	stash_host_loader_vars();
	execv(loader, args);
	cni_fail(ERR_IO, "cannot exec the unpacked plugin bundle", strerror(errno));
}

/* ------------------------------------------------------------ removal */

static void rm_rf_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *e;
		if (!d) {
			close(fd);
			return;
		}
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				rm_rf_at(fd, e->d_name);
		}
		closedir(d);
		(void)unlinkat(dfd, name, AT_REMOVEDIR);
	} else {
		(void)unlinkat(dfd, name, 0);
	}
}

/* Move `name` out of the way (atomically: no one can exec a half-deleted
 * entry) and delete it. */
static void discard(int cfd, const char *name)
{
	char trash[128];
	snprintf(trash, sizeof(trash), ".trash-%d-%ld-%s", (int)getpid(), (long)random(), name);
	if (renameat(cfd, name, cfd, trash) == 0)
		rm_rf_at(cfd, trash);
}

/* Under the extraction lock every .tmp-* and .trash-* dir is a leftover of a
 * killed extractor or pruner; entries from other builds that no process holds
 * (shared flock) and that are older than PRUNE_AGE are removed too. */
static void sweep(int cfd)
{
	int fd = dup(cfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	time_t now = time(NULL);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		struct stat st;
		int efd;
		if (!strncmp(n, ".tmp-", 5) || !strncmp(n, ".trash-", 7)) {
			rm_rf_at(cfd, n);
			continue;
		}
		if (strlen(n) != 64 || strspn(n, "0123456789abcdef") != 64 || !strcmp(n, id))
			continue;
		efd = openat(cfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (efd < 0)
			continue;
		if (flock(efd, LOCK_EX | LOCK_NB) == 0 &&
		    (fstatat(efd, MARKER, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		     now - st.st_mtime > PRUNE_AGE_SECONDS))
			discard(cfd, n);
		close(efd);
	}
	closedir(d);
}

/* ------------------------------------------------------------ extraction */

struct reader {
	z_stream zs;
	unsigned char in[1 << 16];
	uint64_t left; /* compressed bytes not yet read */
	off_t pos;
	uint32_t crc;
	int done;
};

/* Read exactly `len` unpacked bytes.  0 on success, -1 on a corrupt payload
 * (message in `err`), -2 on a read error. */
static int get(struct reader *r, void *buf, size_t len, const char **err)
{
	r->zs.next_out = buf;
	r->zs.avail_out = (uInt)len;
	while (r->zs.avail_out) {
		int rc;
		if (r->done) {
			*err = "payload ends early";
			return -1;
		}
		if (!r->zs.avail_in && r->left) {
			size_t want = r->left < sizeof(r->in) ? (size_t)r->left : sizeof(r->in);
			ssize_t n = pread(self_fd, r->in, want, r->pos);
			if (n <= 0) {
				*err = n < 0 ? strerror(errno) : "short read";
				return -2;
			}
			r->crc = (uint32_t)crc32(r->crc, r->in, (uInt)n);
			r->pos += n;
			r->left -= (uint64_t)n;
			r->zs.next_in = r->in;
			r->zs.avail_in = (uInt)n;
		}
		rc = inflate(&r->zs, Z_NO_FLUSH);
		if (rc == Z_STREAM_END) {
			r->done = 1;
		} else if (rc != Z_OK) {
			*err = r->zs.msg ? r->zs.msg : "inflate failed";
			return -1;
		}
	}
	return 0;
}

static int safe_path(const char *p)
{
	if (!*p || *p == '/')
		return 0;
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
	}
	return 1;
}

static int fsync_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd >= 0 ? fsync(fd) : -1;
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Record format (all in the one zlib stream, integers little-endian):
 *   u8 type ('D' dir, 'F' file, 'L' symlink, 'E' end), u8 executable,
 *   u16 path length, u64 data length, path, data (file bytes or link target).
 * Directories come before their contents. */
static int unpack(int tfd, const char **err, int *io)
{
	static struct reader r;
	static unsigned char buf[1 << 16];
	char path[PATH_MAX], target[PATH_MAX];
	char dirs[64][256];
	int ndirs = 0, rc = 0;
	memset(&r.zs, 0, sizeof(r.zs));
	r.left = tr.payload_size;
	r.pos = payload_off;
	r.crc = (uint32_t)crc32(0, NULL, 0);
	r.done = 0;
	if (inflateInit(&r.zs) != Z_OK) {
		*err = "inflateInit failed";
		return -1;
	}
	for (;;) {
		unsigned char h[12];
		uint16_t plen;
		uint64_t dlen;
		if ((rc = get(&r, h, sizeof(h), err)) != 0)
			break;
		plen = (uint16_t)(h[2] | h[3] << 8);
		dlen = 0;
		for (int i = 7; i >= 0; i--)
			dlen = dlen << 8 | h[4 + i];
		if (h[0] == 'E')
			break;
		if (plen == 0 || plen >= sizeof(path)) {
			*err = "bad record";
			rc = -1;
			break;
		}
		if ((rc = get(&r, path, plen, err)) != 0)
			break;
		path[plen] = 0;
		if (!safe_path(path)) {
			*err = "unsafe path in payload";
			rc = -1;
			break;
		}
		if (h[0] == 'D') {
			if (mkdirat(tfd, path, 0700) < 0)
				goto io_error;
			if (ndirs == 64 || snprintf(dirs[ndirs++], 256, "%s", path) >= 256) {
				*err = "too many or too long directory names";
				rc = -1;
				break;
			}
		} else if (h[0] == 'L') {
			if (dlen >= sizeof(target)) {
				*err = "bad symlink record";
				rc = -1;
				break;
			}
			if ((rc = get(&r, target, (size_t)dlen, err)) != 0)
				break;
			target[dlen] = 0;
			/* links stay inside the bundle: same-directory names only */
			if (!safe_path(target) || strchr(target, '/')) {
				*err = "unsafe symlink in payload";
				rc = -1;
				break;
			}
			if (symlinkat(target, tfd, path) < 0)
				goto io_error;
		} else if (h[0] == 'F') {
			int fd = openat(tfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					h[1] ? 0500 : 0400);
			if (fd < 0)
				goto io_error;
			while (dlen) {
				size_t n = dlen < sizeof(buf) ? (size_t)dlen : sizeof(buf);
				if ((rc = get(&r, buf, n, err)) != 0)
					break;
				for (size_t off = 0; off < n;) {
					ssize_t w = write(fd, buf + off, n - off);
					if (w < 0) {
						close(fd);
						goto io_error;
					}
					off += (size_t)w;
				}
				dlen -= n;
			}
			if (rc != 0) {
				close(fd);
				break;
			}
			/* data durable before the marker: no empty files after a crash */
			if (fsync(fd) < 0 || close(fd) < 0)
				goto io_error;
		} else {
			*err = "unknown record type";
			rc = -1;
			break;
		}
	}
	if (rc == 0 && !r.done) {
		/* the end record must close the stream: one more byte must hit its end
		 * (and make zlib check its adler32) */
		unsigned char extra;
		int g = get(&r, &extra, 1, err);
		if (g == 0) {
			*err = "data after the end record";
			rc = -1;
		} else if (!r.done) {
			rc = g;
		}
	}
	if (rc == 0) {
		if (r.left != 0 || r.zs.avail_in != 0) {
			*err = "payload size mismatch";
			rc = -1;
		} else if (r.crc != tr.crc) {
			*err = "payload CRC mismatch";
			rc = -1;
		}
	}
	/* a CRC mismatch is the most useful diagnosis of any corruption */
	if (rc == -1) {
		while (r.left) { /* finish the CRC over the whole payload */
			size_t want = r.left < sizeof(r.in) ? (size_t)r.left : sizeof(r.in);
			ssize_t n = pread(self_fd, r.in, want, r.pos);
			if (n <= 0)
				break;
			r.crc = (uint32_t)crc32(r.crc, r.in, (uInt)n);
			r.pos += n;
			r.left -= (uint64_t)n;
		}
		if (!r.left && r.crc != tr.crc)
			*err = "payload CRC mismatch";
	}
	inflateEnd(&r.zs);
	if (rc == -2)
		*io = 1;
	if (rc == 0) {
		for (int i = ndirs - 1; i >= 0; i--)
			if (fsync_at(tfd, dirs[i]) < 0)
				goto io_error_nozlib;
	}
	return rc;
io_error:
	inflateEnd(&r.zs);
io_error_nozlib:
	*err = strerror(errno);
	*io = 1;
	return -2;
}

/* Extract into cache dir `cfd`; returns the new entry's fd (shared-locked),
 * or -1 after noting an I/O problem (the caller tries the next candidate).
 * A corrupt payload is fatal: no other directory would fix it. */
static int extract(int cfd, const char *cdir)
{
	char tmp[128];
	const char *err = NULL;
	int io = 0, lfd, tfd, mfd, efd, rc;
	char line[80];

	lfd = openat(cfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0) {
		note("%s: cannot create the lock file: %s", cdir, strerror(errno));
		return -1;
	}
	/* One extractor at a time: 20 concurrent first execs do the work once. */
	(void)flock(lfd, LOCK_EX);
	efd = open_entry(cfd, cdir);
	if (efd >= 0) {
		close(lfd);
		return efd; /* someone else extracted it while we waited */
	}
	/* Under the lock, whatever sits at <id> without passing open_entry (no
	 * marker, untrusted, a symlink or file) is junk: replace it. */
	discard(cfd, id);
	sweep(cfd);

	snprintf(tmp, sizeof(tmp), ".tmp-%.16s-%d", id, (int)getpid());
	rm_rf_at(cfd, tmp);
	if (mkdirat(cfd, tmp, 0700) < 0 ||
	    (tfd = openat(cfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		note("%s: cannot create a temp dir: %s", cdir, strerror(errno));
		close(lfd);
		return -1;
	}
	rc = unpack(tfd, &err, &io);
	if (rc == 0) {
		mfd = openat(tfd, MARKER, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
		snprintf(line, sizeof(line), "%s\n", id);
		if (mfd < 0 || write(mfd, line, strlen(line)) != (ssize_t)strlen(line) ||
		    fsync(mfd) < 0 || close(mfd) < 0 || fsync(tfd) < 0) {
			err = strerror(errno);
			io = 1;
			rc = -2;
		}
	}
	close(tfd);
	if (rc != 0) {
		rm_rf_at(cfd, tmp);
		close(lfd);
		if (!io) /* corrupt payload: refuse, leave no trace */
			cni_fail(ERR_INTERNAL, "corrupt plugin binary: refusing to unpack it",
				 err ? err : "unknown error");
		note("%s: extraction failed: %s", cdir, err ? err : "unknown error");
		return -1;
	}
	if (renameat(cfd, tmp, cfd, id) < 0) {
		/* lost a race with an extractor that had no lock (flock unsupported) */
		rm_rf_at(cfd, tmp);
	}
	(void)fsync(cfd);
	efd = open_entry(cfd, cdir);
	close(lfd);
	if (efd < 0)
		note("%s: the unpacked entry is unusable", cdir);
	return efd;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	char self[PATH_MAX], dirs[MAX_CANDIDATES][PATH_MAX];
	int n = 0;
	const char *env;
	(void)argc;

	open_self(self, sizeof(self));

	/* Candidates, in order (see build/README.md for why). */
	env = getenv("CNI_PLUGINS_CACHE_DIR");
	if (env && *env)
		snprintf(dirs[n++], PATH_MAX, "%s", env);
	snprintf(dirs[n++], PATH_MAX, "%s", DEFAULT_CACHE);
	if (strrchr(self, '/') && self[0] == '/')
		snprintf(dirs[n++], PATH_MAX, "%.*s/%s", (int)(strrchr(self, '/') - self), self,
			 BINDIR_CACHE);
	env = getenv("TMPDIR");
	if (env && *env && strcmp(env, "/tmp") && strcmp(env, "/tmp/"))
		snprintf(dirs[n++], PATH_MAX, "%s/cni-plugins-py-%u", env, (unsigned)geteuid());
	snprintf(dirs[n++], PATH_MAX, "/tmp/cni-plugins-py-%u", (unsigned)geteuid());

	for (int i = 0; i < n; i++) {
		int cfd = open_cache(dirs[i]);
		int efd;
		if (cfd < 0)
			continue;
		efd = open_entry(cfd, dirs[i]);
		if (efd < 0)
			efd = extract(cfd, dirs[i]);
		close(cfd);
		if (efd >= 0)
			run(dirs[i], efd, argv);
	}
	cni_fail(ERR_IO, "no usable directory to unpack the plugin bundle into", why);
}
