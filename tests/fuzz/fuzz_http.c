/* libFuzzer target: serve.lua's HTTP server plumbing (src/http/server.c over
 * libmicrohttpd) on arbitrary bytes from a client. One server (127.0.0.1, an ephemeral
 * port, a 4 KiB body limit) lives for the whole run; each input is written to a new
 * connection, the server runs until it has nothing more to do, every request it hands
 * out is answered (and checked: a body within the limit, an id answered once), and the
 * connection is closed. Sanitizer reports, a request handed out twice, a body over the
 * limit or an answer refused are bugs; so is the server no longer answering a plain
 * request after any input. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"
#include "http/server.h"

static ser_http_server *srv;
enum { MAX_BODY = 4096 };

static void fail(const char *what) {
  fprintf(stderr, "fuzz_http: %s (%s)\n", what, ser_errmsg());
  abort();
}

static int connect_local(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ser_http_port(srv)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("cannot connect to the server");
  return fd;
}

/* Runs the server for about `ms`, answering whatever it hands out; returns the count. */
static int serve_for(int ms) {
  int n = 0;
  for (int i = 0; i < ms; i++) {
    const ser_http_request *r = NULL;
    int rc = ser_http_next(srv, &r, 0.001);
    if (rc < 0) fail("the event loop failed");
    if (rc == 0) continue;
    if (r->body_len > MAX_BODY) fail("a body over the limit was handed out");
    if (!r->method || !r->path || !r->content_type) fail("a request without method, path or type");
    uint64_t id = r->id;
    if (ser_http_respond(srv, id, 200, "text/plain", "ok", 2, NULL) < 0) fail("an answer was refused");
    if (ser_http_respond(srv, id, 200, "text/plain", "ok", 2, NULL) == 0) fail("a request was answered twice");
    n++;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) {
    ser_http_opts o = ser_http_opts_default();
    o.port = 0;
    o.max_body = MAX_BODY;
    o.timeout_s = 1;
    if (ser_http_start(&srv, &o) < 0) fail("cannot start the server");
  }
  int fd = connect_local();
  size_t off = 0;
  while (off < size) {
    ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w <= 0) {
      if (serve_for(2) == 0 && w < 0) break; /* the server closed it, or its buffer is full */
      continue;
    }
    off += (size_t)w;
  }
  shutdown(fd, SHUT_WR);
  serve_for(20);
  close(fd);
  serve_for(2);
  /* the server still answers a well-formed request */
  fd = connect_local();
  static const char ping[] = "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof ping - 1)) fail("cannot send the ping");
  int answered = 0;
  for (int i = 0; i < 200 && !answered; i++) answered = serve_for(5);
  if (!answered) fail("the server no longer answers after this input");
  close(fd);
  serve_for(2);
  return 0;
}
