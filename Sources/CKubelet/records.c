// What the container shim writes and the kubelet reads (CKubelet.h): the records of a
// container's directory and the CRI log. Plain C, so that the shim (`ballast-shim`) starts in a
// fraction of a millisecond; the kubelet's Swift reads the same names and formats through here.
#define _GNU_SOURCE
#include "CKubelet.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static void sync_directory_of(const char *path) {
    char directory[4096];
    const char *slash = strrchr(path, '/');
    size_t length = slash ? (size_t)(slash - path) : 0;
    if (length == 0) { directory[0] = slash ? '/' : '.'; directory[1] = 0; }
    else if (length < sizeof directory) { memcpy(directory, path, length); directory[length] = 0; }
    else return;
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int ckl_write_file(const char *path, const char *data, size_t length, int durable) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t written = write(fd, data + done, length - done);
        if (written < 0) {
            if (errno == EINTR) continue;
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        done += (size_t)written;
    }
    if (durable && fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

int ckl_write_file_atomic(const char *path, const char *data, size_t length, int durable) {
    char temporary[4096];
    if (snprintf(temporary, sizeof temporary, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof temporary) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (ckl_write_file(temporary, data, length, durable) != 0 || rename(temporary, path) != 0) {
        int saved = errno;
        unlink(temporary);
        errno = saved;
        return -1;
    }
    if (durable) sync_directory_of(path);
    return 0;
}

// A JSON number of seconds since 2001-01-01 (a Date as JSONDecoder reads it by default).
static int json_date(char *out, size_t size, const struct timespec *time) {
    long long seconds = (long long)time->tv_sec - CKL_REFERENCE_DATE_OFFSET;
    if (seconds >= 0) return snprintf(out, size, "%lld.%09ld", seconds, time->tv_nsec);
    return snprintf(out, size, "%.9f", (double)seconds + (double)time->tv_nsec / 1e9);   /* before 2001 */
}

int ckl_write_started(const char *path, int pid, int shim_pid, const struct timespec *started_at) {
    char date[64], json[160];
    json_date(date, sizeof date, started_at);
    int length = snprintf(json, sizeof json, "{\"pid\":%d,\"shimPid\":%d,\"startedAt\":%s}", pid, shim_pid, date);
    return ckl_write_file_atomic(path, json, (size_t)length, 0);
}

// The length of the valid UTF-8 sequence at `s` (at most `left` bytes), 0 when it is not one.
static size_t utf8_sequence(const unsigned char *s, size_t left) {
    unsigned char c = s[0];
    size_t need;
    unsigned int value;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; value = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; value = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; value = c & 0x07; }
    else return 0;
    if (left < need) return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        value = (value << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && (value < 0x800 || (value >= 0xD800 && value <= 0xDFFF))) || (need == 4 && (value < 0x10000 || value > 0x10FFFF)))
        return 0;
    return need;
}

// Appends `text` as a JSON string to `out` (capacity `size`, `*used` so far); false when it
// does not fit.
static int json_string(char *out, size_t size, size_t *used, const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t left = strlen(text);
    size_t at = *used;
#define PUT(str, n) do { if (at + (n) >= size) return 0; memcpy(out + at, (str), (n)); at += (n); } while (0)
    PUT("\"", 1);
    while (left > 0) {
        unsigned char c = *s;
        char escape[8];
        if (c == '"' || c == '\\') { escape[0] = '\\'; escape[1] = (char)c; PUT(escape, 2); s++; left--; continue; }
        if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            if (named) PUT(named, 2);
            else { snprintf(escape, sizeof escape, "\\u%04x", c); PUT(escape, 6); }
            s++; left--;
            continue;
        }
        size_t n = utf8_sequence(s, left);
        if (n == 0) { PUT("\xEF\xBF\xBD", 3); s++; left--; continue; }
        PUT(s, n);
        s += n;
        left -= n;
    }
    PUT("\"", 1);
#undef PUT
    *used = at;
    return 1;
}

int ckl_write_exit(const char *path, int exit_code, int signal, int oom_killed, const struct timespec *started_at,
                   const struct timespec *finished_at, const char *start_failure) {
    size_t size = 1024 + (start_failure ? strlen(start_failure) * 6 : 0);
    char *json = malloc(size);
    if (!json) return -1;
    char date[64];
    size_t used = (size_t)snprintf(json, size, "{\"exitCode\":%d,\"oomKilled\":%s", exit_code, oom_killed ? "true" : "false");
    if (signal > 0) used += (size_t)snprintf(json + used, size - used, ",\"signal\":%d", signal);
    if (started_at) {
        json_date(date, sizeof date, started_at);
        used += (size_t)snprintf(json + used, size - used, ",\"startedAt\":%s", date);
    }
    json_date(date, sizeof date, finished_at);
    used += (size_t)snprintf(json + used, size - used, ",\"finishedAt\":%s", date);
    if (start_failure) {
        used += (size_t)snprintf(json + used, size - used, ",\"startFailure\":");
        if (!json_string(json, size, &used, start_failure)) { free(json); errno = EOVERFLOW; return -1; }
    }
    used += (size_t)snprintf(json + used, size - used, "}");
    int result = ckl_write_file_atomic(path, json, used, 1);
    int saved = errno;
    free(json);
    errno = saved;
    return result;
}

