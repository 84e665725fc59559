/*
 * fuzz_jsonr.c -- libFuzzer target: whatever the fast request reader
 * (src/common/jsonr.c) builds from the input, jansson's json_loadb(buf,
 * len, 0) must build too, with the same json_dumps(JSON_COMPACT) bytes
 * (so the same keys in the same order) and json_equal.  Where jsonr_loadb
 * gives up, the caller asks json_loadb anyway: nothing to compare.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = jsonr_loadb((const char *)data, size), *want;
	char *a, *b;

	if (v == NULL)
		return 0;
	want = json_loadb((const char *)data, size, 0, NULL);
	if (want == NULL)
		abort();
	a = json_dumps(v, JSON_COMPACT);
	b = json_dumps(want, JSON_COMPACT);
	if (a == NULL || b == NULL || strcmp(a, b) != 0 || !json_equal(v, want))
		abort();
	free(a);
	free(b);
	json_decref(want);
	json_decref(v);
	return 0;
}
