// SPDX-License-Identifier: GPL-2.0
/* layout_test: a struct with padding, arrays, a nested struct and a union,
 * filled with values derived from a counter on each getppid() of cfg_pid. */
#include "vmlinux.h"
#include "ks.bpf.h"

struct layout_inner {
	__u16 a;        /* 2 bytes padding after */
	__u32 b;
	__s8 c[3];      /* 5 bytes padding after */
	__u64 d;
};

struct layout_test_event {
	__u8 tag;               /* 7 bytes padding after */
	__u64 seq;
	__s32 neg;
	__u16 arr[5];           /* 2 bytes padding after */
	struct layout_inner inner;
	struct layout_inner pair[2];
	union {
		__u64 as_u64;
		__u32 as_u32[2];
		__u8 as_bytes[8];
	} u;
	char name[10];
	ks_retval_t err;
	__u8 flag;
};

const volatile __u32 cfg_pid = 0;
const volatile __u32 cfg_burst = 1;   /* records per trigger (benchmarks use many) */
__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* maps for the binding's map tests: values written from Python and from BPF */
struct layout_test_key {
	__u32 pid;
	__u16 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct layout_test_key);
	__type(value, struct layout_inner);
} test_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} test_percpu SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int getppid_enter__tracepoint(void *ctx)
{
	if (ks_tgid() != cfg_pid)
		return 0;
	__u64 n = __sync_fetch_and_add(&seq, 1) + 1;
	__u32 slot = 1;
	__u64 *pc = bpf_map_lookup_elem(&test_percpu, &slot);
	if (pc)
		*pc += 1;
	struct layout_test_event *e = KS_RESERVE(events, struct layout_test_event);
	if (!e)
		return 0;
	__builtin_memset(e, 0xAB, sizeof(*e));  /* padding must not leak into fields */
	e->tag = 7;
	e->seq = n;
	e->neg = -(__s32)n;
	for (int i = 0; i < 5; i++)
		e->arr[i] = n * 10 + i;
	e->inner.a = 1000 + n;
	e->inner.b = 0xDEADBEEF;
	e->inner.c[0] = -1; e->inner.c[1] = -2; e->inner.c[2] = -3;
	e->inner.d = 0x0102030405060708ULL;
	e->pair[0].a = 1; e->pair[1].a = 2;
	e->pair[0].d = n; e->pair[1].d = n * 2;
	e->u.as_u64 = 0x1111111122222222ULL;
	__builtin_memcpy(e->name, "layout\0\0\0", 10);
	e->err = -2;
	e->flag = 1;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

KS_EXPORT_TYPE(layout_test_event);
