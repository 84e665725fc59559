/*
 * ingest-jansson.c -- the reference for bench/ingest.py: a full jansson
 * parse of every line of a JSONL file (what ingestion would cost if the
 * daemon built a DOM for each agent event).  Prints the number of lines
 * parsed and of lines that failed; exit 1 when the file cannot be read.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0, ok = 0, bad = 0;
	ssize_t n;
	FILE *f;

	if (argc != 2 || (f = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "usage: ingest-jansson FILE\n");
		return 1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		json_error_t err;
		json_t *v = json_loadb(line, (size_t)n, 0, &err);
		if (v != NULL)
			ok++;
		else
			bad++;
		json_decref(v);
	}
	free(line);
	fclose(f);
	printf("%zu %zu\n", ok, bad);
	return 0;
}
