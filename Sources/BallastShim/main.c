// `ballast-shim`: the per-container shim the kubelet starts (in a session of its own), the part
// containerd-shim plays. It owns the OCI runtime for one container — `run --detach` with the
// container's stdout and stderr on pipes (create and start in one runtime process) — and, as the
// child subreaper the container's init is reparented to, learns its exit status. It copies the
// container's output into the CRI log, writes `state.json` once the container runs and
// `exit.json` (exit code, signal, OOM kill) once it ends, then deletes the container from the
// runtime. The kubelet can be killed and restarted meanwhile: the shim does not depend on it,
// and reports only through files (and one line on stdout, "started" or "failed: …", read while
// the kubelet waits for the start). SIGUSR1 makes it reopen the log's path: the kubelet rotates
// a large log by renaming it, then asks for the new file so (containerd's ReopenContainerLog).
//
// It is C and a small executable of its own, not a subcommand of `ballast`, because it starts
// once per container: `ballast` (155 MB, Foundation, the Swift runtime) took 17 ms of CPU just to
// start, this takes well under one (docs/kubelet-bench.md). One synchronous loop: poll(2) on the
// output pipes and a signalfd for SIGCHLD and SIGUSR1. What it shares with the kubelet (record names, their
// JSON, the CRI log's lines) is in CKubelet (records.c).
#define _GNU_SOURCE
#include "CKubelet.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct options {
    const char *runtime, *runtime_root, *id, *directory, *log, *cgroup, *cgroup_root;
    /* The container shares the pod's PID namespace: when its main process ends, what it left
       in its cgroup is killed (as containerd's shim does), since the namespace does not end
       with it. */
    int kill_all_on_exit;
};

static struct options options = {.cgroup_root = "/sys/fs/cgroup"};
/* The signalfd of SIGCHLD and SIGUSR1 (blocked otherwise: the kubelet sends SIGUSR1 only to a
   shim whose blocked signals, /proc/<pid>/status's SigBlk, say it reads it here). */
static int child_signals = -1;
/* The container's CRI log; both streams write to this descriptor. */
static int container_log = -1;

/* Children reaped while another was awaited: the container's init can end (and be reaped) in
   the same sweep that reaps `runc run`, before its pid is known. */
static struct { pid_t pid; int status; } reaped_children[64];
static size_t reaped_count;

static int take_reaped(pid_t pid, int *status) {
    for (size_t i = 0; i < reaped_count; i++) {
        if (reaped_children[i].pid != pid) continue;
        *status = reaped_children[i].status;
        reaped_children[i] = reaped_children[--reaped_count];
        return 1;
    }
    return 0;
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *out = malloc(la + lb + 2);
    if (!out) abort();
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return out;
}

static void now(struct timespec *time) { clock_gettime(CLOCK_REALTIME, time); }

/* One line to the kubelet on stdout; then stdout goes to /dev/null, so that a kubelet that went
   away cannot matter. */
static void say(const char *line) {
    size_t length = strlen(line);
    char *text = malloc(length + 2);
    if (text) {
        memcpy(text, line, length);
        text[length] = '\n';
        for (size_t i = 0; i < length; i++) if (text[i] == '\n') text[i] = ' ';
        size_t done = 0;
        while (done < length + 1) {
            ssize_t n = write(STDOUT_FILENO, text + done, length + 1 - done);
            if (n < 0) { if (errno == EINTR) continue; break; }
            done += (size_t)n;
        }
        free(text);
    }
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
}

/* Where the shim's own messages go: `shim.log` in the container's directory, made with the first
   one (most shims have none, and a file made for every container is an inode on every start:
   on ext4 without a journal, a scan past the inodes freed in the last minutes); stderr until
   the directory is known. */
static int message_fd(void) {
    static int fd = -1;
    if (fd >= 0) return fd;
    if (!options.directory) return STDERR_FILENO;
    char *path = join(options.directory, "shim.log");
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    return fd >= 0 ? fd : STDERR_FILENO;
}

/* Reports a container that never ran: `exit.json` with status 128 and the reason, and
   "failed: …" to the kubelet. */
