/*
 * confine-linux.c -- Linux defaults: a jail config means a bubblewrap sandbox.
 *
 * COLIBRI_CONFINE=freebsd-jail switches to the FreeBSD jexec/jail argv so the
 * tests can drive that path end to end with stand-in scripts.
 */
#include <string.h>

#include "common/xmalloc.h"
#include "confine/confine.h"

enum confine_backend
confine_backend_default(void)
{
	return CONFINE_BACKEND_BWRAP;
}

int
confine_backend_parse(const char *value, enum confine_backend *out, char **cause)
{
	*cause = NULL;
	if (value == NULL || *value == '\0' || strcmp(value, "bwrap") == 0) {
		*out = CONFINE_BACKEND_BWRAP;
		return 0;
	}
	if (strcmp(value, "freebsd-jail") == 0) {
		*out = CONFINE_BACKEND_JAIL;
		return 0;
	}
	xasprintf(cause, "COLIBRI_CONFINE=\"%s\" is not one of bwrap, freebsd-jail", value);
	return -1;
}
