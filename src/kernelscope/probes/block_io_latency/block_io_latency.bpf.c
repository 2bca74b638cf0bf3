// SPDX-License-Identifier: GPL-2.0
/* block_io_latency: block I/O request latency, issue (or insert, -Q) to completion.
 * Aggregated in the kernel as log2 histograms per (disk, flags) (biolatency), and/or
 * one event per completed request (biosnoop).
 *
 * Requests are keyed by their struct request * (tp_btf, raw_tp variants) or by
 * (dev, sector) (plain tracepoint variant, where the pointer is not visible). */
#include "vmlinux.h"
#include "ks.bpf.h"

struct block_io_latency_event {
	ks_boot_ns_t ts;             /* completion time */
	ks_duration_ns_t latency_ns; /* issue -> complete (insert -> complete with cfg_queued) */
	ks_duration_ns_t queue_ns;   /* insert -> issue, 0 when the request was not queued */
	__u64 sector;
	ks_pid_t pid;                /* the process that submitted the request */
	__u32 dev;                   /* kernel dev_t of the disk: major << 20 | minor */
	__u32 bytes;
	__u32 cmd_flags;             /* REQ_OP_* | REQ_SYNC/META/FUA/PREFLUSH/RAHEAD */
	__s32 error;                 /* blk_status_t at completion */
	__u32 pad;
	char comm[KS_COMM_LEN];
};

struct block_io_latency_key {
	__u32 dev;          /* 0 unless cfg_per_disk */
	__u32 cmd_flags;    /* 0 unless cfg_per_flag */
};

struct block_io_latency_start {
	__u64 insert_ns;
	__u64 issue_ns;
	__u32 pid;
	__u32 bytes;
	char comm[KS_COMM_LEN];
};

struct block_io_latency_rq {
	__u64 id;   /* struct request *, or the sector (tracepoint variant) */
	__u32 dev;  /* 0, or the dev_t (tracepoint variant) */
	__u32 pad;
};

const volatile __u8 cfg_hist = 1;        /* aggregate into `hists` */
const volatile __u8 cfg_events = 0;      /* send one event per request */
const volatile __u8 cfg_queued = 0;      /* measure from insert (OS queue) instead of issue */
const volatile __u8 cfg_per_disk = 0;
const volatile __u8 cfg_per_flag = 0;
const volatile __u8 cfg_ms = 0;          /* histogram unit: milliseconds, else microseconds */
const volatile __u32 cfg_dev = 0;        /* only this disk (kernel dev_t), 0 for all */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct block_io_latency_rq);
	__type(value, struct block_io_latency_start);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct block_io_latency_key);
	__type(value, struct ks_hist);
} hists SEC(".maps");

static struct ks_hist zero_hist;

/* The op and the flags that rwbs shows, with this kernel's bit numbers. */
static __always_inline __u32 norm_flags(__u32 opf)
{
	__u32 keep = (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_SYNC)) |
		     (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_META)) |
		     (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_FUA)) |
		     (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_PREFLUSH)) |
		     (1U << bpf_core_enum_value(enum req_flag_bits, __REQ_RAHEAD));
	return (opf & 0xff) | (opf & keep);
}

/* The tracepoint's rwbs string back to REQ_ bits (the inverse of blk_fill_rwbs). */
static __always_inline __u32 rwbs_flags(const char *rwbs)
{
	__u32 opf = 0xff; /* unknown op until seen */
	int i = 0, seen_op = 0;
	char c;

#pragma unroll
	for (i = 0; i < 8; i++) {
		c = rwbs[i];
		if (!c)
			break;
		if (!seen_op) {
			if (c == 'F' && rwbs[i + 1]) {  /* leading F: preflush, unless it is the op */
				opf |= 1U << bpf_core_enum_value(enum req_flag_bits, __REQ_PREFLUSH);
				continue;
			}
			seen_op = 1;
			opf &= ~0xffU;
			if (c == 'W')
				opf |= bpf_core_enum_value(enum req_op, REQ_OP_WRITE);
			else if (c == 'R')
				opf |= bpf_core_enum_value(enum req_op, REQ_OP_READ);
			else if (c == 'D')
				opf |= bpf_core_enum_value(enum req_op, REQ_OP_DISCARD);
			else if (c == 'F')
				opf |= bpf_core_enum_value(enum req_op, REQ_OP_FLUSH);
			else
				opf |= 0xff;
			continue;
		}
		if (c == 'F')
			opf |= 1U << bpf_core_enum_value(enum req_flag_bits, __REQ_FUA);
		else if (c == 'A')
			opf |= 1U << bpf_core_enum_value(enum req_flag_bits, __REQ_RAHEAD);
		else if (c == 'S')
			opf |= 1U << bpf_core_enum_value(enum req_flag_bits, __REQ_SYNC);
		else if (c == 'M')
			opf |= 1U << bpf_core_enum_value(enum req_flag_bits, __REQ_META);
	}
	return opf;
}

