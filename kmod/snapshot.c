// SPDX-License-Identifier: GPL-2.0-only
/*
 * stressmix: one consistent snapshot of the cgroup v2 tree.
 *
 * The cgroups are counted under RCU, the arrays allocated outside it, then every cgroup and
 * every task is read in one RCU read-side section: nothing in that section sleeps, takes a
 * mutex or touches a file. Command lines live in user memory, so they are copied afterwards,
 * still without waiting: the memory map lock is only try-locked and pages that are not
 * resident are not faulted in (the argument is then reported unavailable).
 *
 * Pressure stall totals are the ones the kernel last aggregated over the CPUs (psi_show() takes
 * a mutex to aggregate first, which this read may not), so they lag the *.pressure files by up
 * to the PSI averaging period (2 s) while the cgroup has tasks; reading a pressure file brings
 * them up to date. CPU bandwidth throttling (cpu.stat nr_throttled...) is kept in the
 * scheduler's private structures and is not read here at all.
 */
#include <linux/bsearch.h>
#include <linux/cgroup.h>
#include <linux/cpumask.h>
#include <linux/highmem.h>
#include <linux/kernel_stat.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/page_counter.h>
#include <linux/psi_types.h>
#include <linux/rcupdate.h>
#include <linux/sched/loadavg.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/tick.h>
#include <linux/timekeeping.h>
#include <linux/u64_stats_sync.h>

#include "stressmix.h"

/* Cgroups created between the count and the walk still fit, up to this many. */
#define SM_SLACK(n) ((n) / 8 + 32)

struct sm_index {
	const struct cgroup *cgrp;
	u32 slot;
};

static int sm_index_cmp(const void *a, const void *b)
{
	const struct cgroup *x = ((const struct sm_index *)a)->cgrp;
	const struct cgroup *y = ((const struct sm_index *)b)->cgrp;

	return x < y ? -1 : x > y;
}

static bool sm_is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit(s[i]) || isupper(s[i]))
			return false;
	return true;
}

/*
 * A container cgroup's last path component is its 64-hex id (cgroupfs driver) or
 * "<runtime>-<64 hex>.scope" (systemd driver).
 */
static bool sm_is_container(const char *path, size_t len)
{
	const char *name = path;
	size_t i, n;

	for (i = 0; i < len; i++)
		if (path[i] == '/')
			name = path + i + 1;
	n = len - (name - path);
	if (n == 64)
		return sm_is_hex(name, 64);
	if (n > 64 + 7 && !memcmp(name + n - 6, ".scope", 6)) {
		n -= 6;
		return name[n - 65] == '-' && sm_is_hex(name + n - 64, 64);
	}
	return false;
}

static void sm_read_memory(struct cgroup *cgrp, struct sm_cgroup *out)
{
#ifdef CONFIG_MEMCG
	/* memory.events prints the hierarchical counters (memory.events.local the others). */
	static const enum memcg_memory_event events[SM_MEM_NR] = {
		[SM_MEM_LOW] = MEMCG_LOW,
		[SM_MEM_HIGH] = MEMCG_HIGH,
		[SM_MEM_MAX] = MEMCG_MAX,
		[SM_MEM_OOM] = MEMCG_OOM,
		[SM_MEM_OOM_KILL] = MEMCG_OOM_KILL,
	};
	struct cgroup_subsys_state *css = rcu_dereference(cgrp->subsys[memory_cgrp_id]);
	struct mem_cgroup *memcg;
	unsigned long max;
	int i;

	if (!css)
		return;
	memcg = mem_cgroup_from_css(css);
	out->has_memory = true;
	out->mem_current = (u64)page_counter_read(&memcg->memory) * PAGE_SIZE;
	out->mem_peak = (u64)READ_ONCE(memcg->memory.watermark) * PAGE_SIZE;
	max = READ_ONCE(memcg->memory.max);
	out->has_limit = max != PAGE_COUNTER_MAX;
	out->mem_limit = (u64)max * PAGE_SIZE;
	for (i = 0; i < SM_MEM_NR; i++)
		out->mem_events[i] = atomic_long_read(&memcg->memory_events[events[i]]);
#endif
}

/*
 * The stall totals the PSI aggregator keeps per cgroup. The group is freed with the cgroup,
 * after an RCU grace period, so it stays valid in our RCU section. No group: PSI is off (booted
 * with psi=0, or cgroup_disable=pressure); group not enabled: 0 written to cgroup.pressure.
 */
