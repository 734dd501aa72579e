/* The HTTP server of server.h: libmicrohttpd in external-loop mode, requests
 * suspended until the caller answers them. */
#include "server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"

enum { READING, QUEUED, TAKEN, ANSWERED, CLOSING };

typedef struct req {
  ser_http_request pub;
  ser_http_server *srv;
  struct MHD_Connection *conn;
  char *method, *path, *content_type;
  char *names[SER_HTTP_MAX_ARGS], *values[SER_HTTP_MAX_ARGS];
  unsigned char *body;
  size_t cap;
  int state, too_large, too_many_args;
  struct MHD_Response *resp;
  int status;
  struct req *next; /* the ready queue (QUEUED) or the taken list (TAKEN) */
} req;

struct ser_http_server {
  struct MHD_Daemon *d;
  int fd, port;
  size_t max_body;
  uint64_t next_id;
  req *ready_head, *ready_tail; /* complete requests, oldest first */
  req *taken;                   /* handed out, not yet answered */
  int n_taken;
};

ser_http_opts ser_http_opts_default(void) {
  return (ser_http_opts){.host = "127.0.0.1", .port = 8080, .max_body = 32u << 20, .timeout_s = 30,
                         .max_connections = 64};
}

static char *dupstr(const char *s) {
  s = s ? s : "";
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void req_free(req *r) {
  if (!r) return;
  free(r->method);
  free(r->path);
  free(r->content_type);
  for (int i = 0; i < r->pub.n_args; i++) free(r->names[i]), free(r->values[i]);
  if (r->body) ser_free(r->body, r->cap);
  if (r->resp) MHD_destroy_response(r->resp);
  free(r);
}

static void unlink_req(ser_http_server *s, req *r) {
  req **pp = r->state == QUEUED ? &s->ready_head : r->state == TAKEN ? &s->taken : NULL;
  if (!pp) return;
  req *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next) {
    if (*pp != r) continue;
    *pp = r->next;
    if (r->state == QUEUED && s->ready_tail == r) s->ready_tail = prev;
    if (r->state == TAKEN) s->n_taken--;
    return;
  }
}

static struct MHD_Response *make_response(const char *content_type, const void *body, size_t len,
                                          const char *const *headers) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return NULL;
  if (content_type && *content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  /* the page and its answers change with the checkpoint: never reuse them from a cache */
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2)
    MHD_add_response_header(resp, headers[i], headers[i + 1]);
  return resp;
}

/* The server's own answer (413): JSON like the caller's errors. */
static enum MHD_Result answer_now(struct MHD_Connection *conn, int status, const char *msg) {
  char body[512];
  int n = snprintf(body, sizeof body, "{\"error\": \"%s\"}", msg);
  struct MHD_Response *resp = make_response("application/json", body, (size_t)n, NULL);
  if (!resp) return MHD_NO;
  enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  (void)kind;
  req *r = cls;
  if (r->pub.n_args == SER_HTTP_MAX_ARGS) {
    r->too_many_args = 1;
    return MHD_NO;
  }
  int i = r->pub.n_args;
  r->names[i] = dupstr(key);
  r->values[i] = dupstr(value);
  if (!r->names[i] || !r->values[i]) {
    free(r->names[i]), free(r->values[i]);
    return MHD_NO;
  }
  r->pub.arg_names[i] = r->names[i];
  r->pub.arg_values[i] = r->values[i];
  r->pub.n_args++;
  return MHD_YES;
}

static req *req_new(ser_http_server *s, struct MHD_Connection *conn, const char *url, const char *method) {
  req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->srv = s;
  r->conn = conn;
  r->method = dupstr(method);
  r->path = dupstr(url);
  r->content_type = dupstr(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE));
  if (!r->method || !r->path || !r->content_type) {
    req_free(r);
    return NULL;
  }
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
  r->pub.id = ++s->next_id;
  r->pub.method = r->method;
  r->pub.path = r->path;
  r->pub.content_type = r->content_type;
  return r;
}

