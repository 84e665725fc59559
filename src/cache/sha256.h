/*
 * sha256.h -- a small, self-contained SHA-256 (FIPS 180-4).
 *
 * The prompt assembler names each region by its SHA-256 so that a session can
 * tell at a glance whether its cache prefix moved.  We need nothing more than
 * a digest of a byte string, so a hundred lines beat a crypto library.
 */
#ifndef COLIBRI_SHA256_H
#define COLIBRI_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN    64 /* without the NUL */

struct sha256_ctx {
	uint32_t h[8];
	uint64_t nbytes;   /* message length so far */
	uint8_t block[64]; /* pending partial block */
	size_t blen;       /* bytes used in block */
};

void sha256_init(struct sha256_ctx *);
void sha256_update(struct sha256_ctx *, const void *, size_t);
/* Write the 32-byte digest; the context must be re-initialised to reuse. */
void sha256_final(struct sha256_ctx *, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot: lowercase hex digest of data into out (65 bytes, NUL-terminated). */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
