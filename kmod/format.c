// SPDX-License-Identifier: GPL-2.0-only
/*
 * stressmix: a snapshot as one JSON document.
 *
 * Formatting runs twice with the same code: once to measure the exact length, once to write
 * into a buffer of that size. Strings are escaped one byte at a time so the output is pure
 * ASCII and every byte of a path or argument survives: '"' and '\\' get a backslash, bytes
 * below 0x20 and from 0x7f up become \u00XX (see api/src/kmod.rs for the reading side).
 */
#include <linux/kernel.h>
#include <linux/sched/loadavg.h>
#include <linux/slab.h>
#include <linux/utsname.h>

#include "stressmix.h"

struct sm_out {
	char *buf;	/* NULL while measuring */
	size_t len;
	size_t cap;
};

static __printf(2, 3) void sm_printf(struct sm_out *o, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt, args);
	va_end(args);
	if (n > 0)
		o->len += n;
}

static void sm_putc(struct sm_out *o, char c)
{
	if (o->buf && o->len + 1 < o->cap)
		o->buf[o->len] = c;
	o->len++;
}

static void sm_puts(struct sm_out *o, const char *s)
{
	while (*s)
		sm_putc(o, *s++);
}

static void sm_string(struct sm_out *o, const u8 *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	sm_putc(o, '"');
	for (i = 0; i < n; i++) {
		u8 b = s[i];

		if (b == '"' || b == '\\') {
			sm_putc(o, '\\');
			sm_putc(o, b);
		} else if (b < 0x20 || b >= 0x7f) {
			sm_puts(o, "\\u00");
			sm_putc(o, hex[b >> 4]);
			sm_putc(o, hex[b & 0xf]);
		} else {
			sm_putc(o, b);
		}
	}
	sm_putc(o, '"');
}

static void sm_cstring(struct sm_out *o, const char *s)
{
	sm_string(o, (const u8 *)s, strlen(s));
}

/* Load average in the fixed point of avenrun, printed with two decimals as /proc/loadavg. */
static void sm_load(struct sm_out *o, const char *key, unsigned long v)
{
	v += FIXED_1 / 200;
	sm_printf(o, "\"%s\":%lu.%02lu", key, LOAD_INT(v), LOAD_FRAC(v));
}

static void sm_system(struct sm_out *o, const struct sm_system *s)
{
	sm_printf(o, "\"timestamp\":{\"wall_ns\":%llu,\"boot_ns\":%llu},", s->wall_ns, s->boot_ns);
	sm_printf(o, "\"system\":{\"memory\":{\"total_bytes\":%llu,\"free_bytes\":%llu,",
		  s->mem_total, s->mem_free);
	sm_printf(o, "\"available_bytes\":%llu,\"used_bytes\":%llu},",
		  s->mem_available, s->mem_total - s->mem_available);
	sm_printf(o, "\"cpu\":{\"online\":%u,\"possible\":%u,", s->cpus_online, s->cpus_possible);
	sm_printf(o, "\"time_ns\":{\"user\":%llu,\"nice\":%llu,\"system\":%llu,\"idle\":%llu,",
		  s->cpu[0], s->cpu[1], s->cpu[2], s->cpu[3]);
	sm_printf(o, "\"iowait\":%llu,\"irq\":%llu,\"softirq\":%llu,\"steal\":%llu,",
		  s->cpu[4], s->cpu[5], s->cpu[6], s->cpu[7]);
	sm_printf(o, "\"guest\":%llu,\"guest_nice\":%llu}},", s->cpu[8], s->cpu[9]);
	sm_puts(o, "\"load_average\":{");
	sm_load(o, "one", s->load[0]);
	sm_putc(o, ',');
	sm_load(o, "five", s->load[1]);
	sm_putc(o, ',');
	sm_load(o, "fifteen", s->load[2]);
	sm_puts(o, "}},");
}

static void sm_cmdline(struct sm_out *o, const struct sm_cgroup *c)
{
	u32 i, start = 0;
	bool first = true;

	if (c->cmdline_state != SM_CMDLINE_OK) {
		sm_puts(o, "null");
		return;
	}
	sm_putc(o, '[');
	for (i = 0; i <= c->cmdline_len; i++) {
		if (i < c->cmdline_len && c->cmdline[i])
			continue;
		/* A trailing NUL ends the last argument; it does not start an empty one. */
		if (i == c->cmdline_len && i == start)
			break;
		if (!first)
			sm_putc(o, ',');
		first = false;
		sm_string(o, c->cmdline + start, i - start);
		start = i + 1;
	}
	sm_putc(o, ']');
}