/* Appends a piece of the body; past max_body the request is marked and the rest discarded. */
static int append_body(req *r, const char *data, size_t n, size_t max_body) {
  if (r->too_large) return 0;
  if (r->pub.body_len + n > max_body) {
    r->too_large = 1;
    return 0;
  }
  if (r->pub.body_len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 64 << 10;
    while (cap < r->pub.body_len + n) cap *= 2;
    if (cap > max_body) cap = max_body;
    unsigned char *b = ser_alloc(cap);
    if (!b) return -1;
    if (r->pub.body_len) memcpy(b, r->body, r->pub.body_len);
    if (r->body) ser_free(r->body, r->cap);
    r->body = b;
    r->cap = cap;
  }
  memcpy(r->body + r->pub.body_len, data, n);
  r->pub.body_len += n;
  r->pub.body = r->body;
  return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  (void)version;
  ser_http_server *s = cls;
  req *r = *con_cls;
  char msg[256];
  if (!r) { /* headers are in; no body byte has been read yet */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
      char *end = NULL;
      errno = 0;
      unsigned long long n = strtoull(cl, &end, 10);
      if (errno == 0 && end != cl && n > s->max_body) {
        snprintf(msg, sizeof msg, "request body of %llu bytes is over the limit of %zu bytes", n, s->max_body);
        return answer_now(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
      }
    }
    r = req_new(s, conn, url, method);
    if (!r) return MHD_NO;
    *con_cls = r;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    if (append_body(r, upload_data, *upload_data_size, s->max_body) < 0) return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }
  switch (r->state) {
    case READING:
      if (r->too_large) {
        snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", s->max_body);
        r->state = ANSWERED;
        return answer_now(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg);
      }
      if (r->too_many_args) {
        snprintf(msg, sizeof msg, "more than %d query arguments", SER_HTTP_MAX_ARGS);
        r->state = ANSWERED;
        return answer_now(conn, MHD_HTTP_BAD_REQUEST, msg);
      }
      r->state = QUEUED;
      r->next = NULL;
      if (s->ready_tail) s->ready_tail->next = r;
      else s->ready_head = r;
      s->ready_tail = r;
      MHD_suspend_connection(conn);
      return MHD_YES;
    case ANSWERED:
      if (r->resp) {
        enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
        return rc;
      }
      return MHD_YES;
    default: /* CLOSING (ser_http_stop), or a state that cannot be resumed into */
      return MHD_NO;
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn, (void)toe;
  req *r = *con_cls;
  if (!r) return;
  unlink_req(cls, r);
  req_free(r);
  *con_cls = NULL;
}

static int listen_on(ser_http_server *s, const char *host, int port, int *v6) {
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, service, &hints, &res);
  if (gai != 0)
    return ser_error(SER_EINVAL, "http: cannot listen on '%s': %s (expected an address such as 127.0.0.1 or ::1)",
                     host, gai_strerror(gai));
  int err = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      getsockname(fd, (struct sockaddr *)&ss, &len);
      s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
      *v6 = ss.ss_family == AF_INET6;
      s->fd = fd;
      freeaddrinfo(res);
      return 0;
    }
    err = errno;
    close(fd);
  }
  freeaddrinfo(res);
  return ser_error(SER_EIO, "http: cannot listen on %s port %d: %s%s", host, port, strerror(err),
                   err == EADDRINUSE ? " (another program uses the port: choose another with --port, or 0 for any)"
                   : err == EADDRNOTAVAIL ? " (not an address of this machine)"
                                          : "");
}

