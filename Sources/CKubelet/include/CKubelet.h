// The few Linux calls the kubelet and its container shim need that Swift cannot reach through
// Glibc (variadic prctl and ioctl, pseudo-terminal set-up): becoming a child subreaper (so that a
// container's init, orphaned when `runc run --detach` exits, is reparented to the shim, which can then
// learn its exit status), opening a pty pair for `kubectl exec -t`, and resizing it.
#ifndef CKUBELET_H
#define CKUBELET_H

#include <sys/types.h>
#include <stddef.h>
#include <time.h>

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to the caller; -1 with errno.
int ckl_set_child_subreaper(void);

/// Opens a new pseudo-terminal: the master descriptor (close-on-exec) and the path of its
/// slave in `slave_path` (at most `length` bytes); -1 with errno.
int ckl_open_pty(char *slave_path, size_t length);

/// Sets the window size of the terminal behind `fd` (TIOCSWINSZ); -1 with errno.
int ckl_set_window_size(int fd, unsigned short columns, unsigned short rows);



/// mknod(path, S_IFCHR, makedev(0, 0)): an overlayfs whiteout; -1 with errno.
int ckl_make_whiteout(const char *path);

/// setxattr(path, "trusted.overlay.opaque", "y"): an overlayfs opaque directory; -1 with errno.
int ckl_make_opaque(const char *path);

/// makedev(major, minor) and its inverse, which are macros in C.
unsigned long long ckl_makedev(unsigned int major, unsigned int minor);
unsigned int ckl_major(unsigned long long device);
unsigned int ckl_minor(unsigned long long device);

/// mount(2) of a file system without a device: `fstype` ("overlay", "tmpfs") at `target` with
/// the comma-separated `data`; nosuid and nodev when `nosuid_nodev`; -1 with errno.
int ckl_mount_fs(const char *fstype, const char *target, const char *data, int nosuid_nodev);

/// A bind mount (recursive when `recursive`) of `source` at `target`, remounted read-only when
/// `readonly` (the bind is undone when that fails); -1 with errno.
int ckl_bind_mount(const char *source, const char *target, int recursive, int readonly);

/// umount2(target, UMOUNT_NOFOLLOW), lazily (MNT_DETACH) when `detach`; -1 with errno.
int ckl_unmount(const char *target, int detach);

/// Makes the mount at `target` (and those under it) private: mounts made below it are not
/// propagated elsewhere, nor into it; -1 with errno.
int ckl_make_private(const char *target);

/// Whether `path` is a namespace file (its file system is nsfs): 1, 0, or -1 with errno.
int ckl_is_nsfs(const char *path);

/// Marks directory `path` as the top of a hierarchy for ext4's Orlov allocator (`chattr +T`,
/// FS_TOPDIR_FL): the directories made in it are spread over the block groups with the most
/// free inodes and the fewest directories, rather than placed beside it. 0, or -1 with errno
/// (ENOTTY, EOPNOTSUPP on file systems without the flag).
int ckl_mark_top_directory(const char *path);

/// Starts a pod's pause process: unshare(CLONE_NEWPID), then fork(2); the child is PID 1 of the
/// new namespace, reaps every child it is given and exits on SIGTERM or SIGINT (pause.c). Its
/// stdio is /dev/null and it holds no other descriptor. Returns the child's pid (in the
/// caller's namespace), or -1 with errno.
pid_t ckl_start_pause(void);

/// Makes a pod's UTS and IPC namespaces — and a network namespace with `lo` up when `net` is
/// not NULL — on a thread of their own (namespaces belong to a thread; that thread ends after),
/// sets the UTS one's hostname, and pins each at its path (an existing file) by a bind mount of
/// /proc/thread-self/ns/<kind>. What `unshare --uts=… --ipc=… --net=… hostname …` did, without
/// its two processes. 0, or -1 with errno and `step` naming the call that failed; a pin made
/// before a failure stays (the caller removes the sandbox).
int ckl_make_pod_namespaces(const char *hostname, const char *uts, const char *ipc, const char *net, const char **step);

