/*
 * fuzz_vault.c -- libFuzzer target: every parser of untrusted text in the
 * vault path -- the provider env file and bw's status, collections and
 * items output -- and the .env renderer on whatever items parse; and the
 * .env reader (a tenant_env spawn reads it back), whose result must render
 * and read back to the same variables.  The first byte picks the parser.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vault_creds c;
	const char *s;
	char *a = NULL, *b = NULL, *cause = NULL, *text;
	json_t *vars, *again;
	size_t n, len;

	if (size < 1)
		return 0;
	s = (const char *)data + 1;
	n = size - 1;
	switch (data[0] % 5) {
	case 0:
		memset(&c, 0, sizeof c);
		vault_parse_provider_env(s, n, &c, &cause);
		vault_creds_clear(&c);
		break;
	case 1:
		if (vault_parse_status(s, n, &a, &b, &cause) == 0 && a != NULL)
			vault_server_matches(a, "https://vault.example.test/");
		break;
	case 2:
		vault_find_collection(s, n, "proof0", &a, &cause);
		break;
	case 3:
		if ((vars = vault_items_to_vars(s, n, &cause)) != NULL) {
			text = vault_render_env(vars, &len);
			if (strlen(text) != len)
				abort();
			free(text);
			json_decref(vars);
		}
		break;
	case 4:
		if ((vars = vault_parse_env(s, n, &cause)) != NULL) {
			text = vault_render_env(vars, &len);
			if ((again = vault_parse_env(text, len, &a)) == NULL ||
			    !json_equal(vars, again))
				abort();
			free(text);
			vault_vars_free(again);
			vault_vars_free(vars);
		}
		break;
	}
	free(a);
	free(b);
	free(cause);
	return 0;
}
