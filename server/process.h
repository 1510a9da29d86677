/*
 * process.h: process-wide concerns of the binary: signals and the open-file limit.
 */
#ifndef GS_SERVER_PROCESS_H
#define GS_SERVER_PROCESS_H

/**
 * Block SIGTERM, SIGINT and SIGHUP in the calling thread (and so in every thread it creates
 * afterwards) and ignore SIGPIPE. Call first thing in main, before any thread exists, so that
 * gs_process_wait_signal() is the only place those signals are seen.
 */
void gs_process_block_signals(void);

/**
 * Wait for SIGTERM or SIGINT and return it. Then unblock them in this thread, so that a second
 * one ends the process at once if shutdown hangs.
 */
int gs_process_wait_signal(void);

/**
 * Raise the soft open-file limit to at least want (up to the hard limit).
 * @return the limit now in force.
 */
unsigned long gs_process_raise_nofile(unsigned long want);

#endif