static int fail(const char *message) {
    if (options.directory) {
        struct timespec finished;
        now(&finished);
        char *path = join(options.directory, CKL_RECORD_EXIT);
        ckl_write_exit(path, 128, 0, 0, NULL, &finished, message);
        free(path);
    }
    size_t length = strlen(message);
    char *line = malloc(length + 9);
    if (line) {
        memcpy(line, "failed: ", 8);
        memcpy(line + 8, message, length + 1);
        say(line);
        free(line);
    }
    dprintf(message_fd(), "%s\n", message);
    return 1;
}

static int failf(const char *format, const char *a, const char *b) {
    char message[8192];
    snprintf(message, sizeof message, format, a, b);
    return fail(message);
}

/* Starts `argv` with stdin from /dev/null, stdout and stderr on `out` and `err` (-1: /dev/null,
   -2: this process's stderr), `messages` as its fd 3 (-1: none; it must not be 3 itself, so
   that the dup2 clears its close-on-exec flag), in `directory`, with default signal
   dispositions and no blocked signal. The pid, or -1 with errno. */
static pid_t spawn(char *const argv[], int out, int err, int messages, const char *directory) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (out >= 0) posix_spawn_file_actions_adddup2(&actions, out, 1);
    else posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    if (err >= 0) posix_spawn_file_actions_adddup2(&actions, err, 2);
    else if (err == -1) posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (messages >= 0) posix_spawn_file_actions_adddup2(&actions, messages, 3);
    if (directory) posix_spawn_file_actions_addchdir_np(&actions, directory);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int result = posix_spawn(&pid, argv[0], &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (result != 0) { errno = result; return -1; }
    return pid;
}

static long long milliseconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The path of the log, opened again over the same descriptor: after the kubelet renamed the
   file, what follows goes to a new one. Whatever was written before stays in the renamed one. */
static void reopen_log(void) {
    int fd = ckl_cri_open_log(options.log);
    if (fd < 0 || dup3(fd, container_log, O_CLOEXEC) < 0) {
        dprintf(message_fd(), "cannot reopen the container log %s: %s\n", options.log, strerror(errno));
    }
    if (fd >= 0) close(fd);
}

/* SIGCHLD needs nothing here (the loop reaps with waitpid); SIGUSR1 reopens the log. */
static void read_signals(void) {
    struct signalfd_siginfo info;
    while (read(child_signals, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGUSR1 && container_log >= 0) reopen_log();
    }
}

/* What the runtime logs (`--log`, JSON lines) during one command: a pipe this process reads
   into memory (the last 1 MiB), written to `runtime.log` only when the command failed. A file
   made for every start would be a new inode on every start, and on ext4 without a journal each
   one is a scan past the inodes freed in the last minutes (docs/kubelet-bench.md). */
struct messages {
    int fd;   /* the read end; -1 once it ended or was closed */
    char *text;
    size_t length, capacity;
};

#define MESSAGES_KEPT (1 << 20)

/* A pipe for the runtime's messages: `*write_end` is what the runtime gets as its fd 3 (never
   3 itself). 0, or -1 with errno. */
