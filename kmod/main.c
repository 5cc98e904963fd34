// SPDX-License-Identifier: GPL-2.0-only
/*
 * stressmix: per-cgroup counters of cgroup v2 as one JSON document at /proc/<proc_name>.
 *
 * Each open() takes one snapshot and formats it; read() only copies bytes of that snapshot, so a
 * reader never sees a torn document, and a slow reader costs nothing more. The entry is visible
 * in every container of the node, so opening it needs CAP_SYS_ADMIN (and the mode is 0400).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>

#include "stressmix.h"

static char *proc_name = "stressmix";
module_param(proc_name, charp, 0444);
MODULE_PARM_DESC(proc_name, "name of the file in /proc (default: stressmix)");

static unsigned int max_cgroups = 8192;
module_param(max_cgroups, uint, 0444);
MODULE_PARM_DESC(max_cgroups, "most cgroups in one document; more sets \"truncated\" (8192)");

static bool containers_only;
module_param(containers_only, bool, 0644);
MODULE_PARM_DESC(containers_only, "list only container cgroups (last path component a 64-hex id)");

static struct proc_dir_entry *sm_entry;

static int sm_open(struct inode *inode, struct file *file)
{
	struct sm_snapshot snap;
	struct sm_doc *doc;
	int err;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	err = sm_snapshot_take(&snap, max_cgroups, READ_ONCE(containers_only));
	if (err)
		return err;
	doc = sm_format(&snap);
	sm_snapshot_free(&snap);
	if (!doc)
		return -ENOMEM;
	file->private_data = doc;
	return 0;
}

static ssize_t sm_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	const struct sm_doc *doc = file->private_data;

	return simple_read_from_buffer(buf, count, ppos, doc->data, doc->len);
}

static loff_t sm_lseek(struct file *file, loff_t offset, int whence)
{
	const struct sm_doc *doc = file->private_data;

	return fixed_size_llseek(file, offset, whence, doc->len);
}

static int sm_release(struct inode *inode, struct file *file)
{
	kvfree(file->private_data);
	return 0;
}

static const struct proc_ops sm_proc_ops = {
	.proc_open = sm_open,
	.proc_read = sm_read,
	.proc_lseek = sm_lseek,
	.proc_release = sm_release,
};

static int __init sm_init(void)
{
	if (!proc_name || !*proc_name || strchr(proc_name, '/')) {
		pr_err("invalid proc_name\n");
		return -EINVAL;
	}
	if (max_cgroups < 1) {
		pr_err("max_cgroups must be at least 1\n");
		return -EINVAL;
	}
	sm_entry = proc_create(proc_name, 0400, NULL, &sm_proc_ops);
	if (!sm_entry)
		return -ENOMEM;
	pr_info("serving /proc/%s (schema %d)\n", proc_name, SM_SCHEMA_VERSION);
	return 0;
}

static void __exit sm_exit(void)
{
	proc_remove(sm_entry);
}

module_init(sm_init);
module_exit(sm_exit);

MODULE_LICENSE("GPL");
/*
 * MODULE_VERSION also makes modpost hash the sources into a srcversion: the kernel publishes both
 * in /sys/module/stressmix/, and the agent's load-module tells a loaded older build from the .ko
 * by them (stale-module) instead of silently reusing it.
 */
MODULE_VERSION(SM_MODULE_VERSION);
MODULE_DESCRIPTION("Per-cgroup CPU, memory, I/O and process counters as JSON in /proc");
MODULE_AUTHOR("stressmix");
