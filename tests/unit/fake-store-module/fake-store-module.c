/*
 * fake-store-module.c -- a PostgreSQL store module from "another build".
 *
 * Built as store-postgres.so in a directory of its own, it exports the
 * module's one symbol with an ABI number no daemon has, so test_store_rules
 * can show that store.c refuses a module it would otherwise call wrongly
 * (store-module.h).  It holds no functions: a daemon that used it would
 * crash, which is exactly what the ABI check prevents.
 */
#include "store/store-module.h"

__attribute__((visibility("default"))) const struct store_pg_ops colibri_store_postgres = {
        .abi = STORE_MODULE_ABI + 1000,
        .size = sizeof(struct store_pg_ops),
};
