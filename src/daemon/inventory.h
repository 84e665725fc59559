/*
 * inventory.h -- the host-status subsystem (inventory.c): the latest
 * manifest of colibri-runtime-inventory, refreshed on a timer.
 */
#ifndef COLIBRI_INVENTORY_H
#define COLIBRI_INVENTORY_H

#include <jansson.h>

int inventory_init(char **cause);
int inventory_busy(void);
void inventory_close(void);
/* The latest runtime inventory manifest (borrowed), or NULL. */
json_t *inventory_host_status(void);
/* Was colibri-runtime-inventory found on PATH at start? */
int inventory_found(void);

#endif