int ckl_cri_timestamp(char *buffer, size_t size, long long seconds, long nanoseconds) {
    time_t whole = (time_t)seconds;
    struct tm parts;
    gmtime_r(&whole, &parts);
    int length = snprintf(buffer, size, "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                          parts.tm_hour, parts.tm_min, parts.tm_sec);
    if (length < 0 || (size_t)length >= size) return length;
    if (nanoseconds > 0) {
        char fraction[16];
        snprintf(fraction, sizeof fraction, "%09ld", nanoseconds);
        int digits = 9;
        while (digits > 0 && fraction[digits - 1] == '0') digits--;
        length += snprintf(buffer + length, size - (size_t)length, ".%.*s", digits, fraction);
    }
    if ((size_t)length + 1 < size) { buffer[length++] = 'Z'; buffer[length] = 0; }
    return length;
}

static int make_parents(const char *path) {
    char copy[4096];
    size_t length = strlen(path);
    if (length >= sizeof copy) { errno = ENAMETOOLONG; return -1; }
    memcpy(copy, path, length + 1);
    char *slash = strrchr(copy, '/');
    if (!slash || slash == copy) return 0;
    *slash = 0;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(copy, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(copy, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int ckl_cri_open_log(const char *path) {
    if (make_parents(path) != 0) return -1;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct ckl_cri_stream {
    int fd;
    char name[16];
    size_t length;
    /* What is not written yet: at most CKL_CRI_MAX_LINE bytes between feeds. */
    char pending[CKL_CRI_MAX_LINE + 65536];
};

struct ckl_cri_stream *ckl_cri_stream_new(int log_fd, const char *stream) {
    struct ckl_cri_stream *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->fd = log_fd;
    snprintf(s->name, sizeof s->name, "%s", stream);
    s->length = 0;
    return s;
}

// One entry, appended with one writev (O_APPEND): the stdout and stderr writers never interleave.
static void write_entry(struct ckl_cri_stream *s, int partial, const char *content, size_t length) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char prefix[64];
    int stamp = ckl_cri_timestamp(prefix, sizeof prefix, (long long)now.tv_sec, now.tv_nsec);
    int prefix_length = stamp + snprintf(prefix + stamp, sizeof prefix - (size_t)stamp, " %s %s ", s->name, partial ? "P" : "F");
    struct iovec parts[3] = {{prefix, (size_t)prefix_length}, {(void *)content, length}, {"\n", 1}};
    size_t total = (size_t)prefix_length + length + 1;
    ssize_t written;
    do { written = writev(s->fd, parts, 3); } while (written < 0 && errno == EINTR);
    if (written < 0 || (size_t)written == total) return;
    // A short write (a full disk): the rest, piece by piece.
    size_t skip = (size_t)written;
    for (int i = 0; i < 3; i++) {
        if (skip >= parts[i].iov_len) { skip -= parts[i].iov_len; continue; }
        const char *at = (const char *)parts[i].iov_base + skip;
        size_t left = parts[i].iov_len - skip;
        skip = 0;
        while (left > 0) {
            ssize_t n = write(s->fd, at, left);
            if (n < 0) { if (errno == EINTR) continue; return; }
            at += n;
            left -= (size_t)n;
        }
    }
}

// Writes the full lines of `pending`, cuts what is longer than the limit into partial entries,
// and keeps the rest (at most CKL_CRI_MAX_LINE bytes).
static void drain(struct ckl_cri_stream *s) {
    size_t start = 0;
    char *newline;
    while ((newline = memchr(s->pending + start, '\n', s->length - start)) != NULL) {
        size_t end = (size_t)(newline - s->pending);
        while (end - start > CKL_CRI_MAX_LINE) {
            write_entry(s, 1, s->pending + start, CKL_CRI_MAX_LINE);
            start += CKL_CRI_MAX_LINE;
        }
        write_entry(s, 0, s->pending + start, end - start);
        start = end + 1;
    }
    while (s->length - start > CKL_CRI_MAX_LINE) {
        write_entry(s, 1, s->pending + start, CKL_CRI_MAX_LINE);
        start += CKL_CRI_MAX_LINE;
    }
    memmove(s->pending, s->pending + start, s->length - start);
    s->length -= start;
}

void ckl_cri_stream_feed(struct ckl_cri_stream *s, const char *bytes, size_t length) {
    while (length > 0) {
        size_t room = sizeof s->pending - s->length;
        size_t n = length < room ? length : room;
        memcpy(s->pending + s->length, bytes, n);
        s->length += n;
        bytes += n;
        length -= n;
        drain(s);
    }
}

void ckl_cri_stream_end(struct ckl_cri_stream *s) {
    if (!s) return;
    if (s->length > 0) write_entry(s, 0, s->pending, s->length);
    free(s);
}
