// The pod's infrastructure process for `shareProcessNamespace`: PID 1 of a new PID namespace
// that every container of the pod joins. As PID 1 it inherits the processes orphaned inside
// that namespace and must reap them; it does nothing else, and exits on SIGTERM or SIGINT
// (the kernel then kills every other process of the namespace). It is a fork of the short-lived
// `ballast kubelet-pause` process, so it runs no Swift code: after fork(2) in a threaded process
// only async-signal-safe calls are allowed, and this loop needs no more.
#define _GNU_SOURCE
#include "CKubelet.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void ckl_pause_ignore(int sig) { (void)sig; }

static void ckl_pause_loop(void) {
    sigset_t all, wanted;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ckl_pause_ignore;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    // SIGCHLD at its default (not SIG_IGN, which would leave nothing to wait for).
    action.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &action, NULL);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    syscall(SYS_close_range, 3U, ~0U, 0U);
    if (chdir("/") != 0) { /* nothing to do: it holds no path */ }
    // A session of its own: what signals the kubelet's process group (a terminal's Ctrl-C, a
    // supervisor's kill of the group) must not reach the pod.
    setsid();
    prctl(PR_SET_NAME, "pause", 0, 0, 0);
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    for (;;) {
        int sig = sigwaitinfo(&wanted, NULL);
        if (sig == SIGTERM || sig == SIGINT) _exit(0);
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
    }
}

pid_t ckl_start_pause(void) {
    if (unshare(CLONE_NEWPID) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        ckl_pause_loop();
        _exit(0);
    }
    // Back to this process's own namespace for later children: a thread whose children would
    // go elsewhere cannot even start a thread (clone(CLONE_THREAD) is EINVAL then).
    int saved = errno;
    int own = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own >= 0) {
        setns(own, CLONE_NEWPID);
        close(own);
    }
    errno = saved;
    return pid;
}

// MARK: The pod's other namespaces, made without a helper process

#include <net/if.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>

struct ckl_namespaces_request {
    int flags;
    const char *hostname;
    const char *uts;
    const char *ipc;
    const char *net;
    /// The holder's mount namespace (/proc/<pid>/ns/mnt) and the pod's directory in it, or NULL:
    /// the UTS and IPC pins go into the holder's namespace (uts and ipc are paths there).
    const char *holder;
    const char *holder_directory;
    int result;
    int error;
    const char *step;
};

/// Moves the calling thread (alone: CLONE_FS unshared first) into the mount namespace at `path`.
static int ckl_enter_mount_namespace(const char *path, const char **step) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *step = "open the holder's mount namespace"; return -1; }
    // Never this process's own namespace (the host's): pins and directories made there would
    // land in the host's root.
    struct stat theirs, ours;
    if (fstat(fd, &theirs) != 0 || stat("/proc/thread-self/ns/mnt", &ours) != 0) {
        *step = "stat the mount namespaces"; int saved = errno; close(fd); errno = saved; return -1;
    }
    if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev) {
        *step = "the holder's mount namespace is this process's"; close(fd); errno = EINVAL; return -1;
    }
    if (unshare(CLONE_FS) != 0) { *step = "unshare CLONE_FS"; int saved = errno; close(fd); errno = saved; return -1; }
    if (setns(fd, CLONE_NEWNS) != 0) { *step = "setns into the holder's mount namespace"; int saved = errno; close(fd); errno = saved; return -1; }
    close(fd);
    return 0;
}

static int ckl_make_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int ckl_pin(const char *kind, const char *target) {
    char source[64];
    snprintf(source, sizeof source, "/proc/thread-self/ns/%s", kind);
    return mount(source, target, NULL, MS_BIND, NULL);
}

static void *ckl_namespaces_thread(void *argument) {
    struct ckl_namespaces_request *request = argument;
    request->result = -1;
    if (unshare(request->flags) != 0) { request->step = "unshare"; request->error = errno; return NULL; }
    if (request->hostname && sethostname(request->hostname, strlen(request->hostname)) != 0) {
        request->step = "sethostname"; request->error = errno; return NULL;
    }
    if (request->net) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
            request->step = "lo flags"; request->error = errno; if (fd >= 0) close(fd); return NULL;
        }
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) { request->step = "lo up"; request->error = errno; close(fd); return NULL; }
        close(fd);
    }
    // The network namespace's pin is in this (the host's) mount namespace: its path is handed to
    // the CNI plugins. Pinned first: after entering the holder's namespace, host paths are gone.
    if (request->net && ckl_pin("net", request->net) != 0) { request->step = "pin net"; request->error = errno; return NULL; }
    if (request->holder) {
        if (ckl_enter_mount_namespace(request->holder, &request->step) != 0) { request->error = errno; return NULL; }
        if (mkdir(request->holder_directory, 0700) != 0 && errno != EEXIST) {
            request->step = "mkdir in the holder"; request->error = errno; return NULL;
        }
        if (ckl_make_file(request->uts) != 0 || ckl_make_file(request->ipc) != 0) {
            request->step = "create the pins' files in the holder"; request->error = errno; return NULL;
        }
    }
    if (request->uts && ckl_pin("uts", request->uts) != 0) { request->step = "pin uts"; request->error = errno; return NULL; }
    if (request->ipc && ckl_pin("ipc", request->ipc) != 0) { request->step = "pin ipc"; request->error = errno; return NULL; }
    request->result = 0;
    return NULL;
}

