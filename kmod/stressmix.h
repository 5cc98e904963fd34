/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * stressmix: per-cgroup counters as one JSON document in /proc.
 * Shared declarations of the module's files.
 */
#ifndef STRESSMIX_H
#define STRESSMIX_H

#include <linux/types.h>
#include <linux/sched.h>

#define SM_MODULE_VERSION "0.1.0"
#define SM_SCHEMA_VERSION 1

/* Bytes kept per string; longer strings are cut and the document says "truncated". */
#define SM_PATH_MAX 512
#define SM_CMDLINE_MAX 1024

enum sm_cmdline_state {
	SM_CMDLINE_NONE,	/* no main process */
	SM_CMDLINE_OK,
	SM_CMDLINE_UNAVAILABLE,	/* would have had to wait for a lock or a page */
};

struct sm_io {
	u64 read_bytes;
	u64 write_bytes;
	u64 cancelled_write_bytes;
	u64 read_chars;
	u64 write_chars;
	u64 read_syscalls;
	u64 write_syscalls;
};

struct sm_cgroup {
	u64 id;
	u32 level;
	u32 path_len;
	bool has_memory;
	bool has_limit;
	u64 mem_current;
	u64 mem_peak;
	u64 mem_limit;
	u64 cpu_usage;
	u64 cpu_user;
	u64 cpu_system;
	u32 processes;
	u32 threads;
	struct sm_io io;
	/* Main process: the leader with the earliest start time. */
	/* Referenced from the end of the walk until its cmdline is read. */
	struct task_struct *main_task;
	u64 main_start;
	pid_t main_pid;
	char comm[TASK_COMM_LEN];
	enum sm_cmdline_state cmdline_state;
	u32 cmdline_len;
	char path[SM_PATH_MAX];
	u8 cmdline[SM_CMDLINE_MAX];
};

struct sm_system {
	u64 wall_ns;
	u64 boot_ns;
	u64 mem_total;
	u64 mem_free;
	u64 mem_available;
	u32 cpus_online;
	u32 cpus_possible;
	u64 cpu[10];	/* user nice system idle iowait irq softirq steal guest guest_nice */
	unsigned long load[3];
};

struct sm_snapshot {
	struct sm_system sys;
	bool containers_only;
	bool truncated;
	u32 nr;
	struct sm_cgroup *cgroups;	/* kvmalloc'ed, nr used */
};

/* A finished document: what one open() file reads. */
struct sm_doc {
	size_t len;
	char data[];
};

int sm_snapshot_take(struct sm_snapshot *snap, unsigned int max_cgroups, bool containers_only);
void sm_snapshot_free(struct sm_snapshot *snap);
struct sm_doc *sm_format(const struct sm_snapshot *snap);

#endif /* STRESSMIX_H */
