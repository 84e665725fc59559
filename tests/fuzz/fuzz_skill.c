/*
 * fuzz_skill.c -- libFuzzer target: the SKILL.md front matter parser.  A
 * parse either fails with a "FILE:LINE: message" cause or yields a skill
 * whose name is set and which renders to JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skills/skill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct skill sk;
	char *cause = NULL;

	if (skill_parse((const char *)data, size, "SKILL.md", &sk, &cause) == 0) {
		if (sk.name == NULL)
			abort();
		json_decref(skill_to_json(&sk, 1));
		skill_free(&sk);
	} else {
		if (cause == NULL || strncmp(cause, "SKILL.md:", 9) != 0)
			abort();
		free(cause);
	}
	return 0;
}