static void sm_read_pressure(struct cgroup *cgrp, struct sm_cgroup *out)
{
#if defined(CONFIG_PSI) && defined(SM_HAVE_CGROUP_PSI_PTR)
	static const enum psi_states some[SM_PSI_NR] = {
		[SM_PSI_CPU] = PSI_CPU_SOME,
		[SM_PSI_MEMORY] = PSI_MEM_SOME,
		[SM_PSI_IO] = PSI_IO_SOME,
	};
	static const enum psi_states full[SM_PSI_NR] = {
		[SM_PSI_CPU] = PSI_CPU_FULL,
		[SM_PSI_MEMORY] = PSI_MEM_FULL,
		[SM_PSI_IO] = PSI_IO_FULL,
	};
	struct psi_group *group = READ_ONCE(cgrp->psi);
	int r;

	if (!group)
		return;
#ifdef SM_HAVE_PSI_GROUP_ENABLED
	if (!READ_ONCE(group->enabled))
		return;
#endif
	for (r = 0; r < SM_PSI_NR; r++) {
		out->psi[r].some = READ_ONCE(group->total[PSI_AVGS][some[r]]);
		out->psi[r].full = READ_ONCE(group->total[PSI_AVGS][full[r]]);
	}
	out->has_psi = true;
#endif
}

/*
 * The per-CPU base stats hold the time of the tasks attached to this cgroup only; they only
 * grow, so summing them needs no rstat flush (which would take a sleeping lock).
 */
static void sm_read_cpu(struct cgroup *cgrp, struct sm_cgroup *out)
{
	int cpu;

	for_each_possible_cpu(cpu) {
#ifdef SM_HAVE_RSTAT_BASE_CPU
		struct cgroup_rstat_base_cpu *rc = per_cpu_ptr(cgrp->rstat_base_cpu, cpu);
#else
		struct cgroup_rstat_cpu *rc = per_cpu_ptr(cgrp->rstat_cpu, cpu);
#endif
		unsigned int seq;
		u64 sum, user, sys;

		do {
			seq = u64_stats_fetch_begin(&rc->bsync);
			sum = rc->bstat.cputime.sum_exec_runtime;
			user = rc->bstat.cputime.utime;
			sys = rc->bstat.cputime.stime;
		} while (u64_stats_fetch_retry(&rc->bsync, seq));
		out->cpu_usage += sum;
		out->cpu_user += user;
		out->cpu_system += sys;
	}
}

static void sm_add_io(struct sm_io *io, const struct task_io_accounting *ac)
{
#ifdef CONFIG_TASK_XACCT
	io->read_chars += READ_ONCE(ac->rchar);
	io->write_chars += READ_ONCE(ac->wchar);
	io->read_syscalls += READ_ONCE(ac->syscr);
	io->write_syscalls += READ_ONCE(ac->syscw);
#endif
#ifdef CONFIG_TASK_IO_ACCOUNTING
	io->read_bytes += READ_ONCE(ac->read_bytes);
	io->write_bytes += READ_ONCE(ac->write_bytes);
	io->cancelled_write_bytes += READ_ONCE(ac->cancelled_write_bytes);
#endif
}

/* One pass over every task: counts, I/O and the main process of each listed cgroup. */
static void sm_walk_tasks(struct sm_snapshot *snap, struct sm_index *index)
{
	struct task_struct *g, *t;

	for_each_process_thread(g, t) {
		struct sm_index key = { .cgrp = task_dfl_cgroup(t) };
		struct sm_index *hit;
		struct sm_cgroup *c;

		hit = bsearch(&key, index, snap->nr, sizeof(*index), sm_index_cmp);
		if (!hit)
			continue;
		c = &snap->cgroups[hit->slot];
		c->threads++;
		sm_add_io(&c->io, &t->ioac);
		if (!thread_group_leader(t))
			continue;
		c->processes++;
		sm_add_io(&c->io, &t->signal->ioac);
		if (!c->main_task || t->start_boottime < c->main_start) {
			c->main_task = t;
			c->main_start = t->start_boottime;
		}
	}
}