int ckl_make_pod_namespaces(const char *hostname, const char *uts, const char *ipc, const char *net,
                            const char *holder, const char *holder_directory, const char **step) {
    struct ckl_namespaces_request request = {
        .flags = CLONE_NEWUTS | CLONE_NEWIPC | (net ? CLONE_NEWNET : 0),
        .hostname = hostname, .uts = uts, .ipc = ipc, .net = net, .holder = holder, .holder_directory = holder_directory,
        .result = -1, .error = 0, .step = "thread",
    };
    pthread_t thread;
    int started = pthread_create(&thread, NULL, ckl_namespaces_thread, &request);
    if (started != 0) { *step = "pthread_create"; errno = started; return -1; }
    pthread_join(thread, NULL);
    if (request.result != 0) { *step = request.step; errno = request.error; return -1; }
    return 0;
}

// MARK: The node's namespace holder

struct ckl_unpin_request {
    const char *holder;
    const char *directory;
    int result;
    int error;
    const char *step;
};

static void *ckl_unpin_thread(void *argument) {
    struct ckl_unpin_request *request = argument;
    request->result = -1;
    if (ckl_enter_mount_namespace(request->holder, &request->step) != 0) { request->error = errno; return NULL; }
    static const char *const kinds[] = {"uts", "ipc"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", request->directory, kinds[i]) >= (int)sizeof path) {
            request->step = "path"; request->error = ENAMETOOLONG; return NULL;
        }
        if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
            request->step = "unmount a pin"; request->error = errno; return NULL;
        }
        if (unlink(path) != 0 && errno != ENOENT) { request->step = "unlink a pin"; request->error = errno; return NULL; }
    }
    if (rmdir(request->directory) != 0 && errno != ENOENT) { request->step = "rmdir"; request->error = errno; return NULL; }
    request->result = 0;
    return NULL;
}

int ckl_unpin_pod_namespaces(const char *holder, const char *directory, const char **step) {
    struct ckl_unpin_request request = {.holder = holder, .directory = directory, .result = -1, .error = 0, .step = "thread"};
    pthread_t thread;
    int started = pthread_create(&thread, NULL, ckl_unpin_thread, &request);
    if (started != 0) { *step = "pthread_create"; errno = started; return -1; }
    pthread_join(thread, NULL);
    if (request.result != 0) { *step = request.step; errno = request.error; return -1; }
    return 0;
}

static int ckl_holder_failed(const char *step) {
    dprintf(1, "failed: %s: %s\n", step, strerror(errno));
    return 1;
}

int ckl_hold_namespaces(const char *directory) {
    // A mount namespace of its own whose root is an empty tmpfs: no copy of the host's mounts
    // stays here (a volume unmounted on the host must not live on in this namespace).
    if (unshare(CLONE_NEWNS) != 0) return ckl_holder_failed("unshare CLONE_NEWNS");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return ckl_holder_failed("make / private");
    if (mount("ballast-namespaces", directory, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0) {
        return ckl_holder_failed("mount a tmpfs");
    }
    if (chdir(directory) != 0) return ckl_holder_failed("chdir");
    if (syscall(SYS_pivot_root, ".", ".") != 0) return ckl_holder_failed("pivot_root");
    if (umount2(".", MNT_DETACH) != 0) return ckl_holder_failed("detach the host's mounts");
    if (chdir("/") != 0) return ckl_holder_failed("chdir /");
    // /proc of the host's PID namespace: the kubelet's threads that enter this namespace name
    // their own namespaces by /proc/thread-self/ns/<kind>.
    if (mkdir("/proc", 0555) != 0) return ckl_holder_failed("mkdir /proc");
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) return ckl_holder_failed("mount /proc");
    dprintf(1, "ready\n");
    close(0);   // no /dev/null here to put in their place
    close(1);
    close(2);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    setsid();
    for (;;) pause();
}
