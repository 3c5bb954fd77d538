/* Reference for the seed's print_pod_node_mapping(): reads "pod node ..."
 * lines (no comments, no directives) and prints the table with the seed's
 * printf formats, so tests compare tlshubctl's output byte for byte. */
#include <stdio.h>
#include <string.h>

int main(void)
{
	static char pods[200000][256], nodes[200000][256];
	char line[4096];
	int n = 0;

	while (fgets(line, sizeof(line), stdin) && n < 200000)
		if (sscanf(line, "%255s %255s", pods[n], nodes[n]) == 2)
			n++;
	printf("Pod-Node Mapping Table (%d entries):\n", n);
	printf("%-30s %-30s\n", "Pod Name", "Node Name");
	printf("------------------------------------------------------------\n");
	for (int i = 0; i < n; i++)
		printf("%-30s %-30s\n", pods[i], nodes[i]);
	return 0;
}