/* Counts the cgroups the walk will see, up to @limit. */
static unsigned int sm_count_cgroups(unsigned int limit)
{
	struct cgroup_subsys_state *root = &cgrp_dfl_root.cgrp.self;
	struct cgroup_subsys_state *pos;
	unsigned int n = 0;

	rcu_read_lock();
	css_for_each_descendant_pre(pos, root) {
		if (pos == root || !(READ_ONCE(pos->flags) & CSS_ONLINE))
			continue;
		if (++n >= limit)
			break;
	}
	rcu_read_unlock();
	return n;
}

/* Fills the cgroups and the index; must run under rcu_read_lock(). */
static void sm_walk_cgroups(struct sm_snapshot *snap, struct sm_index *index, unsigned int cap)
{
	struct cgroup_subsys_state *root = &cgrp_dfl_root.cgrp.self;
	struct cgroup_subsys_state *pos;

	css_for_each_descendant_pre(pos, root) {
		struct cgroup *cgrp = pos->cgroup;
		struct sm_cgroup *c;
		int len;

		if (pos == root || !(READ_ONCE(pos->flags) & CSS_ONLINE))
			continue;
		if (snap->nr == cap) {
			snap->truncated = true;
			break;
		}
		c = &snap->cgroups[snap->nr];
		len = cgroup_path(cgrp, c->path, sizeof(c->path));
		if (len < 0)
			continue;
		if (len >= (int)sizeof(c->path)) {
			len = sizeof(c->path) - 1;
			snap->truncated = true;
		}
		if (snap->containers_only && !sm_is_container(c->path, len))
			continue;
		c->path_len = len;
		c->id = cgroup_id(cgrp);
		c->level = cgrp->level;
		sm_read_memory(cgrp, c);
		sm_read_cpu(cgrp, c);
		sm_read_pressure(cgrp, c);
		index[snap->nr].cgrp = cgrp;
		index[snap->nr].slot = snap->nr;
		snap->nr++;
	}
}

/* Takes a reference on each main process and copies what needs no sleeping; under RCU. */
static void sm_fill_main(struct sm_snapshot *snap)
{
	u32 i;

	for (i = 0; i < snap->nr; i++) {
		struct sm_cgroup *c = &snap->cgroups[i];

		if (!c->main_task)
			continue;
		c->main_pid = task_pid_nr(c->main_task);
		get_task_comm(c->comm, c->main_task);
		get_task_struct(c->main_task);
		c->cmdline_state = SM_CMDLINE_UNAVAILABLE;
	}
}

static long sm_gup(struct mm_struct *mm, unsigned long addr, struct page **page)
{
	/* FOLL_NOFAULT: a page that is not resident is not read in (no I/O, no waiting). */
	unsigned int flags = FOLL_FORCE | FOLL_NOFAULT;

#ifdef SM_GUP_REMOTE_HAS_VMAS
	return get_user_pages_remote(mm, addr, 1, flags, page, NULL, NULL);
#else
	return get_user_pages_remote(mm, addr, 1, flags, page, NULL);
#endif
}

/* Copies up to SM_CMDLINE_MAX bytes of the arguments; false if that would mean waiting. */
static bool sm_copy_args(struct mm_struct *mm, struct sm_cgroup *c, bool *cut)
{
	unsigned long start, end, addr;
	u32 done = 0;

	spin_lock(&mm->arg_lock);
	start = mm->arg_start;
	end = mm->arg_end;
	spin_unlock(&mm->arg_lock);
	if (end <= start) {
		c->cmdline_len = 0;
		return true;
	}
	if (end - start > SM_CMDLINE_MAX) {
		end = start + SM_CMDLINE_MAX;
		*cut = true;
	}
	if (!mmap_read_trylock(mm))
		return false;
	for (addr = start; addr < end;) {
		unsigned long off = offset_in_page(addr);
		unsigned long n = min_t(unsigned long, PAGE_SIZE - off, end - addr);
		struct page *page;
		void *kaddr;

		if (sm_gup(mm, addr, &page) != 1)
			break;
		kaddr = kmap_local_page(page);
		memcpy(c->cmdline + done, kaddr + off, n);
		kunmap_local(kaddr);
		put_page(page);
		done += n;
		addr += n;
	}
	mmap_read_unlock(mm);
	if (addr < end)
		return false;
	c->cmdline_len = done;
	return true;
}