struct request___old {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline __u32 rq_dev(struct request *rq)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(rq->q->disk))
		disk = BPF_CORE_READ(rq, q, disk);
	else
		disk = BPF_CORE_READ((struct request___old *)rq, rq_disk);
	if (!disk)
		return 0;
	return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

static __always_inline struct block_io_latency_rq rq_key(struct request *rq)
{
	struct block_io_latency_rq k = { .id = (__u64)rq };
	return k;
}

static __always_inline struct block_io_latency_rq tp_key(__u32 dev, __u64 sector)
{
	struct block_io_latency_rq k = { .id = sector, .dev = dev };
	return k;
}

static __always_inline void new_start(struct block_io_latency_rq *k, __u64 insert_ns,
				      __u64 issue_ns, __u32 bytes)
{
	struct block_io_latency_start s = {};

	s.insert_ns = insert_ns;
	s.issue_ns = issue_ns;
	s.bytes = bytes;
	s.pid = ks_tgid();
	bpf_get_current_comm(s.comm, sizeof(s.comm));
	bpf_map_update_elem(&start, k, &s, BPF_ANY);
}

/* A request begins (submitter's context): who, and no times yet. */
static __always_inline int on_io_start(struct block_io_latency_rq k, __u32 dev)
{
	if (cfg_dev && dev != cfg_dev)
		return 0;
	new_start(&k, 0, 0, 0);
	return 0;
}

static __always_inline int on_insert(struct block_io_latency_rq k, __u32 dev)
{
	struct block_io_latency_start *s;

	if (cfg_dev && dev != cfg_dev)
		return 0;
	s = bpf_map_lookup_elem(&start, &k);
	if (s)
		s->insert_ns = bpf_ktime_get_ns();
	else
		new_start(&k, bpf_ktime_get_ns(), 0, 0);
	return 0;
}

static __always_inline int on_issue(struct block_io_latency_rq k, __u32 dev, __u32 bytes)
{
	struct block_io_latency_start *s;

	if (cfg_dev && dev != cfg_dev)
		return 0;
	s = bpf_map_lookup_elem(&start, &k);
	if (s) {
		s->issue_ns = bpf_ktime_get_ns();
		s->bytes = bytes;
	} else {
		new_start(&k, 0, bpf_ktime_get_ns(), bytes);
	}
	return 0;
}

