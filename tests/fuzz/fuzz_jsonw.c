/*
 * fuzz_jsonw.c -- libFuzzer target: the compact writer (src/common/jsonw.c)
 * must produce exactly jansson's json_dumps(JSON_COMPACT) bytes for every
 * value jansson can parse from the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	struct buf b;
	char *want;

	if (v == NULL)
		return 0;
	want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	buf_init(&b);
	if (jsonw_dump(&b, v) != 0 || want == NULL || b.len != strlen(want) ||
	    memcmp(b.data, want, b.len) != 0)
		abort();
	buf_free(&b);
	free(want);
	json_decref(v);
	return 0;
}
