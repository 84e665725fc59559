/*
 * confine-freebsd.c -- FreeBSD defaults: a jail config means a jail.
 *
 * bubblewrap does not exist here, so COLIBRI_CONFINE=bwrap is refused at
 * start-up rather than failing at the first spawn.
 */
#include <string.h>

#include "common/xmalloc.h"
#include "confine/confine.h"

enum confine_backend
confine_backend_default(void)
{
	return CONFINE_BACKEND_JAIL;
}

int
confine_backend_parse(const char *value, enum confine_backend *out, char **cause)
{
	*cause = NULL;
	if (value == NULL || *value == '\0' || strcmp(value, "freebsd-jail") == 0) {
		*out = CONFINE_BACKEND_JAIL;
		return 0;
	}
	xasprintf(cause, "COLIBRI_CONFINE=\"%s\": only freebsd-jail is available on FreeBSD",
	          value);
	return -1;
}