static void sm_pressure(struct sm_out *o, const struct sm_cgroup *c)
{
	static const char * const names[SM_PSI_NR] = {
		[SM_PSI_CPU] = "cpu",
		[SM_PSI_MEMORY] = "memory",
		[SM_PSI_IO] = "io",
	};
	int r;

	if (!c->has_psi) {
		sm_puts(o, ",\"pressure\":null");
		return;
	}
	sm_puts(o, ",\"pressure\":{");
	for (r = 0; r < SM_PSI_NR; r++)
		sm_printf(o, "%s\"%s\":{\"some_ns\":%llu,\"full_ns\":%llu}", r ? "," : "",
			  names[r], c->psi[r].some, c->psi[r].full);
	sm_putc(o, '}');
}

static void sm_cgroup(struct sm_out *o, const struct sm_cgroup *c)
{
	sm_printf(o, "{\"id\":%llu,\"level\":%u,\"path\":", c->id, c->level);
	sm_string(o, (const u8 *)c->path, c->path_len);
	if (c->has_memory) {
		sm_printf(o, ",\"memory\":{\"current_bytes\":%llu,\"peak_bytes\":%llu,",
			  c->mem_current, c->mem_peak);
		if (c->has_limit)
			sm_printf(o, "\"limit_bytes\":%llu}", c->mem_limit);
		else
			sm_puts(o, "\"limit_bytes\":null}");
		sm_printf(o, ",\"memory_events\":{\"low\":%llu,\"high\":%llu,\"max\":%llu,",
			  c->mem_events[SM_MEM_LOW], c->mem_events[SM_MEM_HIGH],
			  c->mem_events[SM_MEM_MAX]);
		sm_printf(o, "\"oom\":%llu,\"oom_kill\":%llu}",
			  c->mem_events[SM_MEM_OOM], c->mem_events[SM_MEM_OOM_KILL]);
	} else {
		sm_puts(o, ",\"memory\":null,\"memory_events\":null");
	}
	sm_printf(o, ",\"cpu\":{\"usage_ns\":%llu,\"user_ns\":%llu,\"system_ns\":%llu}",
		  c->cpu_usage, c->cpu_user, c->cpu_system);
	sm_printf(o, ",\"tasks\":{\"processes\":%u,\"threads\":%u}", c->processes, c->threads);
	sm_printf(o, ",\"io\":{\"read_bytes\":%llu,\"write_bytes\":%llu,",
		  c->io.read_bytes, c->io.write_bytes);
	sm_printf(o, "\"cancelled_write_bytes\":%llu,", c->io.cancelled_write_bytes);
	sm_printf(o, "\"read_chars\":%llu,\"write_chars\":%llu,",
		  c->io.read_chars, c->io.write_chars);
	sm_printf(o, "\"read_syscalls\":%llu,\"write_syscalls\":%llu}",
		  c->io.read_syscalls, c->io.write_syscalls);
	sm_pressure(o, c);
	if (c->cmdline_state == SM_CMDLINE_NONE) {
		sm_puts(o, ",\"main_process\":null}");
		return;
	}
	sm_printf(o, ",\"main_process\":{\"pid\":%d,\"name\":", c->main_pid);
	sm_cstring(o, c->comm);
	sm_puts(o, ",\"cmdline\":");
	sm_cmdline(o, c);
	sm_puts(o, "}}");
}

static void sm_document(struct sm_out *o, const struct sm_snapshot *snap)
{
	u32 i;

	sm_printf(o, "{\"schema_version\":%d,\"module_version\":", SM_SCHEMA_VERSION);
	sm_cstring(o, SM_MODULE_VERSION);
	sm_puts(o, ",\"kernel_release\":");
	sm_cstring(o, init_utsname()->release);
	sm_putc(o, ',');
	sm_system(o, &snap->sys);
	sm_printf(o, "\"filter\":\"%s\",\"cgroups\":[",
		  snap->containers_only ? "containers" : "all");
	for (i = 0; i < snap->nr; i++) {
		if (i)
			sm_puts(o, ",\n");
		else
			sm_putc(o, '\n');
		sm_cgroup(o, &snap->cgroups[i]);
	}
	sm_printf(o, "],\"truncated\":%s}\n", snap->truncated ? "true" : "false");
}

struct sm_doc *sm_format(const struct sm_snapshot *snap)
{
	struct sm_out o = { };
	struct sm_doc *doc;

	sm_document(&o, snap);
	doc = kvmalloc(struct_size(doc, data, o.len + 1), GFP_KERNEL);
	if (!doc)
		return NULL;
	o.buf = doc->data;
	o.cap = o.len + 1;
	o.len = 0;
	sm_document(&o, snap);
	doc->len = min(o.len, o.cap - 1);
	return doc;
}
