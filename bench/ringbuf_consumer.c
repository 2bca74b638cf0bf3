/* Minimal C consumer of bench_ringbuf records on libbpf's ring_buffer API: the
 * ceiling the Python reader is compared with. The ring's map fd is inherited.
 * usage: ringbuf_consumer FD N  -> consumes N records, prints "records seconds". */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct rec { unsigned long long seq, ts; unsigned int pid, cpu; unsigned long long payload[5]; };
static unsigned long long count, seqsum;

static int on_rec(void *ctx, void *data, size_t size)
{
	const struct rec *r = data;
	seqsum += r->seq;  /* touch the record, like a decoder would */
	count++;
	return 0;
}

int main(int argc, char **argv)
{
	int fd = atoi(argv[1]);
	unsigned long long want = strtoull(argv[2], NULL, 10);
	struct ring_buffer *rb = ring_buffer__new(fd, on_rec, NULL, NULL);
	struct timespec a, b;

	if (!rb) {
		perror("ring_buffer__new");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	while (count < want) {
		if (ring_buffer__poll(rb, 100) < 0)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%llu %.6f %llu\n", count, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, seqsum);
	ring_buffer__free(rb);
	return 0;
}
