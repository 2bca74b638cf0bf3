/* Test oracle, independent of kernelscope's Python binding: open an object
 * with libbpf, load only the named program, attach it where its section says.
 * Exit 0 when it attached. */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *p;
	struct bpf_link *link;

	if (argc != 3) {
		fprintf(stderr, "usage: attach_one OBJ PROG\n");
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return 3;
	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p, strcmp(bpf_program__name(p), argv[2]) == 0);
	if (bpf_object__load(obj)) {
		printf("load failed\n");
		return 1;
	}
	link = bpf_program__attach(bpf_object__find_program_by_name(obj, argv[2]));
	if (!link) {
		printf("attach failed\n");
		return 1;
	}
	bpf_link__destroy(link);
	bpf_object__close(obj);
	printf("attached\n");
	return 0;
}
