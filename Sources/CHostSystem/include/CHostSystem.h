// The few Linux calls HostSystem needs that Swift cannot reach through Glibc: pidfd_open and
// pidfd_send_signal (raw syscalls; glibc wraps them only from 2.36), umount2 with
// UMOUNT_NOFOLLOW (sys/mount.h is not in Swift's Glibc module), statx (a mount root, without
// reading the mount table), and the GNU extensions of
// posix_spawn (a new session, a working directory, closing inherited descriptors), which
// spawn.h declares only under _GNU_SOURCE. It also brings epoll (sys/epoll.h) to Swift.
#ifndef CHOSTSYSTEM_H
#define CHOSTSYSTEM_H

#include <spawn.h>
#include <sys/epoll.h>
#include <sys/types.h>

/// A descriptor that becomes readable when process `pid` exits; -1 with errno when the kernel
/// lacks pidfds (before 5.3) or a sandbox forbids them.
int chs_pidfd_open(pid_t pid);

/// Sends `signal` to the process of `pidfd` (never to a recycled pid); -1 with errno.
int chs_pidfd_send_signal(int pidfd, int signal);

/// Names the calling thread (at most 15 bytes are kept); 0, or an error number.
int chs_name_thread(const char *name);

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from the start; -1 with errno.
int chs_pipe_cloexec(int fds[2]);

/// POSIX_SPAWN_SETSID: the child leads a new session (and process group).
short chs_spawn_setsid_flag(void);

/// umount2(path, UMOUNT_NOFOLLOW): unmounts without following a symlink at `path`; -1 with errno.
int chs_umount_nofollow(const char *path);

/// Whether `path` (not followed if a symlink) is the root of a mount, from statx's
/// STATX_ATTR_MOUNT_ROOT (Linux 5.8): 1 or 0 (0 also when nothing is there), or -1 when the
/// kernel does not say (older kernels) or statx fails otherwise.
int chs_is_mount_root(const char *path);

/// The child changes to `path` before exec; 0, or an error number (ENOSYS before glibc 2.29).
int chs_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// The child closes every descriptor from `lowest` on before exec (glibc >= 2.34); 0, or an
/// error number; does nothing where unsupported (descriptors are opened close-on-exec anyway).
int chs_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowest);

#endif