int ser_http_start(ser_http_server **out, const ser_http_opts *o) {
  *out = NULL;
  ser_http_opts d = ser_http_opts_default();
  if (!o) o = &d;
  if (o->port < 0 || o->port > 65535)
    return ser_error(SER_EINVAL, "http: port %d is out of range (expected 0..65535; 0 picks a free one)", o->port);
  if (o->max_body == 0) return ser_error(SER_EINVAL, "http: max_body must be at least 1 byte");
  if (o->timeout_s == 0) return ser_error(SER_EINVAL, "http: timeout must be at least 1 second");
  if (o->max_connections == 0) return ser_error(SER_EINVAL, "http: max_connections must be at least 1");
  ser_http_server *s = calloc(1, sizeof *s);
  if (!s) return ser_error(SER_ENOMEM, "http: out of memory");
  s->fd = -1;
  s->max_body = o->max_body;
  int v6 = 0;
  int rc = listen_on(s, o->host && *o->host ? o->host : "127.0.0.1", o->port, &v6);
  if (rc < 0) {
    free(s);
    return rc;
  }
  unsigned flags = MHD_ALLOW_SUSPEND_RESUME | (v6 ? MHD_USE_IPv6 : 0);
  s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, s->fd,
                          MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                          o->max_connections, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
  if (!s->d) {
    close(s->fd);
    free(s);
    return ser_error(SER_EIO, "http: libmicrohttpd could not start on port %d", o->port);
  }
  *out = s;
  return 0;
}

int ser_http_port(const ser_http_server *s) { return s ? s->port : -1; }

int ser_http_pending(const ser_http_server *s) { return s ? s->n_taken : 0; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ser_http_next(ser_http_server *s, const ser_http_request **out, double timeout_s) {
  *out = NULL;
  if (!s || !s->d) return ser_error(SER_ESTATE, "http: the server is stopped");
  if (!(timeout_s >= 0)) return ser_error(SER_EINVAL, "http: timeout %g must be >= 0 seconds", timeout_s);
  double end = now_s() + timeout_s;
  /* One pass without waiting first: it sends answers given since the last call. */
  if (MHD_run(s->d) != MHD_YES) return ser_error(SER_EIO, "http: the event loop failed");
  for (;;) {
    if (s->ready_head) {
      req *r = s->ready_head;
      s->ready_head = r->next;
      if (!s->ready_head) s->ready_tail = NULL;
      r->state = TAKEN;
      r->next = s->taken;
      s->taken = r;
      s->n_taken++;
      *out = &r->pub;
      return 1;
    }
    double left = end - now_s();
    if (left <= 0) return 0;
    int32_t ms = left > 1e6 ? 1000000000 : (int32_t)(left * 1000.0) + 1;
    if (MHD_run_wait(s->d, ms) != MHD_YES && errno != EINTR) return ser_error(SER_EIO, "http: the event loop failed");
  }
}

int ser_http_respond(ser_http_server *s, uint64_t id, int status, const char *content_type, const void *body,
                     size_t len, const char *const *headers) {
  if (!s || !s->d) return ser_error(SER_ESTATE, "http: the server is stopped");
  if (status < 100 || status > 599) return ser_error(SER_EINVAL, "http: status %d is not an HTTP status (100..599)", status);
  req *r = s->taken;
  while (r && r->pub.id != id) r = r->next;
  if (!r) return ser_error(SER_EINVAL, "http: request %llu is not waiting for an answer (answered already, or unknown)",
                           (unsigned long long)id);
  struct MHD_Response *resp = make_response(content_type, body, len, headers);
  if (!resp) return ser_error(SER_ENOMEM, "http: cannot build a response of %zu bytes", len);
  unlink_req(s, r);
  r->state = ANSWERED;
  r->resp = resp;
  r->status = status;
  MHD_resume_connection(r->conn);
  return 0;
}

void ser_http_stop(ser_http_server *s) {
  if (!s) return;
  if (s->d) {
    /* libmicrohttpd must not be stopped with suspended connections: resume each
     * into CLOSING, where the handler closes it, and let one pass do that. */
    int any = 0;
    for (req **lists[] = {&s->ready_head, &s->taken}, ***l = lists; l < lists + 2; l++) {
      for (req *r = **l, *nx; r; r = nx) {
        nx = r->next;
        r->state = CLOSING;
        r->next = NULL;
        MHD_resume_connection(r->conn);
        any = 1;
      }
      **l = NULL;
    }
    s->ready_tail = NULL;
    s->n_taken = 0;
    if (any) MHD_run(s->d);
    MHD_stop_daemon(s->d); /* closes the listening socket it was given */
  } else if (s->fd >= 0) {
    close(s->fd);
  }
  free(s);
}
