/* SHA-256 (FIPS 180-4) of memory and of files: content keys of the embedding
 * cache (a clip's file bytes, an encoder's weights file). Not for security
 * decisions beyond "did these bytes change". */
#ifndef SER_IO_SHA256_H
#define SER_IO_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct ser_sha256 {
  uint32_t h[8];
  uint64_t n;        /* bytes hashed so far */
  uint8_t buf[64];
  size_t fill;
} ser_sha256;

void ser_sha256_init(ser_sha256 *s);
void ser_sha256_update(ser_sha256 *s, const void *data, size_t len);
/* out: 32 bytes. */
void ser_sha256_final(ser_sha256 *s, uint8_t out[32]);
/* hex: 65 bytes (64 hex digits and a NUL). */
void ser_sha256_hex(char hex[65], const void *data, size_t len);
/* The digest of a file's bytes as 64 hex digits; SER_EIO with the path and
 * the reason when it cannot be opened or read. */
int ser_sha256_file(char hex[65], const char *path);

#endif