static int messages_open(struct messages *m, int *write_end) {
    *m = (struct messages){.fd = -1};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    if (fds[1] == 3) {
        int moved = fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
        close(fds[1]);
        if (moved < 0) { close(fds[0]); return -1; }
        fds[1] = moved;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    m->fd = fds[0];
    *write_end = fds[1];
    return 0;
}

/* Reads what is in the pipe now, keeping the last MESSAGES_KEPT bytes. */
static void messages_read(struct messages *m) {
    while (m->fd >= 0) {
        if (m->capacity - m->length < 4096) {
            if (m->capacity >= 2 * MESSAGES_KEPT) {
                size_t drop = m->length - MESSAGES_KEPT;
                memmove(m->text, m->text + drop, MESSAGES_KEPT);
                m->length = MESSAGES_KEPT;
            } else {
                size_t capacity = m->capacity ? 2 * m->capacity : 8192;
                char *text = realloc(m->text, capacity + 1);
                if (!text) { close(m->fd); m->fd = -1; return; }
                m->text = text;
                m->capacity = capacity;
            }
        }
        ssize_t n = read(m->fd, m->text + m->length, m->capacity - m->length);
        if (n > 0) { m->length += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || errno != EAGAIN) { close(m->fd); m->fd = -1; }
        return;
    }
}

/* Reads what is left, stops reading, and appends the text to `runtime.log` when `keep`. */
static void messages_close(struct messages *m, int keep) {
    messages_read(m);
    if (m->fd >= 0) { close(m->fd); m->fd = -1; }
    if (keep && m->length > 0) {
        char *path = join(options.directory, "runtime.log");
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        free(path);
        if (fd >= 0) {
            size_t done = 0;
            while (done < m->length) {
                ssize_t n = write(fd, m->text + done, m->length - done);
                if (n < 0) { if (errno == EINTR) continue; break; }
                done += (size_t)n;
            }
            close(fd);
        }
    }
}

static void messages_free(struct messages *m) {
    if (m->fd >= 0) close(m->fd);
    free(m->text);
    *m = (struct messages){.fd = -1};
}

/* The container's stdout and stderr: their pipes and where they are copied. */
struct output {
    int fd[2];
    struct ckl_cri_stream *stream[2];
};

/* Copies what is ready on `output`'s pipes into the log; a pipe at its end is closed. */
static void pump(struct output *output, struct pollfd *ready) {
    static char buffer[65536];
    for (int i = 0; i < 2; i++) {
        if (output->fd[i] < 0 || !(ready[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(output->fd[i], buffer, sizeof buffer);
        if (n > 0) ckl_cri_stream_feed(output->stream[i], buffer, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(output->fd[i]);
            output->fd[i] = -1;
        }
    }
}

/* Copies output (and reads `messages`, when given) until `pid` is reaped (its wait status in
   `*status`; any other child that ends meanwhile is reaped too) or, with `pid` 0, until both
   pipes end; at most `timeout_ms` (-1: no limit). 1 when it happened, 0 on the timeout, -1 when
   there is no such child. */
static int run_until(struct output *output, struct messages *messages, pid_t pid, int *status, int timeout_ms) {
    long long deadline = timeout_ms < 0 ? -1 : milliseconds_now() + timeout_ms;
    if (pid > 0 && take_reaped(pid, status)) return 1;
    for (;;) {
        if (pid > 0) {
            for (;;) {
                int st;
                pid_t reaped = waitpid(-1, &st, WNOHANG);
                if (reaped == pid) { *status = st; return 1; }
                if (reaped > 0) {
                    if (reaped_count < sizeof reaped_children / sizeof reaped_children[0]) {
                        reaped_children[reaped_count].pid = reaped;
                        reaped_children[reaped_count].status = st;
                        reaped_count++;
                    }
                    continue;
                }
                if (reaped < 0 && errno == EINTR) continue;
                if (reaped < 0 && errno == ECHILD) return -1;
                break;
            }
        } else if ((!output || (output->fd[0] < 0 && output->fd[1] < 0))) {
            return 1;
        }
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - milliseconds_now();
            if (left <= 0) return 0;
            wait = (int)left;
        }
        struct pollfd fds[4] = {
            {output ? output->fd[0] : -1, POLLIN, 0}, {output ? output->fd[1] : -1, POLLIN, 0}, {child_signals, POLLIN, 0},
            {messages ? messages->fd : -1, POLLIN, 0},
        };
        int n = poll(fds, 4, wait);
        if (n < 0 && errno != EINTR) return -1;
        if (n <= 0) continue;
        if (fds[2].revents) read_signals();
        if (output) pump(output, fds);
        if (messages && fds[3].revents) messages_read(messages);
    }
}

/* `<runtime> --root … --log <log_path> --log-format json <arguments…>`: the log is normally
   `/proc/self/fd/3`, the runtime's fd 3, the write end of a `struct messages` pipe. */
static char **runtime_command(const char *log_path, const char *const *arguments) {
    size_t count = 0;
    while (arguments[count]) count++;
    char **argv = calloc(count + 8, sizeof *argv);
    if (!argv) abort();
    size_t at = 0;
    argv[at++] = (char *)options.runtime;
    argv[at++] = "--root";
    argv[at++] = (char *)options.runtime_root;
    argv[at++] = "--log";
    argv[at++] = (char *)log_path;
    argv[at++] = "--log-format";
    argv[at++] = "json";
    for (size_t i = 0; i < count; i++) argv[at++] = (char *)arguments[i];
    return argv;
}

/* `runtime delete --force <id>`, at most 30 s; when it fails, its messages go to `runtime.log`. */
static void delete_container(void) {
    const char *arguments[] = {"delete", "--force", options.id, NULL};
    struct messages messages;
    int messages_fd = -1;
    /* Without a pipe (no descriptor left) the container is deleted all the same, unheard. */
    int heard = messages_open(&messages, &messages_fd) == 0;
    char **argv = runtime_command(heard ? "/proc/self/fd/3" : "/dev/null", arguments);
    pid_t pid = spawn(argv, -1, -1, messages_fd, options.directory);
    free(argv);
    if (messages_fd >= 0) close(messages_fd);
    int status = 0, done = 0;
    if (pid >= 0) {
        done = run_until(NULL, &messages, pid, &status, 30000);
        if (done == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    messages_close(&messages, pid < 0 || done != 1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0);
    messages_free(&messages);
}

/* Decodes the JSON string at `*at` (after its opening quote) into `out` (room for as many
   bytes as the encoded string has); moves `*at` past the closing quote. 0 when malformed. */
static int json_string_value(const char **at, char *out) {
    const char *s = *at;
    while (*s && *s != '"') {
        if (*s != '\\') { *out++ = *s++; continue; }
        s++;
        switch (*s) {
        case 'n': *out++ = '\n'; break;
        case 't': *out++ = '\t'; break;
        case 'r': *out++ = '\r'; break;
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'u': {
            unsigned value = 0;
            for (int i = 1; i <= 4; i++) {
                char c = s[i];
                value <<= 4;
                if (c >= '0' && c <= '9') value |= (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f') value |= (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F') value |= (unsigned)(c - 'A' + 10);
                else return 0;
            }
            s += 4;
            if (value >= 0xD800 && value <= 0xDBFF && s[1] == '\\' && s[2] == 'u') {
                unsigned low = 0;
                int valid = 1;
                for (int i = 3; i <= 6; i++) {
                    char c = s[i];
                    low <<= 4;
                    if (c >= '0' && c <= '9') low |= (unsigned)(c - '0');
                    else if (c >= 'a' && c <= 'f') low |= (unsigned)(c - 'a' + 10);
                    else if (c >= 'A' && c <= 'F') low |= (unsigned)(c - 'A' + 10);
                    else valid = 0;
                }
                if (valid && low >= 0xDC00 && low <= 0xDFFF) {
                    value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00);
                    s += 6;
                }
            }
            if (value < 0x80) *out++ = (char)value;
            else if (value < 0x800) { *out++ = (char)(0xC0 | (value >> 6)); *out++ = (char)(0x80 | (value & 0x3F)); }
            else if (value < 0x10000) {
                *out++ = (char)(0xE0 | (value >> 12)); *out++ = (char)(0x80 | ((value >> 6) & 0x3F));
                *out++ = (char)(0x80 | (value & 0x3F));
            } else {
                *out++ = (char)(0xF0 | (value >> 18)); *out++ = (char)(0x80 | ((value >> 12) & 0x3F));
                *out++ = (char)(0x80 | ((value >> 6) & 0x3F)); *out++ = (char)(0x80 | (value & 0x3F));
            }
            break;
        }
        case 0: return 0;
        default: *out++ = *s;   /* \" \\ \/ */
        }
        s++;
    }
    if (*s != '"') return 0;
    *out = 0;
    *at = s + 1;
    return 1;
}

/* The message of a runtime log line (`{"level":"error","msg":…,…}`) when it is an error; the
   other values (numbers, strings, nested objects) are skipped. */
static int error_message(const char *line, char *message) {
    const char *s = line;
    while (*s == ' ') s++;
    if (*s++ != '{') return 0;
    size_t size = strlen(line) + 1;
    char *key = malloc(size), *value = malloc(size);
    int is_error = 0, has_message = 0;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s != '"') break;
        s++;
        if (!json_string_value(&s, key)) break;
        while (*s == ' ') s++;
        if (*s++ != ':') break;
        while (*s == ' ') s++;
        if (*s == '"') {
            s++;
            if (!json_string_value(&s, value)) break;
            if (strcmp(key, "level") == 0) is_error = strcmp(value, "error") == 0;
            else if (strcmp(key, "msg") == 0) { strcpy(message, value); has_message = 1; }
            continue;
        }
        int depth = 0;
        while (*s && (depth > 0 || (*s != ',' && *s != '}'))) {
            if (*s == '"') {
                s++;
                if (!json_string_value(&s, value)) { depth = -1; break; }
                continue;
            }
            if (*s == '{' || *s == '[') depth++;
            else if (*s == '}' || *s == ']') depth--;
            s++;
        }
        if (depth < 0 || !*s) break;
    }
    free(key);
    free(value);
    return is_error && has_message;
}

/* The last error the runtime logged (JSON lines in `m`), or NULL. */
static char *runtime_error(const struct messages *m) {
    if (m->length == 0) return NULL;
    size_t length = m->length;
    char *text = malloc(length + 1);
    if (!text) return NULL;
    memcpy(text, m->text, length);
    text[length] = 0;
    char *message = malloc(length + 1);
    char *end = text + length;
    while (end > text) {
        char *start = end;
        while (start > text && start[-1] != '\n') start--;
        *end = 0;
        if (end > start && error_message(start, message)) { free(text); return message; }
        end = start > text ? start - 1 : text;
    }
    free(text);
    free(message);
    return NULL;
}

/* runc's state file of this container: `<runtime root>/<id>/state.json`. */
static char *runtime_state_path(void) {
    char *directory = join(options.runtime_root, options.id);
    char *path = join(directory, "state.json");
    free(directory);
    return path;
}

/* The container's init pid from runc's state file (its first `"init_process_pid": N`; a key
   inside a string of the config would be escaped, `\"`, and not match), or 0. */
static int runtime_state_pid(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[4096];
    ssize_t length;
    do { length = read(fd, buffer, sizeof buffer - 1); } while (length < 0 && errno == EINTR);
    close(fd);
    if (length <= 0) return 0;
    buffer[length] = 0;
    static const char key[] = "\"init_process_pid\"";
    const char *at = strstr(buffer, key);
    if (!at) return 0;
    at += sizeof key - 1;
    while (*at == ' ') at++;
    if (*at++ != ':') return 0;
    while (*at == ' ') at++;
    char *end;
    long pid = strtol(at, &end, 10);
    return end != at && pid > 0 && pid <= 0x3fffffff ? (int)pid : 0;
}

/* The directories of cgroup `path`: one per v1 hierarchy, or the one v2 directory; a
   NULL-terminated array. */
static char **cgroup_directories(const char *path) {
    char *unified = join(options.cgroup_root, "cgroup.controllers");
    int v2 = access(unified, F_OK) == 0;
    free(unified);
    size_t count = 0, capacity = 32;
    char **out = calloc(capacity + 1, sizeof *out);
    if (v2) {
        out[0] = malloc(strlen(options.cgroup_root) + strlen(path) + 1);
        strcpy(out[0], options.cgroup_root);
        strcat(out[0], path);
        return out;
    }
    DIR *root = opendir(options.cgroup_root);
    if (!root) return out;
    struct dirent *entry;
    while ((entry = readdir(root)) && count < capacity) {
        if (entry->d_name[0] == '.') continue;
        char *base = join(options.cgroup_root, entry->d_name);
        struct stat info;
        if (lstat(base, &info) == 0 && S_ISDIR(info.st_mode)) {
            out[count] = malloc(strlen(base) + strlen(path) + 1);
            strcpy(out[count], base);
            strcat(out[count], path);
            count++;
        }
        free(base);
    }
    closedir(root);
    return out;
}

static void free_list(char **list) {
    for (char **p = list; *p; p++) free(*p);
    free(list);
}

/* SIGKILL to every process of `directory` and the cgroups below it; how many there were. */
static int kill_cgroup_tree(const char *directory) {
    int count = 0;
    char *procs = join(directory, "cgroup.procs");
    FILE *file = fopen(procs, "re");
    free(procs);
    if (file) {
        int pid;
        while (fscanf(file, "%d", &pid) == 1) {
            if (pid > 0) { kill(pid, SIGKILL); count++; }
        }
        fclose(file);
    }
    DIR *dir = opendir(directory);
    if (!dir) return count;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.') continue;
        char *child = join(directory, entry->d_name);
        struct stat info;
        if (lstat(child, &info) == 0 && S_ISDIR(info.st_mode)) count += kill_cgroup_tree(child);
        free(child);
    }
    closedir(dir);
    return count;
}

/* Kills what the container's main process left in its cgroup (its children and exec'd
   processes would keep the output pipes, and the cgroup, open): a few rounds, until none is left. */
static void kill_all_left(void) {
    char **directories = cgroup_directories(options.cgroup);
    for (int round = 0; round < 10; round++) {
        int left = 0;
        for (char **d = directories; *d; d++) left += kill_cgroup_tree(*d);
        if (left == 0) break;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        int status;
        while (waitpid(-1, &status, WNOHANG) > 0) {}
    }
    free_list(directories);
}

/* The value of the line `<key> <value>` of a cgroup file, or -1. */
static long long cgroup_value(const char *file, const char *key) {
    FILE *f = fopen(file, "re");
    if (!f) return -1;
    char name[64];
    long long value, found = -1;
    if (!key) {
        if (fscanf(f, "%lld", &value) == 1) found = value;
    } else {
        while (fscanf(f, "%63s %lld", name, &value) == 2) {
            if (strcmp(name, key) == 0) { found = value; break; }
        }
    }
    fclose(f);
    return found;
}

/* Whether the OOM killer killed a process of the container's cgroup — or, with an exit by
   SIGKILL, whether a memory limit was hit (v1 `memory.failcnt`, v2 `max` events): what an OOM
   kill looks like on kernels without `oom_kill`. */
static int oom_killed(int signal) {
    char *unified = join(options.cgroup_root, "cgroup.controllers");
    int v2 = access(unified, F_OK) == 0;
    free(unified);
    char file[4096];
    if (v2) snprintf(file, sizeof file, "%s%s/memory.events", options.cgroup_root, options.cgroup);
    else snprintf(file, sizeof file, "%s/memory%s/memory.oom_control", options.cgroup_root, options.cgroup);
    if (cgroup_value(file, "oom_kill") > 0) return 1;
    if (signal != SIGKILL) return 0;
    if (v2) return cgroup_value(file, "max") > 0;
    snprintf(file, sizeof file, "%s/memory%s/memory.failcnt", options.cgroup_root, options.cgroup);
    return cgroup_value(file, NULL) > 0;
}

static void usage(const char *problem) {
    dprintf(message_fd(),
            "ballast-shim: %s\n"
            "usage: ballast-shim --runtime PATH --runtime-root DIR --id ID --directory DIR --log FILE --cgroup PATH\n"
            "                    [--cgroup-root /sys/fs/cgroup] [--kill-all-on-exit]\n"
            "The kubelet's per-container shim (docs/kubelet.md, \"Runtime and shim\"); `ballast kubelet` starts it.\n",
            problem);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--kill-all-on-exit") == 0) { options.kill_all_on_exit = 1; continue; }
        const char **target = strcmp(flag, "--runtime") == 0 ? &options.runtime
                              : strcmp(flag, "--runtime-root") == 0 ? &options.runtime_root
                              : strcmp(flag, "--id") == 0 ? &options.id
                              : strcmp(flag, "--directory") == 0 ? &options.directory
                              : strcmp(flag, "--log") == 0 ? &options.log
                              : strcmp(flag, "--cgroup") == 0 ? &options.cgroup
                              : strcmp(flag, "--cgroup-root") == 0 ? &options.cgroup_root : NULL;
        if (!target) {
            char problem[512];
            snprintf(problem, sizeof problem, "unknown argument %.400s", flag);
            usage(problem);
            return 2;
        }
        if (i + 1 >= argc) {
            char problem[512];
            snprintf(problem, sizeof problem, "%.400s needs a value", flag);
            usage(problem);
            return 2;
        }
        *target = argv[++i];
    }
    if (!options.runtime || !options.runtime_root || !options.id || !options.directory || !options.log || !options.cgroup) {
        usage("--runtime, --runtime-root, --id, --directory, --log and --cgroup are required");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sigset_t watched;
    sigemptyset(&watched);
    sigaddset(&watched, SIGCHLD);
    sigaddset(&watched, SIGUSR1);
    sigprocmask(SIG_BLOCK, &watched, NULL);
    child_signals = signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK);
    if (child_signals < 0) return failf("the shim cannot watch its children (signalfd): %s%s", strerror(errno), "");
    if (ckl_set_child_subreaper() != 0) return failf("the shim cannot become a child subreaper: %s%s", strerror(errno), "");

    /* This shim's pid goes into state.json with the container's: no file of its own (one inode
       and two fsyncs fewer per container; until state.json exists, a restarted kubelet finds
       the shim by its command line). */
    container_log = ckl_cri_open_log(options.log);
    if (container_log < 0) return failf("cannot open the container log %s: %s", options.log, strerror(errno));
    struct output output;
    int pipes[2][2];
    for (int i = 0; i < 2; i++) {
        if (pipe2(pipes[i], O_CLOEXEC) != 0) return failf("cannot make a pipe for the container's output: %s%s", strerror(errno), "");
        fcntl(pipes[i][0], F_SETFL, O_NONBLOCK);
        output.fd[i] = pipes[i][0];
        output.stream[i] = ckl_cri_stream_new(container_log, i == 0 ? "stdout" : "stderr");
    }

    /* runc records the container's init in its own state (`<root>/<id>/state.json`,
       `init_process_pid`), written before `run --detach` returns: read there rather than from
       a `--pid-file`, which runc writes as a temporary file and a rename (a new inode per start).
       Other runtimes write the pid file. */
    const char *base = strrchr(options.runtime, '/');
    int runc = strcmp(base ? base + 1 : options.runtime, "runc") == 0;
    char *pid_file = join(options.directory, "pid");
    const char *run_with_pid_file[] = {"run", "--detach", "--bundle", options.directory, "--pid-file", pid_file, options.id, NULL};
    const char *run_plain[] = {"run", "--detach", "--bundle", options.directory, options.id, NULL};
    struct messages messages;
    int messages_fd;
    if (messages_open(&messages, &messages_fd) != 0) {
        return failf("cannot make a pipe for the runtime's messages: %s%s", strerror(errno), "");
    }
    char **run_argv = runtime_command("/proc/self/fd/3", runc ? run_plain : run_with_pid_file);
    pid_t runtime = spawn(run_argv, pipes[0][1], pipes[1][1], messages_fd, options.directory);
    free(run_argv);
    close(pipes[0][1]);
    close(pipes[1][1]);
    close(messages_fd);
    if (runtime < 0) return failf("cannot run %s: %s", options.runtime, strerror(errno));

    int status = 0;
    if (run_until(&output, &messages, runtime, &status, -1) != 1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        messages_close(&messages, 1);
        char *message = runtime_error(&messages);
        delete_container();
        if (message) return fail(message);
        char text[64];
        if (WIFSIGNALED(status)) snprintf(text, sizeof text, "was killed by signal %d", WTERMSIG(status));
        else snprintf(text, sizeof text, "exited with status %d", WEXITSTATUS(status));
        return failf("%s run %s", options.runtime, text);
    }
    messages_close(&messages, 0);
    messages_free(&messages);
    int container = 0;
    char *pid_source = runc ? runtime_state_path() : pid_file;
    if (runc) {
        container = runtime_state_pid(pid_source);
    } else {
        FILE *file = fopen(pid_file, "re");
        if (file) {
            if (fscanf(file, "%d", &container) != 1) container = 0;
            fclose(file);
        }
    }
    if (container <= 0) {
        delete_container();
        return failf("%s run left no pid of the container's process in %s", options.runtime, pid_source);
    }
    struct timespec started, finished;
    now(&started);
    char *state = join(options.directory, CKL_RECORD_STARTED);
    ckl_write_started(state, container, (int)getpid(), &started);
    free(state);
    say("started");

    int exit_code = 255, signal_number = 0;
    if (run_until(&output, NULL, container, &status, -1) == 1) {
        if (WIFSIGNALED(status)) { signal_number = WTERMSIG(status); exit_code = 128 + signal_number; }
        else exit_code = WEXITSTATUS(status);
    }
    if (options.kill_all_on_exit) kill_all_left();
    // Every process of the container's PID namespace dies with its init, so the pipes end; a
    // process that joined from outside could keep them open: bounded.
    run_until(&output, NULL, 0, &status, 5000);
    for (int i = 0; i < 2; i++) {
        ckl_cri_stream_end(output.stream[i]);
        if (output.fd[i] >= 0) close(output.fd[i]);
    }
    int oom = oom_killed(signal_number);
    now(&finished);
    char *exit_path = join(options.directory, CKL_RECORD_EXIT);
    ckl_write_exit(exit_path, exit_code, signal_number, oom, &started, &finished, NULL);
    free(exit_path);
    delete_container();
    return 0;
}