/* Reads the main processes' command lines and drops the task references; outside RCU. */
static void sm_read_cmdlines(struct sm_snapshot *snap)
{
	u32 i;

	for (i = 0; i < snap->nr; i++) {
		struct sm_cgroup *c = &snap->cgroups[i];
		struct task_struct *t = c->main_task;
		struct mm_struct *mm;
		bool cut = false;

		if (!t)
			continue;
		c->main_task = NULL;
		if (t->flags & PF_KTHREAD) {
			c->cmdline_state = SM_CMDLINE_OK;
			c->cmdline_len = 0;
			put_task_struct(t);
			continue;
		}
		mm = get_task_mm(t);
		put_task_struct(t);
		if (!mm)
			continue;
		if (sm_copy_args(mm, c, &cut)) {
			c->cmdline_state = SM_CMDLINE_OK;
			if (cut)
				snap->truncated = true;
		}
		/* The last reference to an exiting mm is dropped in a worker, not here. */
		mmput_async(mm);
	}
}

static void sm_read_system(struct sm_system *sys)
{
	static const enum cpu_usage_stat states[10] = {
		CPUTIME_USER, CPUTIME_NICE, CPUTIME_SYSTEM, CPUTIME_IDLE, CPUTIME_IOWAIT,
		CPUTIME_IRQ, CPUTIME_SOFTIRQ, CPUTIME_STEAL, CPUTIME_GUEST, CPUTIME_GUEST_NICE,
	};
	struct sysinfo si;
	int cpu, s;

	sys->wall_ns = ktime_get_real_ns();
	sys->boot_ns = ktime_get_boottime_ns();
	si_meminfo(&si);
	sys->mem_total = (u64)si.totalram * si.mem_unit;
	sys->mem_free = (u64)si.freeram * si.mem_unit;
	sys->mem_available = (u64)si_mem_available() * PAGE_SIZE;
	if (sys->mem_available > sys->mem_total)
		sys->mem_available = sys->mem_total;
	sys->cpus_online = num_online_cpus();
	sys->cpus_possible = num_possible_cpus();
	for_each_possible_cpu(cpu) {
		struct kernel_cpustat kcs;
		u64 us;

		kcpustat_cpu_fetch(&kcs, cpu);
		for (s = 0; s < ARRAY_SIZE(states); s++)
			sys->cpu[s] += kcs.cpustat[states[s]];
		/* As /proc/stat: with NO_HZ the idle and iowait times come from the tick code. */
		if (cpu_online(cpu)) {
			us = get_cpu_idle_time_us(cpu, NULL);
			if (us != -1ULL)
				sys->cpu[3] += us * NSEC_PER_USEC - kcs.cpustat[CPUTIME_IDLE];
			us = get_cpu_iowait_time_us(cpu, NULL);
			if (us != -1ULL)
				sys->cpu[4] += us * NSEC_PER_USEC - kcs.cpustat[CPUTIME_IOWAIT];
		}
	}
	sys->load[0] = READ_ONCE(avenrun[0]);
	sys->load[1] = READ_ONCE(avenrun[1]);
	sys->load[2] = READ_ONCE(avenrun[2]);
}

int sm_snapshot_take(struct sm_snapshot *snap, unsigned int max_cgroups, bool containers_only)
{
	struct sm_index *index;
	unsigned int cap;

	memset(snap, 0, sizeof(*snap));
	snap->containers_only = containers_only;
	cap = sm_count_cgroups(max_cgroups);
	cap = min(cap + SM_SLACK(cap), max_cgroups);
	snap->cgroups = kvcalloc(cap, sizeof(*snap->cgroups), GFP_KERNEL);
	index = kvcalloc(cap, sizeof(*index), GFP_KERNEL);
	if (!snap->cgroups || !index) {
		kvfree(index);
		kvfree(snap->cgroups);
		snap->cgroups = NULL;
		return -ENOMEM;
	}
	sm_read_system(&snap->sys);

	rcu_read_lock();
	sm_walk_cgroups(snap, index, cap);
	sort(index, snap->nr, sizeof(*index), sm_index_cmp, NULL);
	sm_walk_tasks(snap, index);
	sm_fill_main(snap);
	rcu_read_unlock();

	kvfree(index);
	sm_read_cmdlines(snap);
	return 0;
}

void sm_snapshot_free(struct sm_snapshot *snap)
{
	kvfree(snap->cgroups);
	snap->cgroups = NULL;
}
