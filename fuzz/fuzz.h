/*
 * fuzz.h: the libFuzzer entry points that every target in fuzz/ defines, declared once so
 * that the targets and the replay driver (replay_main.c) agree on them.
 *
 * A target is built two ways (fuzz/CMakeLists.txt): with -fsanitize=fuzzer, where libFuzzer
 * supplies main() and mutates inputs, and in every normal build with replay_main.c, which
 * runs the files of the seed corpus and the regressions once each, as a CTest test.
 */
#ifndef GS_FUZZ_H
#define GS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/**
 * Optional: called once before the first input. argc and argv are borrowed (libFuzzer's own
 * command line) and may be left alone. Returns 0.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/**
 * Run one input: data is borrowed (size bytes, not NUL-terminated, valid only during the
 * call). Must not keep data, leak, hang, or crash on any input; a broken invariant aborts.
 * Returns 0 (libFuzzer reserves other values).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
