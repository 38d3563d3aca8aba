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