static __always_inline int on_complete(struct block_io_latency_rq k, __u32 dev, __u64 sector,
				       __u32 flags, __s32 error)
{
	struct block_io_latency_start *s;
	__u64 now, begin, delta;

	if (cfg_dev && dev != cfg_dev)
		return 0;
	s = bpf_map_lookup_elem(&start, &k);
	if (!s)
		return 0;
	begin = s->issue_ns;
	if (cfg_queued && s->insert_ns)
		begin = s->insert_ns;
	if (!begin) {
		bpf_map_delete_elem(&start, &k);
		return 0;
	}
	now = bpf_ktime_get_ns();
	delta = now - begin;
	if ((__s64)delta < 0)
		delta = 0;

	if (cfg_hist) {
		struct block_io_latency_key hk = {};
		struct ks_hist *h;

		if (cfg_per_disk)
			hk.dev = dev;
		if (cfg_per_flag)
			hk.cmd_flags = flags;
		h = bpf_map_lookup_elem(&hists, &hk);
		if (!h) {
			bpf_map_update_elem(&hists, &hk, &zero_hist, BPF_NOEXIST);
			h = bpf_map_lookup_elem(&hists, &hk);
		}
		if (h)
			ks_hist_add(h, cfg_ms ? delta / 1000000 : delta / 1000);
	}
	if (cfg_events) {
		struct block_io_latency_event *e = KS_RESERVE(events, struct block_io_latency_event);
		if (e) {
			e->ts = bpf_ktime_get_boot_ns();
			e->latency_ns = delta;
			e->queue_ns = (s->insert_ns && s->issue_ns > s->insert_ns) ?
				      s->issue_ns - s->insert_ns : 0;
			e->sector = sector;
			e->pid = s->pid;
			e->dev = dev;
			e->bytes = s->bytes;
			e->cmd_flags = flags;
			e->error = error;
			e->pad = 0;
			__builtin_memcpy(e->comm, s->comm, sizeof(e->comm));
			bpf_ringbuf_submit(e, 0);
		}
	}
	bpf_map_delete_elem(&start, &k);
	return 0;
}

/* --- tp_btf ------------------------------------------------------------------ */
SEC("tp_btf/block_io_start")
int BPF_PROG(block_io_start__tp_btf, struct request *rq)
{
	return on_io_start(rq_key(rq), rq_dev(rq));
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(block_rq_insert__tp_btf, struct request *rq)
{
	return on_insert(rq_key(rq), rq_dev(rq));
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue__tp_btf, struct request *rq)
{
	return on_issue(rq_key(rq), rq_dev(rq), BPF_CORE_READ(rq, __data_len));
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete__tp_btf, struct request *rq, int error, unsigned int nr_bytes)
{
	return on_complete(rq_key(rq), rq_dev(rq), BPF_CORE_READ(rq, __sector),
			   norm_flags(BPF_CORE_READ(rq, cmd_flags)), error);
}

/* --- raw_tp ------------------------------------------------------------------ */
SEC("raw_tp/block_io_start")
int BPF_PROG(block_io_start__raw_tp, struct request *rq)
{
	return on_io_start(rq_key(rq), rq_dev(rq));
}

SEC("raw_tp/block_rq_insert")
int BPF_PROG(block_rq_insert__raw_tp, struct request *rq)
{
	return on_insert(rq_key(rq), rq_dev(rq));
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(block_rq_issue__raw_tp, struct request *rq)
{
	return on_issue(rq_key(rq), rq_dev(rq), BPF_CORE_READ(rq, __data_len));
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(block_rq_complete__raw_tp, struct request *rq, int error, unsigned int nr_bytes)
{
	return on_complete(rq_key(rq), rq_dev(rq), BPF_CORE_READ(rq, __sector),
			   norm_flags(BPF_CORE_READ(rq, cmd_flags)), error);
}

/* --- tracepoint: no request pointer, key by (dev, sector) ---------------------- */
SEC("tp/block/block_io_start")
int block_io_start__tracepoint(struct trace_event_raw_block_rq *ctx)
{
	return on_io_start(tp_key(ctx->dev, ctx->sector), ctx->dev);
}

SEC("tp/block/block_rq_insert")
int block_rq_insert__tracepoint(struct trace_event_raw_block_rq *ctx)
{
	return on_insert(tp_key(ctx->dev, ctx->sector), ctx->dev);
}

SEC("tp/block/block_rq_issue")
int block_rq_issue__tracepoint(struct trace_event_raw_block_rq *ctx)
{
	return on_issue(tp_key(ctx->dev, ctx->sector), ctx->dev, ctx->bytes);
}

SEC("tp/block/block_rq_complete")
int block_rq_complete__tracepoint(struct trace_event_raw_block_rq_completion *ctx)
{
	char rwbs[10];

	bpf_probe_read_kernel(rwbs, sizeof(rwbs), ctx->rwbs);
	rwbs[9] = 0;
	return on_complete(tp_key(ctx->dev, ctx->sector), ctx->dev, ctx->sector,
			   rwbs_flags(rwbs), ctx->error);
}

KS_EXPORT_TYPE(block_io_latency_event);
