/* Invariant checks for fuzz harnesses: a failure prints the condition and
 * aborts, which both libFuzzer and fuzz_main.c report as a crash. */
#ifndef OCIGATE_TEST_FUZZ_CHECK_H
#define OCIGATE_TEST_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                       \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                               \
		}                                                                              \
	} while (0)

#endif
