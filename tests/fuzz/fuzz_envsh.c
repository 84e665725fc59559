/*
 * fuzz_envsh.c -- libFuzzer target: the env.sh quoting.  Any value (without
 * NUL) must come back byte for byte when the quoted word is read the way
 * POSIX sh reads it: '...' is literal, and outside quotes \' is a quote.
 * The decoder below is that rule, written independently of the encoder; the
 * unit tests check the same against a real /bin/sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "confine/stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read one sh word made of '...' runs and \x escapes; NULL if it is not one. */
static char *
sh_unquote(const char *q, size_t *outlen)
{
	char *out = malloc(strlen(q) + 1);
	size_t o = 0;

	while (*q != '\0') {
		if (*q == '\'') {
			q++;
			while (*q != '\0' && *q != '\'')
				out[o++] = *q++;
			if (*q != '\'')
				goto bad;
			q++;
		} else if (*q == '\\' && q[1] != '\0') {
			out[o++] = q[1];
			q += 2;
		} else
			goto bad; /* anything unquoted would be expanded or split */
	}
	*outlen = o;
	return out;
bad:
	free(out);
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v, *q, *back;
	size_t n;

	if (memchr(data, '\0', size) != NULL)
		return 0;
	v = malloc(size + 1);
	memcpy(v, data, size);
	v[size] = '\0';
	q = stage_shell_quote(v);
	back = sh_unquote(q, &n);
	if (back == NULL || n != size || memcmp(back, v, size) != 0)
		abort();
	free(back);
	free(q);
	free(v);
	return 0;
}
