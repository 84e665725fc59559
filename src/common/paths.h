/*
 * paths.h -- the operating system's default locations (DESIGN.md, "Paths").
 * The only place that knows them; --state-dir overrides them all.
 */
#ifndef COLIBRI_PATHS_H
#define COLIBRI_PATHS_H

#ifdef __FreeBSD__
#define PATH_DEFAULT_SOCKET       "/var/run/colibri/colibri.sock"
#define PATH_DEFAULT_DB           "/var/db/colibri/colibri.sqlite"
#define PATH_DEFAULT_DATA         "/var/db/colibri"
#define PATH_DEFAULT_PROVIDER_ENV "/usr/local/etc/colibri/provider.env"
#define PATH_DEFAULT_CONFIG_DIR   "/usr/local/etc/colibri"
#define PATH_DEFAULT_LOG          "/var/log/colibri.log"
#else
#define PATH_DEFAULT_SOCKET       "/run/colibri/colibri.sock"
#define PATH_DEFAULT_DB           "/var/lib/colibri/colibri.sqlite"
#define PATH_DEFAULT_DATA         "/var/lib/colibri"
#define PATH_DEFAULT_PROVIDER_ENV "/etc/colibri/provider.env"
#define PATH_DEFAULT_CONFIG_DIR   "/etc/colibri"
#define PATH_DEFAULT_LOG          "/var/log/colibri.log"
#endif

#endif
