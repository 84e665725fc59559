/*
 * skill.h -- one skill: a folder holding SKILL.md, and its front matter.
 *
 * SKILL.md opens with front matter between two "---" lines, then a markdown
 * body.  The front matter is the small YAML subset skills use in practice:
 *
 *   ---
 *   name: pdf-tools                     required; letters, digits, . _ -
 *   description: Fill and merge PDFs    required
 *   version: 1.2                        any other key: kept as a string
 *   tags: [pdf, "office docs"]          tags: inline list, block list of
 *   license: MIT                          "- item" lines, or "a, b"
 *   notes: |                            | keeps line breaks, > folds them
 *     indented lines
 *   ---
 *
 * Values may be plain (a " #" starts a comment), 'single' or "double"
 * quoted (\" \\ \n \t \/ escapes); an indented line continues the previous
 * plain value.  Anything else is an error that names the file and line:
 * "SKILL.md:3: expected key: value".
 *
 * The parser is written to be fed arbitrary bytes (it has a libFuzzer
 * target): it reads only within [data, data+len), refuses files over
 * SKILL_MAX_BYTES, NUL bytes and invalid UTF-8, and caps the number of
 * fields, so its work and memory are bounded by the input size.
 */
#ifndef COLIBRI_SKILL_H
#define COLIBRI_SKILL_H

#include <stddef.h>

#include <jansson.h>

#define SKILL_MAX_BYTES  (256 * 1024)
#define SKILL_MAX_FIELDS 64
#define SKILL_MAX_TAGS   64
#define SKILL_NAME_MAX   64

struct skill_field {
	char *key;
	char *value; /* for tags: the items joined by ", " */
	int line;
};

struct skill {
	char *name;
	char *description;
	char **tags; /* items of the tags field, in order */
	size_t ntags;
	struct skill_field *fields; /* every key but name and description, in file order */
	size_t nfields;
	char *body; /* everything after the closing "---" line */
	char *path; /* SKILL.md path (set by the catalog scanner; NULL after skill_parse) */
};

/*
 * Parse SKILL.md bytes.  file is the name used in error messages.  Returns 0
 * and fills *out (release with skill_free), or -1 with *cause allocated
 * ("FILE:LINE: message"; caller frees) and *out zeroed.
 */
int skill_parse(const char *data, size_t len, const char *file, struct skill *out, char **cause);
void skill_free(struct skill *);
/* The value of a field (tags joined by ", "), or NULL. */
const char *skill_field(const struct skill *, const char *key);
/*
 * {"name", "description", "path", "fields": {key: string, "tags": [..]},
 * "body"} with body only if with_body.  New reference.
 */
json_t *skill_to_json(const struct skill *, int with_body);
/* Whether len bytes are valid UTF-8 without NUL; on failure *bad is the offset of the bad byte. */
int skill_utf8_valid(const unsigned char *p, size_t len, size_t *bad);

#endif