// ---- What the container shim (`ballast-shim`, Sources/BallastShim) and the kubelet share: the
// names of the records in a container's directory, their JSON, and the CRI log's lines
// (records.c). One definition, here: the kubelet reads what the shim writes.

/// The records a container's shim writes in the container's directory (ContainerRecord.swift):
/// `state.json` once the container runs (with the shim's pid), `exit.json` once it ended (or never
/// started). `shim.pid` (the shim's pid alone) is what shims before `state.json` carried that
/// pid wrote at their start: a kubelet still reads it for those.
#define CKL_RECORD_STARTED "state.json"
#define CKL_RECORD_EXIT "exit.json"
#define CKL_RECORD_SHIM_PID "shim.pid"
/// The shim's executable, beside the kubelet's (`ballast`); built by `swift build` (every product)
/// or `swift build --product ballast-shim`.
#define CKL_SHIM_EXECUTABLE "ballast-shim"

/// The longest piece of a CRI log line; longer lines become partial (P) lines.
#define CKL_CRI_MAX_LINE 16384

/// Seconds from 1970 to 2001-01-01, the reference date of the records' times (they are JSON
/// numbers of seconds since then, as Swift's JSONEncoder writes a Date by default).
#define CKL_REFERENCE_DATE_OFFSET 978307200LL

/// Writes `length` bytes to `path` in place (created mode 0644, or truncated); with `durable`,
/// fsynced before it is closed. 0, or -1 with errno.
int ckl_write_file(const char *path, const char *data, size_t length, int durable);

/// Writes `length` bytes to `path` atomically: a temporary file beside it, renamed over `path`;
/// with `durable`, the file is fsynced before the rename and the directory after it (what a
/// machine crash must not lose). 0, or -1 with errno.
int ckl_write_file_atomic(const char *path, const char *data, size_t length, int durable);

/// `state.json`: {"pid":…,"shimPid":…,"startedAt":…} (ContainerStarted): the container's init and
/// the shim that owns it; atomic, not durable: it names processes that a machine crash ends, so
/// after one the kubelet finds the shim gone with or without it (two fsyncs fewer per container
/// start). 0, or -1 with errno.
int ckl_write_started(const char *path, int pid, int shim_pid, const struct timespec *started_at);

/// `exit.json` (ContainerExit): the exit code, the signal that ended it (0: none), whether the
/// OOM killer did, when it started (NULL: never), when it ended, and why it never started
/// (NULL: it did; escaped as JSON, invalid UTF-8 replaced by U+FFFD); atomic and durable. 0, or
/// -1 with errno.
int ckl_write_exit(const char *path, int exit_code, int signal, int oom_killed, const struct timespec *started_at,
                   const struct timespec *finished_at, const char *start_failure);

/// RFC 3339 in UTC with nanoseconds, trailing zeros (and a zero fraction) trimmed, as Go's
/// `time.RFC3339Nano` prints it: the CRI log's timestamps. Needs 31 bytes; the length written.
int ckl_cri_timestamp(char *buffer, size_t size, long long seconds, long nanoseconds);

/// Opens (creating it and its directory, appending) a container's CRI log; -1 with errno.
int ckl_cri_open_log(const char *path);

/// One stream (stdout or stderr) of a container copied into its CRI log, line by line: bytes
/// are fed as they come, a full line is written as one `<time> <stream> F <line>` entry, a line
/// longer than CKL_CRI_MAX_LINE is cut into P entries; `ckl_cri_stream_end` writes what is
/// left (an unterminated last line, as F) and frees the stream.
struct ckl_cri_stream;
struct ckl_cri_stream *ckl_cri_stream_new(int log_fd, const char *stream);
void ckl_cri_stream_feed(struct ckl_cri_stream *stream, const char *bytes, size_t length);
void ckl_cri_stream_end(struct ckl_cri_stream *stream);

#endif
