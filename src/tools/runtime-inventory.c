/*
 * runtime-inventory.c -- colibri-runtime-inventory: print the host manifest.
 *
 * A thin program around inventory_collect (src/cache/inventory.h): what OS
 * and kernel this is, how many CPUs and how much memory, how much disk the
 * state dir has, which agent runtimes and confinement tools are installed
 * and at which versions, and which confinement and privilege modes Colibri
 * can use here.  The output follows schemas/runtime-inventory.schema.json.
 *
 * Exit: 0 printed; 1 could not build the manifest; 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cache/inventory.h"
#include "common/proto.h"

static void
inventory_usage(FILE *f)
{
	fprintf(f, "usage: colibri-runtime-inventory [--state-dir DIR] [--timeout-ms MS]"
	           " [--compact]\n");
}

static int
inventory_parse_args(int argc, char **argv, struct inventory_opts *o, int *compact)
{
	static const struct option longopts[] = {
	        {"state-dir", required_argument, NULL, 's'},
	        {"timeout-ms", required_argument, NULL, 't'},
	        {"compact", no_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	char *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->state_dir = optarg;
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 || v > 600000)
				return -1;
			o->timeout_ms = (int)v;
			break;
		case 'c':
			*compact = 1;
			break;
		case 'h':
			inventory_usage(stdout);
			exit(0);
		case 'V':
			printf("colibri-runtime-inventory %s\n", COLIBRI_VERSION);
			exit(0);
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct inventory_opts o = {.state_dir = ".", .timeout_ms = 0};
	int compact = 0;
	json_t *inv;

	if (inventory_parse_args(argc, argv, &o, &compact) == -1) {
		inventory_usage(stderr);
		return EXIT_USAGE;
	}
	if ((inv = inventory_collect_opts(&o)) == NULL) {
		fprintf(stderr, "colibri-runtime-inventory: cannot build the manifest\n");
		return 1;
	}
	json_dumpf(inv, stdout, JSON_SORT_KEYS | (compact ? JSON_COMPACT : JSON_INDENT(2)));
	fputc('\n', stdout);
	json_decref(inv);
	return fflush(stdout) == 0 ? 0 : 1;
}
