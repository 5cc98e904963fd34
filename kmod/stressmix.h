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
#define SM_SCHEMA_VERSION 2

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

/* Resources of the pressure files, in the order the document lists them. */
enum sm_psi_res {
	SM_PSI_CPU,
	SM_PSI_MEMORY,
	SM_PSI_IO,
	SM_PSI_NR,
};

/* Cumulative stall time of one resource, ns (as the *.pressure files' total=, in us). */
struct sm_stall {
	u64 some;
	u64 full;
};

/* The fields of memory.events, in the order the document lists them. */
enum sm_mem_event {
	SM_MEM_LOW,
	SM_MEM_HIGH,
	SM_MEM_MAX,
	SM_MEM_OOM,
	SM_MEM_OOM_KILL,
	SM_MEM_NR,
};

struct sm_cgroup {
	u64 id;
	u32 level;
	u32 path_len;
	bool has_memory;	/* also says whether mem_events is set */
	bool has_limit;
	bool has_psi;
	u64 mem_current;
	u64 mem_peak;
	u64 mem_limit;
	u64 mem_events[SM_MEM_NR];
	struct sm_stall psi[SM_PSI_NR];
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
