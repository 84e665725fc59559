/*
 * helper-os.h -- the few things colibri-jail-spawn does differently per OS.
 *
 * helper-os-freebsd.c and helper-os-linux.c implement these; meson picks one
 * by host_machine.system().
 */
#ifndef COLIBRI_HELPER_OS_H
#define COLIBRI_HELPER_OS_H

#include <stddef.h>

/* Non-zero when running setuid/setgid (the kernel's secure-exec flag or ruid != euid). */
int helper_os_privileged(void);
/*
 * The path of the running jail called name, into path (len bytes).
 * Returns 0, 1 when jails do not exist on this OS (nothing to check), or -1
 * with a message in err.
 */
int helper_os_jail_path(const char *name, char *path, size_t len, char *err, size_t errlen);

#endif
