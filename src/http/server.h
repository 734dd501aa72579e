/* A small HTTP/1.1 server (GNU libmicrohttpd underneath) for serlua's local web page.
 *
 * Threads: none. The daemon runs in libmicrohttpd's external-loop mode and
 * ser_http_next() drives it (MHD_run_wait) on the caller's thread, so every
 * callback runs there and nothing needs a lock. The caller is serlua's one Lua
 * thread, which owns the model; a worker-thread design would only add a queue
 * and a mutex in front of a model that answers one request at a time anyway.
 * The price: sockets wait while a request is being computed (tens of
 * milliseconds per clip), which the kernel's buffers absorb.
 *
 * A request whose body has arrived is suspended (MHD_suspend_connection) and
 * queued; ser_http_next() hands it out, the caller answers it with
 * ser_http_respond(), which resumes the connection so the next
 * ser_http_next() sends the answer. The server itself answers only what the
 * caller never sees: a body over opts.max_body (413, checked against the
 * Content-Length before any byte is read, and again while reading a chunked
 * body) and what libmicrohttpd refuses (malformed requests). Idle or slow
 * connections are closed after opts.timeout_s seconds. */
#ifndef SER_HTTP_SERVER_H
#define SER_HTTP_SERVER_H
#include <stddef.h>
#include <stdint.h>

typedef struct ser_http_server ser_http_server;

typedef struct {
  const char *host;         /* address to listen on: "127.0.0.1" (default), "::1", "0.0.0.0", a name */
  int port;                 /* 0: an ephemeral port (ser_http_port tells which) */
  size_t max_body;          /* largest request body in bytes; larger ones get 413 */
  unsigned timeout_s;       /* a connection idle this long is closed (slow clients) */
  unsigned max_connections; /* further connections are refused until one closes */
} ser_http_opts;

ser_http_opts ser_http_opts_default(void); /* 127.0.0.1:8080, 32 MiB, 30 s, 64 connections */

#define SER_HTTP_MAX_ARGS 32

/* A request handed to the caller. Valid until ser_http_respond(id) or ser_http_stop. */
typedef struct {
  uint64_t id;
  const char *method;       /* "GET", "POST", ... as sent */
  const char *path;         /* the URL's path, without the query */
  const char *content_type; /* the Content-Type header, "" when absent */
  int n_args;               /* query arguments (?a=1&b=2), percent-decoded */
  const char *arg_names[SER_HTTP_MAX_ARGS], *arg_values[SER_HTTP_MAX_ARGS];
  const unsigned char *body;
  size_t body_len;
} ser_http_request;

/* Listens (with a message naming the address and the reason on failure: address
 * in use, not an address of this machine, ...) and starts the daemon. */
int ser_http_start(ser_http_server **out, const ser_http_opts *opts);
int ser_http_port(const ser_http_server *s);

/* Serves connections for up to timeout_s seconds and returns 1 with *req set as
 * soon as a complete request is waiting, 0 when the time ran out, negative on a
 * failure of the event loop. */
int ser_http_next(ser_http_server *s, const ser_http_request **req, double timeout_s);

/* Answers request id (once). headers: NULL or name, value, ..., NULL pairs.
 * The body is copied. Unknown or already answered ids are an error. */
int ser_http_respond(ser_http_server *s, uint64_t id, int status, const char *content_type, const void *body,
                     size_t len, const char *const *headers);

/* Requests handed out and not yet answered (a caller's loop can check that it answers each). */
int ser_http_pending(const ser_http_server *s);

/* Closes every connection (unanswered requests are dropped) and frees s. NULL is fine. */
void ser_http_stop(ser_http_server *s);

#endif
