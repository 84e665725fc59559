/*
 * jail-name.h -- the small validators every confinement path agrees on.
 *
 * One definition of what a jail name, an in-jail user, an ip4 value, a stage
 * id and a confinement path may look like, shared by the daemon's confine
 * library and the setuid helper colibri-jail-spawn.  The helper compiles this
 * file directly (it depends on libc only), so the daemon can never produce a
 * request the helper reads differently.
 */
#ifndef COLIBRI_CONFINE_JAIL_NAME_H
#define COLIBRI_CONFINE_JAIL_NAME_H

#include <stddef.h>

#define JAIL_NAME_MAX 64
#define JAIL_USER_MAX 32
#define STAGE_ID_MAX  64
/*
 * Where the stages live inside a jail root unless COLIBRI_JAIL_STAGE_DIR moves
 * them (stage.h), and so the setuid helper's default stage prefix: the only
 * program the helper runs is /bin/sh /JAIL_STAGE_REL/<id>/launch.sh.
 */
#define JAIL_STAGE_REL "home/clawdie/.cache/colibri/stage"
/* "colibri-" + up to 48 characters of the path's last component. */
#define JAIL_EPHEMERAL_NAME_SIZE 64

/*
 * A jail name: [A-Za-z0-9_.-]{1,64}, no "..", no leading '-' (jexec would read
 * it as an option) and not all digits (jexec would read it as a jid).
 * Returns NULL when valid, else a static description of the problem.
 */
const char *jail_name_check(const char *name);
/* An in-jail user: [A-Za-z0-9_][A-Za-z0-9_.-]{0,31}.  NULL when valid. */
const char *jail_user_check(const char *user);
/*
 * A user the setuid helper may run a jailed command as: jail_user_check, and
 * neither "root" nor "toor" (FreeBSD's second uid-0 account) nor all digits
 * (it would read as a uid).  NULL when acceptable.  Whether the name maps to
 * uid 0 in a password file is jail_passwd_uid's part.
 */
const char *jail_unpriv_user_check(const char *user);
/*
 * The uid a passwd(5) or master.passwd(5) line gives user (name is field 1,
 * uid field 3 in both), or -1 when the line is about another name, a comment,
 * or malformed.  line is one NUL-terminated line without its newline.
 */
long jail_passwd_uid(const char *line, const char *user);
/*
 * The setuid helper's program check: cmd (n words) must be exactly
 *   /bin/sh PREFIX/<id>/launch.sh
 * with PREFIX the configured in-jail stage prefix (absolute, no trailing '/')
 * and <id> a stage id.  NULL when so, else a static description.
 */
const char *jail_launch_check(const char *prefix, char *const *cmd, int n);
/* ip4: a dotted IPv4 address, "inherit", "disable" or "none" (= disable).  NULL when valid. */
const char *jail_ip4_check(const char *ip4);
/* A stage id: same alphabet as a jail name, 1..64, no "..", not "." .  NULL when valid. */
const char *stage_id_check(const char *id);
/*
 * A confinement path (path, root_path): absolute, at most PATH_MAX, no
 * control characters, no "." or ".." component.  NULL when valid.
 */
const char *jail_path_check(const char *path);
/*
 * The name of the ephemeral jail created for path: "colibri-" followed by the
 * last path component with every byte outside [A-Za-z0-9_-] replaced by '_',
 * cut to 48 bytes ("colibri-root" for "/").  Dots are replaced because a dot
 * in a jail name means a child jail.  Writes into out (at least
 * JAIL_EPHEMERAL_NAME_SIZE bytes).
 */
void jail_ephemeral_name(const char *path, char *out, size_t outlen);

#endif
