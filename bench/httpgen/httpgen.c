/* httpgen: the bench's open-loop HTTP/1.1 load generator (one thread, epoll, libc only).
 *
 * It POSTs one fixed body over keep-alive connections, either on a fixed schedule (-rate R > 0:
 * request i is due at start + i/R whether or not earlier ones were answered; a request due while
 * every connection is busy waits for one, and the wait counts, since latency runs from the due
 * time: no coordinated omission) or as fast as -connections requests in flight allow (-rate 0:
 * saturation). Each request becomes a CSV line seq,due_ns,sent_ns,done_ns,status,id,"error" with
 * wall-clock Unix nanoseconds and the "id" string of the JSON response body. Per request it makes
 * one write, one or two reads and the epoll waits between them (epoll_pwait2: nanosecond timeouts,
 * so sends are not rounded to milliseconds), and nothing else: no runtime threads, no timers.
 *
 * Usage: httpgen -addr=127.0.0.1:8000 -path=/v1/jobs -body=FILE -rate=200 -duration=5s
 *                -connections=64 -timeout=30s -out=FILE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define IDLEN 64

typedef struct {
    int64_t seq, due, sent, done;
    int status;
    char id[IDLEN];
    const char *err;
} record;

typedef struct {
    int fd;
    int busy;
    size_t have;
    int64_t rec; /* index into records while busy */
    char buf[BUF + 1]; /* NUL-terminated after every read */
} conn;

static struct sockaddr_in server;
static char *request;
static size_t request_len;
static record *records;
static int64_t nrecords, caprecords;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double parse_seconds(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (strcmp(end, "ms") == 0) return v / 1e3;
    return v; /* "s" or nothing */
}

static void die(const char *what) {
    fprintf(stderr, "httpgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    char *data = malloc(BUF);
    *len = fread(data, 1, BUF, f);
    fclose(f);
    return data;
}

/* A blocking connect (loopback: immediate), then non-blocking for the exchanges. */
static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&server, sizeof server) < 0) { close(fd); return -1; }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int64_t new_record(int64_t seq, int64_t due) {
    if (nrecords == caprecords) {
        caprecords = caprecords ? caprecords * 2 : 4096;
        records = realloc(records, (size_t)caprecords * sizeof *records);
        if (!records) die("realloc");
    }
    record *r = &records[nrecords];
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->due = due;
    return nrecords++;
}

static void drop(int epoll, conn *c) {
    if (c->fd >= 0) { epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
    c->fd = -1;
    c->busy = 0;
    c->have = 0;
}

static void finish(int epoll, conn *c, int status, const char *err, int keep) {
    record *r = &records[c->rec];
    r->done = now_ns();
    r->status = status;
    r->err = err;
    c->busy = 0;
    c->have = 0;
    if (!keep || err) drop(epoll, c);
}

static void send_one(int epoll, conn *c, int64_t seq, int64_t due) {
    c->rec = new_record(seq, due);
    if (c->fd < 0) {
        c->fd = dial();
        if (c->fd < 0) { records[c->rec].sent = now_ns(); c->busy = 1; finish(epoll, c, 0, "connect failed", 0); return; }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epoll, EPOLL_CTL_ADD, c->fd, &ev);
    }
    c->busy = 1;
    records[c->rec].sent = now_ns();
    ssize_t n = write(c->fd, request, request_len);
    if (n != (ssize_t)request_len) finish(epoll, c, 0, n < 0 ? "write failed" : "short write", 0);
}

static void copy_id(record *r, const char *body, size_t len) {
    const char *end = body + len, *p = memmem(body, len, "\"id\"", 4);
    if (!p) return;
    for (p += 4; p < end && (*p == ' ' || *p == ':' || *p == '\t'); p++) {}
    if (p >= end || *p != '"') return;
    p++;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || q - p >= IDLEN) return;
    memcpy(r->id, p, (size_t)(q - p));
}

/* A complete response in c->buf: 1 (and the record finished), 0 (need more), -1 (malformed). */
static int parse(int epoll, conn *c) {
    char *head_end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!head_end) return c->have == BUF ? -1 : 0;
    if (c->have < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    int status = atoi(c->buf + 9), keep = 1;
    long length = -1;
    for (char *line = strstr(c->buf, "\r\n") + 2; line < head_end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) length = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "connection:", 11) == 0 && strncasecmp(line + 11, " close", 6) == 0) keep = 0;
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0) return -1;
    }
    size_t header = (size_t)(head_end + 4 - c->buf);
    if (length < 0 || header + (size_t)length > BUF) return -1;
    if (c->have < header + (size_t)length) return 0;
    copy_id(&records[c->rec], head_end + 4, (size_t)length);
    finish(epoll, c, status, NULL, keep);
    return 1;
}

