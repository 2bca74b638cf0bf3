/* Shared by every kernelscope probe: semantic types, the lost-event counter,
 * ring-buffer helpers. Included after vmlinux.h and libbpf's headers. */
#ifndef KS_BPF_H
#define KS_BPF_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

/* Semantic typedefs: Python reads these names from BTF and enriches the field
 * (see kernelscope/runtime/decode.py). Keep the raw value; Python adds the
 * readable one beside it. */
typedef __u32 ks_pid_t;          /* process or thread id */
typedef __u32 ks_uid_t;          /* user id -> user name */
typedef __s32 ks_retval_t;       /* syscall return: negative errno on failure */
typedef __s32 ks_errno_t;        /* positive errno -> name */
typedef __u64 ks_boot_ns_t;      /* bpf_ktime_get_boot_ns() -> wall clock */
typedef __u64 ks_duration_ns_t;  /* a duration in nanoseconds */
typedef __u64 ks_cgroup_id_t;    /* cgroup v2 id -> container */
typedef __u32 ks_drop_reason_t;  /* enum skb_drop_reason -> name from kernel BTF */
typedef __s32 ks_signal_t;       /* signal number -> name */

#define KS_COMM_LEN 16

/* Ring-buffer reservations that failed, per CPU; every tool reports the sum. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ks_lost SEC(".maps");

static __always_inline void ks_count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&ks_lost, &zero);
	if (n)
		*n += 1;
}

/* Reserve `sizeof(*ptr)` in ring buffer `rb`, counting a failure as lost. */
#define KS_RESERVE(rb, type)                                          \
	({                                                            \
		type *__e = bpf_ringbuf_reserve(&rb, sizeof(type), 0); \
		if (!__e)                                             \
			ks_count_lost();                              \
		__e;                                                  \
	})

/* Make a ring-buffer-only struct reach BTF so Python can read its layout. */
#define KS_EXPORT_TYPE(name) struct name *__ks_export_##name __attribute__((unused))

static __always_inline __u32 ks_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 ks_ppid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, real_parent, tgid);
}

/* A task's state: `__state` since 5.14, `state` before (CO-RE picks). */
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long ks_task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___old *)t, state);
}

/* log2 histograms: slot i counts values in [2^i, 2^(i+1)), slot 0 also 0.
 * Python prints them with kernelscope.runtime.hist. */
#define KS_HIST_SLOTS 64
struct ks_hist {
	__u64 slots[KS_HIST_SLOTS];
};

static __always_inline __u32 ks_log2(__u64 v)
{
	__u32 r = 0, shift;
	shift = (v > 0xFFFFFFFF) << 5; v >>= shift; r = shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline void ks_hist_add(struct ks_hist *h, __u64 v)
{
	__u32 slot = ks_log2(v);
	if (slot >= KS_HIST_SLOTS)
		slot = KS_HIST_SLOTS - 1;
	/* a mask the compiler cannot drop: with a narrow v it may index with a copy
	 * of slot that the verifier has not seen bounded */
	asm volatile("%0 &= %1" : "+r"(slot) : "i"(KS_HIST_SLOTS - 1));
	__sync_fetch_and_add(&h->slots[slot], 1);
}

char LICENSE[] SEC("license") = "GPL";

#endif
