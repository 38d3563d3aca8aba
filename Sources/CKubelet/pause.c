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
#include <sys/socket.h>

struct ckl_namespaces_request {
    int flags;
    const char *hostname;
    const char *uts;
    const char *ipc;
    const char *net;
    int result;
    int error;
    const char *step;
};

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
    if (request->uts && ckl_pin("uts", request->uts) != 0) { request->step = "pin uts"; request->error = errno; return NULL; }
    if (request->ipc && ckl_pin("ipc", request->ipc) != 0) { request->step = "pin ipc"; request->error = errno; return NULL; }
    if (request->net && ckl_pin("net", request->net) != 0) { request->step = "pin net"; request->error = errno; return NULL; }
    request->result = 0;
    return NULL;
}

int ckl_make_pod_namespaces(const char *hostname, const char *uts, const char *ipc, const char *net, const char **step) {
    struct ckl_namespaces_request request = {
        .flags = CLONE_NEWUTS | CLONE_NEWIPC | (net ? CLONE_NEWNET : 0),
        .hostname = hostname, .uts = uts, .ipc = ipc, .net = net, .result = -1, .error = 0, .step = "thread",
    };
    pthread_t thread;
    int started = pthread_create(&thread, NULL, ckl_namespaces_thread, &request);
    if (started != 0) { *step = "pthread_create"; errno = started; return -1; }
    pthread_join(thread, NULL);
    if (request.result != 0) { *step = request.step; errno = request.error; return -1; }
    return 0;
}