static void readable(int epoll, conn *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->have, BUF - c->have);
        if (n > 0) { c->have += (size_t)n; c->buf[c->have] = 0; if (c->have == BUF) break; continue; }
        if (n < 0 && errno == EAGAIN) break;
        if (c->busy) finish(epoll, c, 0, n == 0 ? "connection closed" : "read failed", 0);
        else drop(epoll, c);
        return;
    }
    if (!c->busy) return;
    if (parse(epoll, c) < 0) finish(epoll, c, 0, "malformed response", 0);
}

static void write_csv(const char *path) {
    FILE *out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!out) die(path);
    for (int64_t i = 0; i < nrecords; i++) {
        record *r = &records[i];
        fprintf(out, "%lld,%lld,%lld,%lld,%d,%s,\"%s\"\n", (long long)r->seq, (long long)r->due, (long long)r->sent,
                (long long)r->done, r->status, r->id, r->err ? r->err : "");
    }
    if (fclose(out) != 0) die(path);
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1:8000", *path = "/v1/jobs", *body_file = NULL, *out = "-";
    char extra[1024] = ""; /* -header=Name: value, repeatable: sent with every request */
    double rate = 0, duration = 5, timeout = 30;
    int connections = 64;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *v = strchr(a, '=');
        if (!v) { fprintf(stderr, "httpgen: expected -name=value, got %s\n", a); return 2; }
        *v++ = 0;
        if (!strcmp(a, "-addr")) addr = v;
        else if (!strcmp(a, "-path")) path = v;
        else if (!strcmp(a, "-body")) body_file = v;
        else if (!strcmp(a, "-rate")) rate = strtod(v, NULL);
        else if (!strcmp(a, "-duration")) duration = parse_seconds(v);
        else if (!strcmp(a, "-connections")) connections = atoi(v);
        else if (!strcmp(a, "-timeout")) timeout = parse_seconds(v);
        else if (!strcmp(a, "-out")) out = v;
        else if (!strcmp(a, "-header")) {
            if (strlen(extra) + strlen(v) + 3 > sizeof extra) { fprintf(stderr, "httpgen: headers too long\n"); return 2; }
            strcat(extra, v);
            strcat(extra, "\r\n");
        }
        else { fprintf(stderr, "httpgen: unknown flag %s\n", a); return 2; }
    }
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!body_file || !colon || colon - addr >= (long)sizeof host || connections < 1 || rate < 0 || duration <= 0) {
        fprintf(stderr, "httpgen: need -body, -addr=host:port, -connections >= 1, -rate >= 0, -duration > 0\n");
        return 2;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) { fprintf(stderr, "httpgen: -addr needs an IPv4 address\n"); return 2; }

    size_t body_len;
    char *body = read_file(body_file, &body_len);
    request = malloc(BUF + 2048);
    int head = snprintf(request, 2048, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                        path, addr, extra, body_len);
    memcpy(request + head, body, body_len);
    request_len = (size_t)head + body_len;

    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) die("epoll_create1");
    conn *conns = calloc((size_t)connections, sizeof *conns);
    for (int i = 0; i < connections; i++) conns[i].fd = -1;

    int64_t start = now_ns() + 5000000, end = start + (int64_t)(duration * 1e9), limit = (int64_t)(timeout * 1e9);
    int64_t total = rate > 0 ? (int64_t)(rate * duration) : INT64_MAX, next = 0;
    double interval = rate > 0 ? 1e9 / rate : 0;
    struct epoll_event events[256];
    for (;;) {
        int64_t now = now_ns(), wait = 100000000; /* at most 100 ms between checks */
        int busy = 0;
        for (int i = 0; i < connections; i++) {
            conn *c = &conns[i];
            if (c->busy && now - records[c->rec].sent > limit) finish(epoll, c, 0, "timeout", 0);
            if (!c->busy) {
                if (rate > 0 && next < total) {
                    int64_t due = start + (int64_t)((double)next * interval);
                    if (due <= now) { send_one(epoll, c, next, due); next++; }
                    else if (due - now < wait) wait = due - now;
                } else if (rate == 0 && now >= start && now < end) {
                    send_one(epoll, c, next++, now);
                } else if (rate == 0 && now < start && start - now < wait) {
                    wait = start - now;
                }
            }
            busy += c->busy;
        }
        /* with every connection busy, a due request waits for an answer: epoll wakes for those */
        if (!busy && (rate > 0 ? next >= total : now >= end)) break;
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        int n = epoll_pwait2(epoll, events, 256, &ts, NULL);
        if (n < 0 && errno != EINTR) die("epoll_pwait2");
        for (int i = 0; i < n; i++) readable(epoll, events[i].data.ptr);
    }
    write_csv(out);
    return 0;
}
