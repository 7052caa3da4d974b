/* Stand-in for a fuzzing engine: runs a harness's LLVMFuzzerTestOneInput once
 * per corpus file, so that every harness builds and its corpus runs as an
 * ordinary test when no engine (libFuzzer) is configured.
 *
 * Usage: fuzz_xxx PATH...   where each PATH is a file or a directory whose
 * entries (recursively, dot files skipped) are inputs. Exits 1 when a path
 * cannot be read or no input was found, 0 otherwise; a harness that finds a
 * bug aborts. */
#include "util/common.h"
#include "util/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Directory nesting we follow; corpora are flat, this only stops loops. */
#define FUZZ_MAIN_MAX_DEPTH 8

static int fuzz_main_run_file(const char *path, unsigned long *n_inputs)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0, cap = 4096;
	int ret = -1;

	if (!f) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		return -1;
	}
	data = x_malloc(cap);
	for (;;) {
		len += fread(data + len, 1, cap - len, f);
		if (len < cap)
			break;
		cap *= 2;
		data = x_realloc(data, cap);
	}
	if (ferror(f)) {
		fprintf(stderr, "fuzz_main: %s: read error\n", path);
		goto out;
	}
	/* an exact-size copy, so ASan catches reads past the input */
	char *exact = x_malloc(len);
	memcpy(exact, data, len);
	LLVMFuzzerTestOneInput((const uint8_t *)exact, len);
	free(exact);
	(*n_inputs)++;
	ret = 0;
out:
	free(data);
	fclose(f);
	return ret;
}

static int fuzz_main_run_path(const char *path, unsigned depth, unsigned long *n_inputs);

static int fuzz_main_run_dir(const char *path, unsigned depth, unsigned long *n_inputs)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	int ret = 0;

	if (!dir) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		size_t n = strlen(path) + strlen(de->d_name) + 2;
		char *child = x_malloc(n);
		snprintf(child, n, "%s/%s", path, de->d_name);
		if (fuzz_main_run_path(child, depth + 1, n_inputs) < 0)
			ret = -1;
		free(child);
	}
	closedir(dir);
	return ret;
}

static int fuzz_main_run_path(const char *path, unsigned depth, unsigned long *n_inputs)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "fuzz_main: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= FUZZ_MAIN_MAX_DEPTH)
			return 0;
		return fuzz_main_run_dir(path, depth, n_inputs);
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	return fuzz_main_run_file(path, n_inputs);
}

int main(int argc, char **argv)
{
	unsigned long n_inputs = 0;
	int ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++)
		if (fuzz_main_run_path(argv[i], 0, &n_inputs) < 0)
			ret = 1;
	printf("%s: ran %lu inputs\n", argv[0], n_inputs);
	if (n_inputs == 0) {
		fprintf(stderr, "fuzz_main: no inputs found\n");
		ret = 1;
	}
	return ret;
}
